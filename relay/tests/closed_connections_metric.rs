//! `surge_relay_connections_closed_total{reason}` (README, "HTTP endpoints") counts the
//! connections the relay closed, once each, by reason: garbage input is an `error`, a viewer
//! that stops reading a `slow_viewer` (RTMP and HTTP-FLV); connections the client closes are not
//! counted.

mod common;

use std::time::Duration;

use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, video_payload};
use tokio::io::AsyncWriteExt;

const NAME: &str = "surge_relay_connections_closed_total";

async fn closed(relay: &RelayProcess, reason: &str) -> f64 {
    common::metric(relay.http, NAME, &[("reason", reason)])
        .await
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connections_are_counted_once_by_reason() {
    let relay = RelayProcess::start(&[
        "--slow-viewer-timeout",
        "1s",
        "--viewer-send-buffer-bytes",
        "16384",
    ]);
    let (mut publisher, _) = RtmpClient::publish(relay.rtmp, "live", "r")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_payload(true, &[1; 1000]))
        .await
        .expect("video");

    // Garbage instead of a handshake: the relay closes it, an error.
    let mut garbage = tokio::net::TcpStream::connect(relay.rtmp)
        .await
        .expect("tcp");
    garbage.write_all(&[0x42; 4096]).await.expect("garbage");
    let counted = common::wait_until(Duration::from_secs(5), || async {
        closed(&relay, "error").await == 1.0
    })
    .await;
    assert!(counted, "garbage not counted:\n{}", relay.log_text());

    // Connections their clients close: a player that leaves, a client that closes after the
    // handshake. Once the relay logged their end, the counters have not moved.
    let (player, _) = RtmpClient::play(relay.rtmp, "live", "r")
        .await
        .expect("play");
    let player_addr = player.stream.local_addr().expect("addr");
    drop(player);
    let c = RtmpClient::handshake(relay.rtmp).await.expect("handshake");
    let shook_addr = c.stream.local_addr().expect("addr");
    drop(c);
    for peer in [player_addr, shook_addr] {
        let logged = common::wait_until(Duration::from_secs(5), || async {
            !relay.close_lines(peer).is_empty()
        })
        .await;
        assert!(logged, "no close line for {peer}:\n{}", relay.log_text());
    }
    assert_eq!(
        closed(&relay, "error").await,
        1.0,
        "client closes counted:\n{}",
        relay.log_text()
    );
    assert_eq!(closed(&relay, "slow_viewer").await, 0.0);

    // A viewer that stops reading (tiny receive buffer) while frames pile up: closed after
    // --slow-viewer-timeout, as a slow viewer and as nothing else.
    let stalled = RtmpClient::connect_small_buffer(relay.rtmp, "live", 4096)
        .await
        .expect("connect");
    let stalled_addr = stalled.stream.local_addr().expect("addr");
    let (stalled, _) = stalled.start_play("r").await.expect("play");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut ts = 0;
    while relay.close_lines(stalled_addr).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stalled viewer not closed:\n{}",
            relay.log_text()
        );
        ts += 40;
        publisher
            .send_media(9, ts, video_payload(false, &[2; 50_000]))
            .await
            .expect("video");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(closed(&relay, "slow_viewer").await, 1.0);
    assert_eq!(
        closed(&relay, "error").await,
        1.0,
        "the slow viewer was counted under a second reason too"
    );
    drop(stalled);

    // The same over HTTP-FLV: a viewer that sends its GET and never reads is closed after
    // --slow-viewer-timeout and counted once, as a slow viewer.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut flv = socket.connect(relay.http).await.expect("connect");
    flv.write_all(format!("GET /live/r.flv HTTP/1.1\r\nHost: {}\r\n\r\n", relay.http).as_bytes())
        .await
        .expect("request");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while closed(&relay, "slow_viewer").await < 2.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stalled HTTP-FLV viewer not counted:\n{}",
            relay.log_text()
        );
        ts += 40;
        publisher
            .send_media(9, ts, video_payload(false, &[3; 50_000]))
            .await
            .expect("video");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(
        relay.log_contains("http connection closed reason=slow viewer"),
        "{}",
        relay.log_text()
    );
    assert_eq!(closed(&relay, "slow_viewer").await, 2.0, "counted once");
    assert_eq!(closed(&relay, "error").await, 1.0);
    drop(flv);
}
