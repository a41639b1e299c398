//! `--advertise-host-file` (docs/PLACEMENT.md, "Exposure modes"): the host in the file is what
//! the relay reports in `/api/v1/streams` and what a locator puts in the URLs it hands out;
//! the relay follows the file's changes while running (Kubernetes updates a Downward API file
//! in place), and an empty or missing file falls back to `--advertise-host`.

mod common;

use std::time::Duration;

use common::relay_process::RelayProcess;

async fn advertised(relay: &RelayProcess) -> Option<String> {
    common::stats(relay.http).await["relay"]["advertise_host"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_advertised_host_follows_the_file() {
    let _rt = common::real_time_lock().await;
    let dir = std::env::temp_dir().join(format!("surge-advertise-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("advertise-host");
    let file_arg = file.to_str().expect("utf-8 path").to_string();
    let edge = RelayProcess::start(&[
        "--tier",
        "edge",
        "--region",
        "eu",
        "--advertise-host",
        "127.0.0.1",
        "--advertise-host-file",
        &file_arg,
    ]);
    assert_eq!(
        advertised(&edge).await.as_deref(),
        Some("127.0.0.1"),
        "no file: the flag"
    );

    std::fs::write(&file, "localhost\n").expect("write");
    let follows = common::wait_until(Duration::from_secs(5), || async {
        advertised(&edge).await.as_deref() == Some("localhost")
    })
    .await;
    assert!(follows, "the relay never read the file");

    // A locator over that edge hands out its advertised host. (The locator is a reflector so
    // the edge is the region's only edge, the one it must choose.)
    let locator = RelayProcess::start(&[
        "--tier",
        "reflector",
        "--region",
        "eu",
        "--placement-peer",
        &edge.http.to_string(),
    ]);
    let path = "/api/v1/locate?app=live&stream=x&protocol=flv";
    let want = format!("http://localhost:{}/live/x.flv", edge.http.port());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = common::http_get(locator.http, path).await;
        let answer = format!("{status} {}", String::from_utf8_lossy(&body));
        if status == 200 && answer.contains(&want) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the locator's answer lacks {want}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Emptied: back to the flag.
    std::fs::write(&file, "").expect("write");
    let back = common::wait_until(Duration::from_secs(5), || async {
        advertised(&edge).await.as_deref() == Some("127.0.0.1")
    })
    .await;
    assert!(back, "an empty file must fall back to --advertise-host");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--advertise-http-port` / `--advertise-rtmp-port` (a node's host ports mapped onto other
/// pod ports): reported in `/api/v1/streams` and used in the URLs a locator hands viewers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertised_ports_reach_the_locators_urls() {
    let _rt = common::real_time_lock().await;
    let edge = RelayProcess::start(&[
        "--tier",
        "edge",
        "--region",
        "eu",
        "--advertise-host",
        "node-a.test",
        "--advertise-http-port",
        "18081",
        "--advertise-rtmp-port",
        "11936",
    ]);
    let stats = common::stats(edge.http).await;
    assert_eq!(stats["relay"]["advertise_http_port"], 18081);
    assert_eq!(stats["relay"]["advertise_rtmp_port"], 11936);

    let locator = RelayProcess::start(&[
        "--tier",
        "reflector",
        "--region",
        "eu",
        "--placement-peer",
        &edge.http.to_string(),
    ]);
    for (protocol, want) in [
        ("flv", "http://node-a.test:18081/live/x.flv"),
        ("rtmp", "rtmp://node-a.test:11936/live/x"),
    ] {
        let path = format!("/api/v1/locate?app=live&stream=x&protocol={protocol}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, _, body) = common::http_get(locator.http, &path).await;
            let answer = format!("{status} {}", String::from_utf8_lossy(&body));
            if status == 200 && answer.contains(want) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the locator's answer lacks {want}: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
