//! Pulling on demand: many viewers on an edge cause ONE upstream play on the origin; the pull is
//! dropped after --upstream-linger once they leave (not before); --prewarm pulls at start, stays
//! without viewers, and /readyz turns ready once connected with a keyframe (not before the
//! keyframe); a failover counts in surge_relay_upstream_reconnects_total.

mod common;

use std::time::Duration;

use common::relay_process::RelayProcess;
use common::rtmp_client::{
    RtmpClient, audio_payload, audio_sequence_header, set_data_frame, video_payload,
    video_sequence_header,
};
use tokio_util::sync::CancellationToken;

/// Publishes 25 fps with a keyframe every 10 frames until cancelled.
fn spawn_publisher(mut c: RtmpClient, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = c.send_media(9, 0, video_sequence_header()).await;
        let mut i = 0u32;
        while !stop.is_cancelled() {
            if c.send_media(
                9,
                i * 40,
                video_payload(i.is_multiple_of(10), &[i as u8; 500]),
            )
            .await
            .is_err()
            {
                return;
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pull_per_stream_linger_and_prewarm() {
    // Lingers and timeouts are wall-clock time: one test of this binary at a time.
    let _serial = common::real_time_lock().await;
    let origin = RelayProcess::start(&["--tier", "origin"]);
    let edge = RelayProcess::edge_pulling_from(&origin, &["--upstream-linger", "1s"]);
    // Same linger: a prewarmed stream must outlive it.
    let prewarmed = RelayProcess::edge_pulling_from(
        &origin,
        &["--prewarm", "live/s", "--upstream-linger", "1s"],
    );
    // Nothing published yet: the prewarming edge is not ready.
    assert_eq!(common::http_get(prewarmed.http, "/readyz").await.0, 503);

    let (publisher, code) = RtmpClient::publish(origin.rtmp, "live", "s")
        .await
        .expect("publish");
    assert_eq!(code, "NetStream.Publish.Start");
    let stop = CancellationToken::new();
    let pub_task = spawn_publisher(publisher, stop.clone());

    let ready = common::wait_until(Duration::from_secs(15), || async {
        common::http_get(prewarmed.http, "/readyz").await.0 == 200
    })
    .await;
    assert!(
        ready,
        "prewarmed edge never became ready:\n{}",
        prewarmed.log_text()
    );

    // Three viewers on the edge, two protocols.
    let (mut v1, _) = RtmpClient::play(edge.rtmp, "live", "s").await.expect("v1");
    let (mut v2, _) = RtmpClient::play(edge.rtmp, "live", "s").await.expect("v2");
    // And one on the prewarmed edge, leaving with the others.
    let (mut v3, _) = RtmpClient::play(prewarmed.rtmp, "live", "s")
        .await
        .expect("v3");
    let flv = tokio::spawn({
        let addr = edge.http;
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("tcp");
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            s.write_all(b"GET /live/s.flv HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("req");
            let mut buf = [0u8; 4096];
            let mut total = 0;
            while total < 20_000 {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            (s, total)
        }
    });
    for v in [&mut v1, &mut v2, &mut v3] {
        loop {
            let m = v
                .next_message(Duration::from_secs(10))
                .await
                .expect("media via edge");
            if m.type_id == 9 && m.payload.get(1) == Some(&1) {
                break;
            }
        }
    }
    let (flv_conn, flv_bytes) = flv.await.expect("flv task");
    assert!(
        flv_bytes >= 20_000,
        "HTTP-FLV via edge got {flv_bytes} bytes"
    );

    let es = common::stats(edge.http).await;
    assert_eq!(es["relay"]["viewers"], 3);
    let st = &es["streams"][0];
    assert_eq!(st["source"], "upstream");
    assert_eq!(st["upstream"]["state"], "connected");
    assert_eq!(
        st["upstream"]["url"]
            .as_str()
            .map(|u| u.contains(&origin.rtmp.to_string())),
        Some(true)
    );
    // Origin: one pull from the edge (3 viewers) + one from the prewarmed edge.
    assert_eq!(
        origin.viewers().await,
        2,
        "one upstream play per stream per edge"
    );

    // Viewers leave: after the linger the edge drops its pull; the prewarmed one stays.
    drop((v1, v2, v3, flv_conn));
    let dropped = common::wait_until(Duration::from_secs(10), || async {
        origin.viewers().await <= 1
    })
    .await;
    assert!(
        dropped,
        "edge kept pulling after linger:\n{}",
        edge.log_text()
    );
    let es = common::stats(edge.http).await;
    assert_eq!(es["streams"].as_array().map(|a| a.len()), Some(0));
    // The prewarmed edge's viewer left as long ago, past the same linger: its pull stays.
    let stays = common::holds_for(Duration::from_secs(2), || async {
        origin.viewers().await == 1
    })
    .await;
    assert!(stays, "prewarmed pull must stay without viewers");
    assert_eq!(common::http_get(prewarmed.http, "/readyz").await.0, 200);

    stop.cancel();
    let _ = pub_task.await;
}

fn stream_count(stats: &serde_json::Value) -> usize {
    stats["streams"].as_array().map_or(usize::MAX, |a| a.len())
}

/// Reads until a video frame that is not a sequence header.
/// Publishes live/STREAM at `origin` (until `stop`) and plays it at `edge` up to its first
/// video frame.
async fn publish_and_watch(
    origin: &RelayProcess,
    edge: &RelayProcess,
    stream: &str,
) -> (CancellationToken, tokio::task::JoinHandle<()>, RtmpClient) {
    let (publisher, _) = RtmpClient::publish(origin.rtmp, "live", stream)
        .await
        .expect("publish");
    let stop = CancellationToken::new();
    let pub_task = spawn_publisher(publisher, stop.clone());
    let (mut viewer, _) = RtmpClient::play(edge.rtmp, "live", stream)
        .await
        .expect("play");
    until_video_frame(&mut viewer).await;
    (stop, pub_task, viewer)
}

async fn until_video_frame(v: &mut RtmpClient) {
    loop {
        let m = v
            .next_message(Duration::from_secs(10))
            .await
            .expect("media via edge");
        if m.type_id == 9 && m.payload.get(1) == Some(&1) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarmed_edge_is_ready_only_once_a_keyframe_arrived() {
    let _serial = common::real_time_lock().await;
    let origin = RelayProcess::start(&["--tier", "origin"]);
    let (mut publisher, code) = RtmpClient::publish(origin.rtmp, "live", "k")
        .await
        .expect("publish");
    assert_eq!(code, "NetStream.Publish.Start");
    // Only metadata and sequence headers so far.
    publisher
        .send_media(18, 0, set_data_frame(640.0, 360.0))
        .await
        .expect("metadata");
    publisher
        .send_media(9, 0, video_sequence_header())
        .await
        .expect("video seq");
    publisher
        .send_media(8, 0, audio_sequence_header())
        .await
        .expect("audio seq");

    let edge = RelayProcess::edge_pulling_from(&origin, &["--prewarm", "live/k"]);
    let connected = common::wait_until(Duration::from_secs(10), || async {
        common::stats(edge.http).await["streams"][0]["upstream"]["state"] == "connected"
    })
    .await;
    assert!(connected, "prewarm never connected:\n{}", edge.log_text());
    let (status, _, body) = common::http_get(edge.http, "/readyz").await;
    assert_eq!(
        status,
        503,
        "ready with only sequence headers: {}",
        String::from_utf8_lossy(&body)
    );

    // Inter frames only (a publisher that joined mid-GOP): still not ready.
    let mut ts = 0;
    for _ in 0..25 {
        ts += 40;
        publisher
            .send_media(9, ts, video_payload(false, &[3; 500]))
            .await
            .expect("inter frame");
        publisher
            .send_media(8, ts, audio_payload(&[4; 50]))
            .await
            .expect("audio");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(
        common::stats(edge.http).await["streams"][0]["upstream"]["state"],
        "connected"
    );
    let (status, _, body) = common::http_get(edge.http, "/readyz").await;
    let body = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 503, "ready without a keyframe: {body}");
    assert!(body.contains("keyframe=false"), "{body}");

    // The first keyframe makes it ready.
    ts += 40;
    publisher
        .send_media(9, ts, video_payload(true, &[5; 500]))
        .await
        .expect("keyframe");
    let ready = common::wait_until(Duration::from_secs(3), || async {
        common::http_get(edge.http, "/readyz").await.0 == 200
    })
    .await;
    assert!(ready, "not ready after a keyframe:\n{}", edge.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_linger_keeps_the_pull_for_its_whole_duration() {
    let _serial = common::real_time_lock().await;
    let origin = RelayProcess::start(&["--tier", "origin"]);
    let edge = RelayProcess::edge_pulling_from(&origin, &["--upstream-linger", "3s"]);
    let (stop, pub_task, viewer) = publish_and_watch(&origin, &edge, "l").await;
    assert_eq!(origin.viewers().await, 1, "the edge's pull");
    drop(viewer);
    let left = tokio::time::Instant::now();
    let viewer_gone = common::wait_until(Duration::from_secs(1), || async {
        common::stats(edge.http).await["relay"]["viewers"] == 0
    })
    .await;
    assert!(viewer_gone, "edge still counts the viewer");

    // Through the linger (less a margin for polling) the pull stays, on both sides.
    let window = (left + Duration::from_millis(2500)) - tokio::time::Instant::now();
    let stays = common::holds_for(window, || async {
        origin.viewers().await == 1 && stream_count(&common::stats(edge.http).await) == 1
    })
    .await;
    assert!(stays, "pull dropped before --upstream-linger");

    let dropped = common::wait_until(Duration::from_secs(4), || async {
        origin.viewers().await == 0 && stream_count(&common::stats(edge.http).await) == 0
    })
    .await;
    let after = left.elapsed();
    assert!(
        dropped,
        "pull still there {after:?} after the last viewer left"
    );
    assert!(
        after >= Duration::from_millis(2800) && after <= Duration::from_secs(5),
        "pull dropped {after:?} after the last viewer left (linger 3 s)"
    );
    stop.cancel();
    let _ = pub_task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reconnects_metric_counts_a_failover() {
    let _serial = common::real_time_lock().await;
    let origin = RelayProcess::start(&["--tier", "origin"]);
    let origin_url = format!("rtmp://{}/live", origin.rtmp);
    let mut reflector = RelayProcess::start(&["--tier", "reflector", "--upstream", &origin_url]);
    let reflector_url = format!("rtmp://{}/live", reflector.rtmp);
    let edge = RelayProcess::start(&[
        "--tier",
        "edge",
        "--upstream",
        &reflector_url,
        "--upstream",
        &origin_url,
    ]);
    let (stop, pub_task, mut viewer) = publish_and_watch(&origin, &edge, "r").await;
    let labels = [("app", "live"), ("stream", "r"), ("tier", "edge")];
    let name = "surge_relay_upstream_reconnects_total";
    assert_eq!(
        common::metric(edge.http, name, &labels)
            .await
            .unwrap_or(0.0),
        0.0,
        "reconnects before any failure"
    );
    // Play long enough for the connection to count as healthy (2 s), then lose it.
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while tokio::time::Instant::now() < until {
        viewer
            .next_message(Duration::from_secs(5))
            .await
            .expect("media via reflector");
    }
    assert_eq!(
        common::stats(edge.http).await["streams"][0]["upstream"]["url"],
        reflector_url.as_str()
    );
    reflector.child.kill().expect("kill reflector");
    let failed_over = common::wait_until(Duration::from_secs(5), || async {
        let s = common::stats(edge.http).await;
        let up = &s["streams"][0]["upstream"];
        up["state"] == "connected" && up["url"] == origin_url.as_str()
    })
    .await;
    assert!(
        failed_over,
        "edge did not move to the origin:\n{}",
        edge.log_text()
    );
    assert_eq!(
        common::metric(edge.http, name, &labels).await,
        Some(1.0),
        "one lost upstream, one reconnect"
    );
    assert_eq!(
        common::metric(edge.http, "surge_relay_upstream_connected", &labels).await,
        Some(1.0)
    );
    until_video_frame(&mut viewer).await;
    stop.cancel();
    let _ = pub_task.await;
}
