//! A three-level tree of real `surge-relay` processes: ffmpeg publishes to an origin, a
//! reflector pulls from it, an edge pulls from the reflector. ffprobe reads the edge over RTMP
//! and HTTP-FLV and gets the expected video; several viewers on the edge still mean exactly one
//! upstream connection at each level.

mod common;
mod tree_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::relay_process::RelayProcess;
use tree_common::{ffprobe_video, publish_live};

const PACKETS: u32 = 75;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_two_hops_from_origin_serves_rtmp_and_flv_with_one_pull_per_level() {
    let origin = RelayProcess::start(&["--tier", "origin", "--region", "eu"]);
    let reflector = RelayProcess::start(&[
        "--tier",
        "reflector",
        "--region",
        "eu",
        "--upstream",
        &format!("rtmp://{}/live", origin.rtmp),
    ]);
    let reflector_url = format!("rtmp://{}/live", reflector.rtmp);
    let edge = RelayProcess::start(&[
        "--tier",
        "edge",
        "--region",
        "eu-west",
        "--upstream",
        &reflector_url,
    ]);
    let _publisher = publish_live(&origin, "s").await;

    // Watch the upstream levels while three viewers (2 RTMP, 1 HTTP-FLV) read from the edge.
    let done = Arc::new(AtomicBool::new(false));
    let max_reflector = Arc::new(AtomicU64::new(0));
    let max_origin = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (done, max_r, max_o) = (done.clone(), max_reflector.clone(), max_origin.clone());
        let (r_http, o_http) = (reflector.http, origin.http);
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let r = common::stats(r_http).await["relay"]["viewers"]
                    .as_u64()
                    .unwrap_or(0);
                let o = common::stats(o_http).await["relay"]["viewers"]
                    .as_u64()
                    .unwrap_or(0);
                max_r.fetch_max(r, Ordering::SeqCst);
                max_o.fetch_max(o, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let urls = [
        edge.rtmp_url("live", "s"),
        edge.flv_url("live", "s"),
        edge.rtmp_url("live", "s"),
    ];
    let probes: Vec<_> = urls
        .iter()
        .cloned()
        .map(|u| {
            tokio::task::spawn_blocking(move || ffprobe_video(&u, PACKETS, Duration::from_secs(40)))
        })
        .collect();
    let mut results = Vec::new();
    for p in probes {
        results.push(p.await.unwrap());
    }
    let edge_stats = common::stats(edge.http).await;
    done.store(true, Ordering::SeqCst);
    watcher.await.unwrap();

    for (url, r) in urls.iter().zip(results) {
        let p = r.unwrap_or_else(|e| {
            panic!(
                "{e}\nedge log:\n{}\nreflector log:\n{}",
                edge.log_text(),
                reflector.log_text()
            )
        });
        assert_eq!(p.codec, "h264", "{url}");
        assert_eq!((p.width, p.height), (320, 240), "{url}");
        assert_eq!(p.video_packets, PACKETS as u64, "{url}");
    }

    // One pull per stream per level, whatever the number of viewers below.
    assert_eq!(
        max_reflector.load(Ordering::SeqCst),
        1,
        "edge -> reflector connections"
    );
    assert_eq!(
        max_origin.load(Ordering::SeqCst),
        1,
        "reflector -> origin connections"
    );

    assert_eq!(edge_stats["relay"]["tier"], "edge");
    assert_eq!(edge_stats["relay"]["region"], "eu-west");
    let stream = &edge_stats["streams"][0];
    assert_eq!(stream["source"], "upstream");
    assert_eq!(stream["upstream"]["state"], "connected");
    assert_eq!(stream["upstream"]["url"], reflector_url.as_str());
    assert!(reflector.viewers().await <= 1);
}
