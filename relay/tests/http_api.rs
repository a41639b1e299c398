//! The HTTP side and the CLI: --help (flags, listen defaults), health, stats JSON, metrics
//! (dropped frames), HTTP-FLV headers and tags, 404, viewer limit, second publisher rejected,
//! end of stream, SIGTERM drain (/readyz 503 while draining, RTMP and HTTP-FLV viewers served
//! through the grace period).
//!
//! (Over 450 lines: the HTTP endpoints' scenarios share one relay-process harness.)

mod common;

use std::process::Command;
use std::time::Duration;

use common::flv_reader::FlvReader;
use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, set_data_frame, video_payload, video_sequence_header};
use tokio::io::AsyncWriteExt;

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
        ("--publish-keys-file", "SURGE_PUBLISH_KEYS_FILE"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_metrics_flv_limits_end_of_stream() {
    // An origin: only the origin tier takes publishers.
    let relay = RelayProcess::start(&[
        "--tier",
        "origin",
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
    assert!(
        flv.read_until_tags(7, Duration::from_secs(5)).await,
        "GOP cache not delivered: {:?}",
        flv.tags().1
    );
    let (body, types) = flv.tags();
    assert_eq!(&body[..3], b"FLV");
    // Metadata, sequence header, then the GOP cache from the keyframe at frame 25 (5 frames).
    assert_eq!(
        types,
        vec![18, 9, 9, 9, 9, 9, 9],
        "instant start: metadata, seq header, GOP"
    );

    let stats = common::stats(relay.http).await;
    assert_eq!(stats["relay"]["tier"], "origin");
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
        "surge_relay_ingest_bits_per_second{",
        // Deprecated, still served for one release.
        "surge_relay_ingest_kbps{",
        "surge_relay_max_viewers",
        "tier=\"origin\"",
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

/// Long enough for the checks made while draining on a loaded machine; the tests check the
/// relay exits after it, not before.
const GRACE: Duration = Duration::from_secs(4);
const GRACE_FLAG: &str = "4s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_unready_stops_accepting_and_serves_viewers_through_the_grace_period() {
    let _serial = common::real_time_lock().await;
    let mut relay = RelayProcess::start(&["--shutdown-grace", GRACE_FLAG, "--log-format", "json"]);
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
    assert_eq!(common::http_get(relay.http, "/readyz").await.0, 200);
    relay.terminate();
    let started = tokio::time::Instant::now();
    let closed = common::wait_until(GRACE, || async {
        relay.log_contains("rtmp listener closed")
    })
    .await;
    assert!(closed, "no drain after SIGTERM:\n{}", relay.log_text());
    // What a Kubernetes rollout waits for: not ready while draining, still alive.
    let (status, _, body) = common::http_get(relay.http, "/readyz").await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).trim()),
        (503, "draining"),
        "/readyz while draining"
    );
    assert_eq!(common::http_get(relay.http, "/healthz").await.0, 200);
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
    assert_eq!(
        common::http_get(relay.http, "/readyz").await.0,
        503,
        "still draining, still not ready"
    );
    assert!(
        started.elapsed() < GRACE,
        "checks outlasted the grace period"
    );
    assert_exits_after_grace(&mut relay, started).await;
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

#[test]
fn help_shows_the_listen_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_surge-relay"))
        .arg("--help")
        .env_remove("SURGE_HTTP_LISTEN")
        .env_remove("SURGE_RTMP_LISTEN")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    // The flag's own paragraph, up to the next flag.
    let section = |flag: &str| -> String {
        let start = help
            .find(&format!("{flag} <"))
            .unwrap_or_else(|| panic!("--help lacks {flag}:\n{help}"));
        let rest = &help[start + flag.len()..];
        let end = rest.find("\n  -").unwrap_or(rest.len());
        rest[..end].to_string()
    };
    let http = section("--http-listen");
    assert!(http.contains("[default: 0.0.0.0:8080]"), "{http}");
    let rtmp = section("--rtmp-listen");
    assert!(rtmp.contains("[default: 0.0.0.0:1935]"), "{rtmp}");

    if std::env::var_os("SURGE_HTTP_LISTEN").is_none() {
        use clap::Parser;
        let cfg = surge_relay::config::Config::try_parse_from(["surge-relay"]).expect("defaults");
        assert_eq!(cfg.http_listen.to_string(), "0.0.0.0:8080");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_frames_metric_counts_a_skipped_viewer() {
    let relay = RelayProcess::start(&[
        "--viewer-backlog-bytes",
        "50000",
        "--viewer-send-buffer-bytes",
        "16384",
        "--slow-viewer-timeout",
        "10s",
    ]);
    let (mut publisher, _) = RtmpClient::publish(relay.rtmp, "live", "m")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_sequence_header())
        .await
        .expect("seq");
    publisher
        .send_media(9, 0, video_payload(true, &[0; 5000]))
        .await
        .expect("keyframe");
    let viewer = RtmpClient::connect_small_buffer(relay.rtmp, "live", 4096)
        .await
        .expect("connect");
    let (mut viewer, _) = viewer.start_play("m").await.expect("play");
    let labels = [("app", "live"), ("stream", "m")];
    let name = "surge_relay_dropped_frames_total";
    assert_eq!(
        common::metric(relay.http, name, &labels)
            .await
            .unwrap_or(0.0),
        0.0,
        "nothing dropped yet"
    );

    // The viewer stops reading while ~600 kB go by (keyframe every 10 frames), then resumes:
    // it is far past its 50 kB backlog and skips ahead to a keyframe.
    for i in 1..=120u32 {
        publisher
            .send_media(9, i * 40, video_payload(i % 10 == 0, &[i as u8; 5000]))
            .await
            .expect("video");
    }
    // A last frame 1 s after the keyframe at frame 120: gop_cache_ms is 1000 only once the
    // relay holds the whole burst.
    const LAST_TS: u32 = 120 * 40 + 1000;
    publisher
        .send_media(9, LAST_TS, video_payload(false, &[0; 5000]))
        .await
        .expect("video");
    let held = common::wait_until(Duration::from_secs(10), || async {
        common::stats(relay.http).await["streams"][0]["gop_cache_ms"] == 1000
    })
    .await;
    assert!(held, "the relay did not take in the burst");
    // Now the viewer reads, up to the last frame.
    let mut got = 0;
    loop {
        let m = viewer
            .next_message(Duration::from_secs(10))
            .await
            .expect("the viewer gets the stream up to its last frame");
        got += 1;
        if m.type_id == 9 && m.timestamp == LAST_TS {
            break;
        }
    }
    let dropped = common::metric(relay.http, name, &labels).await;
    let stats = common::stats(relay.http).await;
    eprintln!("viewer read {got} messages; dropped_frames_total {dropped:?}");
    assert!(
        dropped.is_some_and(|d| d > 0.0),
        "no dropped frames in /metrics ({got} messages read): {dropped:?}\n{stats}"
    );
    assert_eq!(
        Some(
            stats["streams"][0]["dropped_frames"]
                .as_f64()
                .unwrap_or(0.0)
        ),
        dropped,
        "/metrics and /api/v1/streams agree"
    );
    assert!(got < 120, "the viewer got every frame ({got})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_http_flv_viewers_and_refuses_new_ones() {
    let _serial = common::real_time_lock().await;
    let mut relay = RelayProcess::start(&["--shutdown-grace", GRACE_FLAG]);
    let (mut publisher, _) = RtmpClient::publish(relay.rtmp, "live", "d")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_payload(true, &[1; 1000]))
        .await
        .expect("video");
    let mut flv = FlvReader::open(relay.http, "/live/d.flv").await;
    assert!(flv.head.starts_with("HTTP/1.1 200"), "{}", flv.head);
    assert!(
        flv.read_until_tags(1, Duration::from_secs(5)).await,
        "FLV viewer got the GOP"
    );

    relay.terminate();
    let started = tokio::time::Instant::now();
    let draining = common::wait_until(GRACE, || async { relay.log_contains("draining") }).await;
    assert!(draining, "{}", relay.log_text());

    // A new HTTP-FLV request is refused as the README says (503), the HTTP side still answers.
    let (status, _, body) = common::http_get(relay.http, "/live/d.flv").await;
    assert_eq!(
        status,
        503,
        "new HTTP-FLV viewer while draining: {}",
        String::from_utf8_lossy(&body)
    );

    // The existing viewer keeps getting live frames during the grace period.
    let before = flv.tag_list().len();
    for i in 1..10u32 {
        publisher
            .send_media(9, i * 40, video_payload(false, &[i as u8; 1000]))
            .await
            .expect("publisher still served");
    }
    flv.read_until_tags(before + 9, Duration::from_secs(3))
        .await;
    let tags = flv.tag_list();
    assert_eq!(tags.len(), before + 9, "FLV viewer frames while draining");
    assert_eq!(tags.last().map(|t| t.timestamp), Some(9 * 40));
    assert!(
        started.elapsed() < GRACE,
        "checks outlasted the grace period"
    );

    // After the grace the process exits and the response ends.
    assert_exits_after_grace(&mut relay, started).await;
    assert!(
        flv.read_for(Duration::from_secs(2)).await,
        "FLV response still open after exit"
    );
}

/// After SIGTERM at `started` with `--shutdown-grace` [`GRACE`]: the relay exits (within the
/// grace plus 5 s), and not before the grace is over.
async fn assert_exits_after_grace(relay: &mut RelayProcess, started: tokio::time::Instant) {
    let exited = common::wait_until(GRACE + Duration::from_secs(5), || {
        let running = relay.is_running();
        async move { !running }
    })
    .await;
    assert!(exited, "relay still running after the grace period");
    let took = started.elapsed();
    assert!(
        took >= GRACE - Duration::from_millis(100),
        "exited before the grace period: {took:?}"
    );
}
