//! Back to the preferred parent, through the relay binary: an edge (upstreams: reflector, then
//! origin) that failed over to the origin probes the reflector after 30 s on the origin, then
//! every 10 s, and moves back once a restarted reflector on the same address plays; its viewer
//! stays connected throughout and the origin loses the edge's pull.
//!
//! The 30 s and 10 s are the relay's fixed schedule (README, `PullerOptions`), so this test
//! takes about 45 s; it has a binary of its own.

mod common;
mod tree_common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::relay_process::RelayProcess;
use common::rtmp_client::RtmpClient;
use tokio::net::TcpListener;
use tree_common::{free_port, publish_live};

/// Time on a less preferred upstream before the first probe of the preferred ones (README).
const PROBE_AFTER: Duration = Duration::from_secs(30);
/// Pause between two rounds of probes (README).
const PROBE_EVERY: Duration = Duration::from_secs(10);
/// Slack for a loaded 2-core machine on each of those timers.
const SLACK: Duration = Duration::from_secs(3);
/// The test publisher's GOP (`ffmpeg_publish`: keyframe every 25 frames at 25 fps). The move
/// back plays the reflector from its GOP cache, so the viewer sees less than a GOP of silence.
const GOP: Duration = Duration::from_secs(1);

fn start_reflector(rtmp: SocketAddr, origin_url: &str) -> RelayProcess {
    RelayProcess::spawn(
        &[
            "--rtmp-listen",
            &rtmp.to_string(),
            "--http-listen",
            "127.0.0.1:0",
            "--tier",
            "reflector",
            "--upstream",
            origin_url,
        ],
        &[],
    )
}

async fn upstream_url(edge: &RelayProcess) -> String {
    common::stats(edge.http).await["streams"][0]["upstream"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_returns_to_a_restarted_reflector() {
    let origin = RelayProcess::start(&["--tier", "origin"]);
    let origin_url = format!("rtmp://{}/live", origin.rtmp);
    let reflector_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let reflector_url = format!("rtmp://{reflector_addr}/live");
    let mut reflector = start_reflector(reflector_addr, &origin_url);
    let edge = RelayProcess::start(&[
        "--tier",
        "edge",
        "--upstream",
        &reflector_url,
        "--upstream",
        &origin_url,
    ]);
    let _publisher = publish_live(&origin, "s").await;

    // An RTMP viewer on the edge, read in the background: (arrival, timestamp) of each frame.
    let (mut viewer, code) = RtmpClient::play(edge.rtmp, "live", "s")
        .await
        .expect("play on the edge");
    assert!(code.starts_with("NetStream.Play."), "play refused: {code}");
    let frames: Arc<Mutex<Vec<(Instant, u32)>>> = Arc::default();
    let reader = tokio::spawn({
        let frames = frames.clone();
        async move {
            loop {
                let m = match viewer.next_message(Duration::from_secs(10)).await {
                    Ok(m) => m,
                    Err(e) => return e,
                };
                // Video frames other than sequence headers.
                if m.type_id == 9 && m.payload.get(1) == Some(&1) {
                    frames
                        .lock()
                        .expect("frames")
                        .push((Instant::now(), m.timestamp));
                }
            }
        }
    });
    let frame_count = || frames.lock().expect("frames").len();
    assert!(
        common::wait_until(Duration::from_secs(10), || async { frame_count() >= 25 }).await,
        "frames through the reflector"
    );
    assert_eq!(upstream_url(&edge).await, reflector_url);

    // The reflector dies; the edge fails over to the origin.
    reflector.child.kill().expect("kill reflector");
    let on_origin = common::wait_until(Duration::from_secs(5), || async {
        upstream_url(&edge).await == origin_url
    })
    .await;
    assert!(on_origin, "no failover:\n{}", edge.log_text());
    let failed_over = Instant::now();
    drop(reflector);

    // The reflector's host is back but not its relay: a listener on its address that closes
    // each connection, so the first probe fails and is seen.
    let probes = TcpListener::bind(reflector_addr)
        .await
        .expect("listen on the reflector's address");
    let (probe, _) = tokio::time::timeout(PROBE_AFTER + SLACK * 2, probes.accept())
        .await
        .expect("the edge probed the preferred upstream")
        .expect("accept");
    let first_probe = Instant::now();
    drop((probe, probes));
    let waited = first_probe - failed_over;
    eprintln!("first probe {waited:?} after the failover");
    assert!(
        waited >= PROBE_AFTER - SLACK && waited <= PROBE_AFTER + SLACK,
        "first probe {waited:?} after the failover, expected {PROBE_AFTER:?}"
    );

    // The reflector comes back on the same address; the next probe (one interval later) finds
    // it playing and the edge moves back.
    let reflector = start_reflector(reflector_addr, &origin_url);
    let moved = common::wait_until(PROBE_EVERY + SLACK * 2, || async {
        upstream_url(&edge).await == reflector_url
    })
    .await;
    assert!(moved, "edge stayed on the origin:\n{}", edge.log_text());
    let back = Instant::now() - first_probe;
    eprintln!("moved back {back:?} after the first probe");
    assert!(
        back >= PROBE_EVERY - SLACK,
        "moved back {back:?} after the failed probe: probes are {PROBE_EVERY:?} apart"
    );
    let moved_at = Instant::now();

    // The origin keeps only the reflector's pull; the edge's viewer keeps playing.
    let left_origin = common::wait_until(Duration::from_secs(5), || async {
        origin.viewers().await == 1
    })
    .await;
    assert!(
        left_origin,
        "the edge still pulls from the origin: {}",
        common::stats(origin.http).await
    );
    assert!(
        common::wait_until(Duration::from_secs(5), || async {
            reflector.viewers().await == 1
        })
        .await,
        "the edge pulls from the reflector (and the probe left): {}",
        common::stats(reflector.http).await
    );
    let seen_at_move = frame_count();
    assert!(
        common::wait_until(Duration::from_secs(5), || async {
            frame_count() >= seen_at_move + 50
        })
        .await,
        "frames after the move back"
    );
    assert!(!reader.is_finished(), "viewer lost: {:?}", reader.await);
    reader.abort();

    let frames = frames.lock().expect("frames").clone();
    let timestamps: Vec<u32> = frames.iter().map(|f| f.1).collect();
    assert!(
        timestamps.windows(2).all(|w| w[0] < w[1]),
        "video timestamps repeated or went back: {timestamps:?}"
    );
    let gap = frames
        .windows(2)
        .filter(|w| w[1].0 >= moved_at - PROBE_EVERY - SLACK)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .expect("frames around the move back");
    eprintln!("viewer gap around the move back: {gap:?}");
    assert!(gap < GOP, "viewer gap {gap:?} around the move back");
}
