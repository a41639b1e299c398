//! Pulling on demand: many viewers on an edge cause ONE upstream play on the origin; the pull is
//! dropped after --upstream-linger once they leave; --prewarm pulls at start, stays without
//! viewers, and /readyz turns ready once connected with a keyframe.

mod common;

use std::time::Duration;

use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, video_payload, video_sequence_header};
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

async fn origin_viewers(origin: &RelayProcess) -> u64 {
    common::stats(origin.http).await["relay"]["viewers"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pull_per_stream_linger_and_prewarm() {
    let origin = RelayProcess::start(&["--tier", "origin"]);
    let upstream = format!("rtmp://{}/live", origin.rtmp);
    let edge = RelayProcess::start(&[
        "--tier",
        "edge",
        "--upstream",
        &upstream,
        "--upstream-linger",
        "1s",
    ]);
    let prewarmed = RelayProcess::start(&[
        "--tier",
        "edge",
        "--upstream",
        &upstream,
        "--prewarm",
        "live/s",
    ]);
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
    for v in [&mut v1, &mut v2] {
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
        origin_viewers(&origin).await,
        2,
        "one upstream play per stream per edge"
    );

    // Viewers leave: after the linger the edge drops its pull; the prewarmed one stays.
    drop((v1, v2, flv_conn));
    let dropped = common::wait_until(Duration::from_secs(10), || async {
        origin_viewers(&origin).await == 1
    })
    .await;
    assert!(
        dropped,
        "edge kept pulling after linger:\n{}",
        edge.log_text()
    );
    let es = common::stats(edge.http).await;
    assert_eq!(es["streams"].as_array().map(|a| a.len()), Some(0));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        origin_viewers(&origin).await,
        1,
        "prewarmed pull must stay without viewers"
    );
    assert_eq!(common::http_get(prewarmed.http, "/readyz").await.0, 200);

    stop.cancel();
    let _ = pub_task.await;
}
