//! Readiness follows room (README, "Placement"): `/readyz` turns 503 `full` when the relay's
//! load reaches `--ready-max-load` and 200 again only below `--ready-resume-load`, while the
//! viewers it has keep playing; a viewer past capacity is refused, and an egress budget turns
//! the stream's bitrate into the capacity `/api/v1/streams` reports.

mod common;

use std::time::Duration;

use common::flv_reader::FlvReader;
use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, video_payload};

async fn readyz(relay: &RelayProcess) -> (u16, String) {
    let (status, _, body) = common::http_get(relay.http, "/readyz").await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Opens a viewer and waits until it has the stream's first frames.
async fn viewer(relay: &RelayProcess) -> FlvReader {
    let mut v = FlvReader::open(relay.http, "/live/room.flv").await;
    assert!(
        v.read_until_tags(4, Duration::from_secs(5)).await,
        "viewer got {:?}",
        v.tags().1
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_at_the_high_mark_and_back_below_the_low_mark() {
    let relay = RelayProcess::start(&[
        "--max-viewers",
        "10",
        "--ready-max-load",
        "0.9",
        "--ready-resume-load",
        "0.7",
    ]);
    let mut publisher = RtmpClient::publish_with_headers(relay.rtmp, "live", "room")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_payload(true, &[1; 100]))
        .await
        .expect("keyframe");
    assert_eq!(readyz(&relay).await.0, 200);

    let mut viewers = Vec::new();
    for _ in 0..8 {
        viewers.push(viewer(&relay).await);
    }
    assert_eq!(
        readyz(&relay).await.0,
        200,
        "load 0.8 is under the high mark"
    );
    viewers.push(viewer(&relay).await);
    let (status, body) = readyz(&relay).await;
    assert_eq!((status, body.trim()), (503, "full (load 0.90)"));
    let stats = common::stats(relay.http).await;
    assert_eq!(stats["relay"]["capacity"], 10, "{stats}");
    assert_eq!(stats["relay"]["ready"], false, "{stats}");

    // Down to 8 (0.8): between the marks, still full. Then 6 (0.6): ready again.
    viewers.truncate(8);
    assert!(
        common::wait_until(Duration::from_secs(5), || async {
            relay.viewers().await == 8
        })
        .await
    );
    assert_eq!(readyz(&relay).await.0, 503, "0.8 is above the resume mark");
    viewers.truncate(6);
    assert!(
        common::wait_until(Duration::from_secs(5), || async {
            relay.viewers().await == 6
        })
        .await
    );
    assert_eq!(readyz(&relay).await.0, 200);

    // The viewers kept all along still get every new frame.
    publisher
        .send_media(9, 40, video_payload(false, &[2; 100]))
        .await
        .expect("frame");
    for v in &mut viewers {
        let before = v.tag_list().len();
        assert!(
            v.read_until_tags(before + 1, Duration::from_secs(5)).await,
            "a viewer kept through the flips stopped getting frames"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_capacity_a_viewer_is_refused_and_the_egress_budget_sets_capacity() {
    // 2 Mbit/s at a floor of 500 kbit/s per viewer: 4 viewers, although 100 are allowed.
    let relay = RelayProcess::start(&[
        "--max-viewers",
        "100",
        "--max-egress-mbps",
        "2",
        "--bitrate-floor-kbps",
        "500",
    ]);
    let mut publisher = RtmpClient::publish_with_headers(relay.rtmp, "live", "room")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_payload(true, &[1; 100]))
        .await
        .expect("keyframe");
    let stats = common::stats(relay.http).await;
    assert_eq!(stats["relay"]["capacity"], 4, "{stats}");
    let mut viewers = Vec::new();
    for _ in 0..4 {
        viewers.push(viewer(&relay).await);
    }
    let (status, head, body) = common::http_get(relay.http, "/live/room.flv").await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    assert!(body.contains("full"), "{body}");
    let stats = common::stats(relay.http).await;
    assert_eq!(stats["relay"]["load"], 1.0, "{stats}");
}

#[test]
fn marks_out_of_order_are_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_surge-relay"))
        .args(["--ready-max-load", "0.5", "--ready-resume-load", "0.6"])
        .output()
        .expect("run surge-relay");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ready-resume-load"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_surge-relay"))
        .args(["--max-egress-mbps=-3"])
        .output()
        .expect("run surge-relay");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-egress-mbps"), "{err}");
}
