//! The HTTP side and the CLI: --help, health, stats JSON, metrics, HTTP-FLV headers and tags,
//! 404, viewer limit, second publisher rejected, end of stream, SIGTERM drain.

mod common;

use std::process::Command;
use std::time::Duration;

use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, set_data_frame, video_payload, video_sequence_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_surge-relay"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--rtmp-listen", "SURGE_RTMP_LISTEN"),
        ("--http-listen", "SURGE_HTTP_LISTEN"),
        ("--upstream", "SURGE_UPSTREAM"),
        ("--prewarm", "SURGE_PREWARM"),
        ("--tier", "SURGE_TIER"),
        ("--region", "SURGE_REGION"),
        ("--max-viewers", "SURGE_MAX_VIEWERS"),
        ("--slow-viewer-timeout", "SURGE_SLOW_VIEWER_TIMEOUT"),
        ("--upstream-linger", "SURGE_UPSTREAM_LINGER"),
        ("--shutdown-grace", "SURGE_SHUTDOWN_GRACE"),
        ("--log-format", "SURGE_LOG_FORMAT"),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
        assert!(help.contains(env), "--help lacks {env}:\n{help}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_surge-relay"))
        .args(["--prewarm", "live/x"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--prewarm needs at least one --upstream")
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_surge-relay"))
        .args(["--upstream", "http://origin/live"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("must start with rtmp://"), "{stderr}");
}

/// An HTTP-FLV response being read incrementally.
struct FlvReader {
    s: TcpStream,
    raw: Vec<u8>,
    head: String,
}

impl FlvReader {
    async fn open(addr: std::net::SocketAddr, path: &str) -> FlvReader {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("response head in time")
                .expect("read");
            assert!(n > 0, "closed before headers");
            raw.extend_from_slice(&buf[..n]);
            if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..p]).to_string();
                raw.drain(..p + 4);
                return FlvReader { s, raw, head };
            }
        }
    }

    /// Reads for `d`, or until the response ends (last chunk or EOF); true if it ended.
    async fn read_for(&mut self, d: Duration) -> bool {
        let mut buf = [0u8; 65536];
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    if self.raw.ends_with(b"\r\n0\r\n\r\n") {
                        return true;
                    }
                }
            }
        }
    }

    /// Tag types of the de-chunked body after the 13-byte FLV header.
    fn tags(&self) -> (Vec<u8>, Vec<u8>) {
        let mut body = Vec::new();
        let mut b = &self.raw[..];
        while let Some(e) = b.windows(2).position(|w| w == b"\r\n") {
            let Ok(size) = usize::from_str_radix(String::from_utf8_lossy(&b[..e]).trim(), 16)
            else {
                break;
            };
            if size == 0 || b.len() < e + 2 + size {
                break;
            }
            body.extend_from_slice(&b[e + 2..e + 2 + size]);
            b = &b[e + 4 + size..];
        }
        let mut types = Vec::new();
        let mut p = 13;
        while p + 11 <= body.len() {
            let len = u32::from_be_bytes([0, body[p + 1], body[p + 2], body[p + 3]]) as usize;
            if p + 11 + len + 4 > body.len() {
                break;
            }
            types.push(body[p]);
            p += 11 + len + 4;
        }
        (body, types)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_metrics_flv_limits_end_of_stream() {
    let relay = RelayProcess::start(&[
        "--tier",
        "edge",
        "--region",
        "eu-west",
        "--max-viewers",
        "2",
    ]);
    let (s, _, body) = common::http_get(relay.http, "/healthz").await;
    assert_eq!((s, body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(common::http_get(relay.http, "/readyz").await.0, 200);
    let (status, head, _) = common::http_get(relay.http, "/live/nope.flv").await;
    assert_eq!(status, 404);
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "a browser player must see the 404 itself: {head}"
    );

    let (mut publisher, code) = RtmpClient::publish(relay.rtmp, "live", "s")
        .await
        .expect("publish");
    assert_eq!(code, "NetStream.Publish.Start");
    let (_, second) = RtmpClient::publish(relay.rtmp, "live", "s")
        .await
        .unwrap_or_else(|e| panic!("second publisher: {e}\n{}", relay.log_text()));
    assert_eq!(
        second, "NetStream.Publish.BadName",
        "second publisher rejected clearly"
    );
    let logged = common::wait_until(Duration::from_secs(3), || async {
        relay.log_contains("already being published")
    })
    .await;
    assert!(logged, "{}", relay.log_text());

    publisher
        .send_media(18, 0, set_data_frame(320.0, 240.0))
        .await
        .expect("meta");
    publisher
        .send_media(9, 0, video_sequence_header())
        .await
        .expect("seq");
    for i in 0..30u32 {
        publisher
            .send_media(9, i * 40, video_payload(i % 25 == 0, &[7u8; 3000]))
            .await
            .expect("video");
    }

    // Let the relay take in the whole burst first (the GOP from frame 25 is 160 ms long).
    let settled = common::wait_until(Duration::from_secs(5), || async {
        common::stats(relay.http).await["streams"][0]["gop_cache_ms"] == 160
    })
    .await;
    assert!(settled);
    let mut flv = FlvReader::open(relay.http, "/live/s.flv").await;
    assert!(flv.head.starts_with("HTTP/1.1 200"), "{}", flv.head);
    let head = flv.head.to_ascii_lowercase();
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(head.contains("content-type: video/x-flv"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    flv.read_for(Duration::from_millis(500)).await;
    let (body, types) = flv.tags();
    assert_eq!(&body[..3], b"FLV");
    // Metadata, sequence header, then the GOP cache from the keyframe at frame 25 (5 frames).
    assert_eq!(
        types,
        vec![18, 9, 9, 9, 9, 9, 9],
        "instant start: metadata, seq header, GOP"
    );

    let stats = common::stats(relay.http).await;
    assert_eq!(stats["relay"]["tier"], "edge");
    assert_eq!(stats["relay"]["region"], "eu-west");
    assert_eq!(stats["relay"]["viewers"], 1);
    assert_eq!(stats["relay"]["max_viewers"], 2);
    let st = &stats["streams"][0];
    assert_eq!(st["app"], "live");
    assert_eq!(st["name"], "s");
    assert_eq!(st["viewers"]["flv"], 1);
    assert_eq!(st["viewers"]["rtmp"], 0);
    assert_eq!(st["source"], "publisher");
    assert!(st["upstream"].is_null());
    assert!(st["ingest_kbps"].as_u64().is_some());
    assert_eq!(st["dropped_frames"], 0);
    assert_eq!(st["gop_cache_ms"], 160);

    let (_, _, metrics) = common::http_get(relay.http, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    for needle in [
        "surge_relay_viewers{",
        "protocol=\"flv\"",
        "surge_relay_bytes_sent_total{",
        "surge_relay_ingest_kbps{",
        "surge_relay_max_viewers",
        "tier=\"edge\"",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }

    // Viewer limit: the second viewer fits, the third is refused on both protocols.
    let (_rtmp_viewer, code) = RtmpClient::play(relay.rtmp, "live", "s")
        .await
        .expect("play");
    assert!(code.starts_with("NetStream.Play."), "{code}");
    let (_, refused) = RtmpClient::play(relay.rtmp, "live", "s")
        .await
        .expect("connects");
    assert_eq!(refused, "NetStream.Play.Failed");
    assert_eq!(common::http_get(relay.http, "/live/s.flv").await.0, 503);

    // End of stream: the HTTP-FLV response ends when the publisher leaves.
    drop(publisher);
    assert!(
        flv.read_for(Duration::from_secs(5)).await,
        "FLV response did not end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_and_serves_viewers_through_the_grace_period() {
    let mut relay = RelayProcess::start(&["--shutdown-grace", "2s", "--log-format", "json"]);
    let (mut publisher, _) = RtmpClient::publish(relay.rtmp, "live", "g")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_payload(true, &[1; 100]))
        .await
        .expect("video");
    let (mut viewer, _) = RtmpClient::play(relay.rtmp, "live", "g")
        .await
        .expect("play");
    relay.terminate();
    let started = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        RtmpClient::play(relay.rtmp, "live", "g").await.is_err(),
        "new viewers are refused while draining"
    );
    // The current viewer keeps getting frames during the grace period.
    for i in 1..10u32 {
        publisher
            .send_media(9, i * 40, video_payload(false, &[i as u8; 100]))
            .await
            .expect("publisher still served");
    }
    let mut got = 0;
    while got < 9 {
        let m = viewer
            .next_message(Duration::from_secs(2))
            .await
            .expect("frames while draining");
        if m.type_id == 9 {
            got += 1;
        }
    }
    let exited = common::wait_until(Duration::from_secs(5), || {
        let running = relay.is_running();
        async move { !running }
    })
    .await;
    assert!(exited, "relay still running after the grace period");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "exited before the grace period: {took:?}"
    );
    assert!(
        relay.log_contains("\"message\":\"shutdown complete\""),
        "{}",
        relay.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_flv_viewer_that_stops_reading_is_disconnected() {
    let relay = RelayProcess::start(&[
        "--slow-viewer-timeout",
        "1s",
        "--viewer-send-buffer-bytes",
        "16384",
    ]);
    let (mut publisher, _) = RtmpClient::publish(relay.rtmp, "live", "big")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_payload(true, &[1; 1000]))
        .await
        .expect("video");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stalled = socket.connect(relay.http).await.expect("connect");
    stalled
        .write_all(b"GET /live/big.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    // Never read; push a few megabytes through the stream.
    for i in 1..100u32 {
        publisher
            .send_media(9, i * 40, video_payload(false, &[i as u8; 50_000]))
            .await
            .expect("video");
    }
    let gone = common::wait_until(Duration::from_secs(10), || async {
        common::stats(relay.http).await["relay"]["viewers"] == 0
    })
    .await;
    assert!(
        gone,
        "stalled HTTP-FLV viewer still connected:\n{}",
        relay.log_text()
    );
    let logged = common::wait_until(Duration::from_secs(3), || async {
        relay.log_contains("slow viewer")
    })
    .await;
    assert!(logged, "{}", relay.log_text());
}
