//! `surge-load publish --sign-key` against real relays: an origin passes the publisher's
//! signatures on, an edge pulling from it with `--verify-key` checks every group and keeps
//! the upstream; viewers at the edge get every frame. Signed with a key the edge does not
//! trust, the edge counts the failure (`unknown_key`), drops the upstream and names it in
//! `/api/v1/streams`.

use std::process::Command;
use std::time::Duration;

mod common;
use common::relay::{relay_metric, relay_stream, start_relay, wait_for_publisher, wait_until};
use common::signing::{key_pair, start_edge};
use common::{free_port, one_at_a_time, publish, replay, temp_dir};

fn failures(http: u16, reason: &str) -> f64 {
    relay_metric(
        http,
        "surge_relay_integrity_failures_total",
        &[&format!("reason=\"{reason}\"")],
    )
    .unwrap_or(0.0)
}

/// HTTP-FLV viewers of `live/e2e` at the edge, as `trace` says, with `extra` flags.
fn replay_at_edge(
    edge_rtmp: u16,
    edge_http: u16,
    trace: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let target = format!("r=127.0.0.1:{edge_rtmp}:{edge_http}");
    let trace = trace.to_str().expect("utf-8");
    let mut args = vec![
        "--target",
        &target,
        "--protocol",
        "flv",
        "--stream",
        "live/e2e",
        "--trace",
        trace,
    ];
    args.extend_from_slice(extra);
    replay(&args)
}

#[test]
fn a_signed_publish_verifies_at_the_edge_and_a_foreign_key_is_refused() {
    let _serial = one_at_a_time();
    let dir = temp_dir("signed-publish");
    let (trusted, trusted_pub) = key_pair(&dir, "trusted");
    let (foreign, _) = key_pair(&dir, "foreign");
    let (origin_rtmp, origin_http) = (free_port(), free_port());
    let _origin = start_relay(&dir, origin_rtmp, origin_http);
    let (_edge, edge_rtmp, edge_http) = start_edge(&dir, origin_rtmp, &trusted_pub);

    // Signed with the trusted key: eight seconds of viewers at the edge, four key groups.
    let publisher = publish(&dir, origin_rtmp, &["--sign-key", &trusted]);
    wait_for_publisher(origin_http, "e2e", Duration::from_secs(10));
    let trace = dir.join("trace.csv");
    std::fs::write(
        &trace,
        "# livetrace v1; signed\nbroadcast_id,t_s,region,viewers\nb,0,r,3\nb,8,r,3\n",
    )
    .expect("trace");
    let report_path = dir.join("report.json");
    let out = replay_at_edge(
        edge_rtmp,
        edge_http,
        &trace,
        &[
            "--speed",
            "1",
            "--report",
            report_path.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report"))
            .expect("JSON");
    let frames = report["details"]["frames"].as_u64().unwrap_or(0);
    assert!(
        frames >= 3 * 6 * 30,
        "{frames} frames at the edge: {report:#}"
    );
    assert_eq!(report["details"]["frames_without_timing_sei"], 0);
    assert_eq!(report["details"]["disconnects"], 0, "{report:#}");
    let any_failure = relay_metric(edge_http, "surge_relay_integrity_failures_total", &[]);
    assert_eq!(
        any_failure.unwrap_or(0.0),
        0.0,
        "the edge rejected the trusted publisher's signatures; see {}",
        dir.join("edge.log").display()
    );
    let log = std::fs::read_to_string(dir.join("publish.log")).unwrap_or_default();
    assert!(log.contains("signing frames"), "publisher log: {log}");
    drop(publisher);

    // Signed with a key the edge does not trust: counted and refused.
    let _foreign_publisher = publish(&dir, origin_rtmp, &["--sign-key", &foreign]);
    wait_for_publisher(origin_http, "e2e", Duration::from_secs(10));
    let _viewer = std::thread::spawn(move || {
        let _ = replay_at_edge(edge_rtmp, edge_http, &trace, &[]);
    });
    wait_until(
        "the edge to count an unknown-key failure",
        Duration::from_secs(20),
        || failures(edge_http, "unknown_key") >= 1.0,
    );
    // /api/v1/streams names the hop for the operator: the upstream and the reason.
    let stream = relay_stream(edge_http, "e2e").expect("the edge reports the stream");
    let integrity = &stream["integrity"];
    assert!(
        integrity["failures"].as_u64().unwrap_or(0) >= 1,
        "{stream:#}"
    );
    assert_eq!(integrity["last_reason"], "unknown_key", "{stream:#}");
    let upstream = integrity["last_upstream"].as_str().unwrap_or_default();
    assert!(
        upstream.contains(&format!(":{origin_rtmp}")),
        "the origin named as the failing upstream: {stream:#}"
    );
    assert!(
        integrity["last_failure_age_s"]
            .as_u64()
            .is_some_and(|s| s < 30),
        "{stream:#}"
    );
}

#[test]
fn an_unreadable_sign_key_is_a_clear_error() {
    let dir = temp_dir("signed-publish-bad-key");
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "not a key").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .args([
            "publish",
            "--url",
            "rtmp://127.0.0.1:1/live/x",
            "--sign-key",
        ])
        .arg(&bad)
        .output()
        .expect("run surge-load");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--sign-key"), "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
}
