//! `surge-load replay --verify-key` against real relays: viewers (RTMP and HTTP-FLV) at an
//! edge check every frame they receive. A signed stream, signed by the publisher or by the
//! origin for an unsigned publisher, verifies in full (nothing failed, nothing unverified);
//! viewers given a key that did not sign it count every group failed (`unknown_key`) and
//! nothing verified.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::relay::{start_relay, start_relay_with, wait_for_publisher};
use common::signing::{key_pair, start_edge};
use common::{free_port, one_at_a_time, publish, replay, temp_dir};

/// Viewers of the trace: `viewers` for `seconds` (played in real time).
fn trace(dir: &Path, name: &str, viewers: u32, seconds: u32) -> String {
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(
        &path,
        format!(
            "# livetrace v1; verify\nbroadcast_id,t_s,region,viewers\nb,0,r,{viewers}\nb,{seconds},r,{viewers}\n"
        ),
    )
    .expect("trace");
    path.to_str().expect("utf-8").to_owned()
}

/// `surge-load replay --verify-key KEY` with RTMP and HTTP-FLV viewers (alternating) at the
/// edge; returns the JSON report and the terminal summary.
fn verifying_replay(dir: &Path, name: &str, edge: (u16, u16), key: &str) -> (Value, String) {
    let report_path = dir.join(format!("{name}.json"));
    let html_path = dir.join(format!("{name}.html"));
    let out = replay(&[
        "--target",
        &format!("r=127.0.0.1:{}:{}", edge.0, edge.1),
        "--protocol",
        "mix",
        "--stream",
        "live/e2e",
        "--trace",
        &trace(dir, name, 4, 7),
        "--speed",
        "1",
        "--verify-key",
        key,
        "--report",
        report_path.to_str().expect("utf-8"),
        "--html",
        html_path.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "replay {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report"))
            .expect("JSON");
    let html = std::fs::read_to_string(&html_path).expect("html");
    assert!(
        html.contains("Signed frames (--verify-key)"),
        "{name}: HTML report"
    );
    (report, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every viewer (RTMP and HTTP-FLV) verified its frames: none failed, none unverified, and
/// what was not verified was only the last group awaiting its signature at the end.
fn assert_all_verified(name: &str, report: &Value, summary: &str) {
    let i = &report["integrity"];
    let n = |k: &str| i[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(n("failed"), 0, "{name}: {i:#}");
    assert_eq!(n("unverified"), 0, "{name}: {i:#}");
    assert_eq!(n("viewers_with_failed"), 0, "{name}: {i:#}");
    assert_eq!(
        n("verified") + n("pending_at_end"),
        n("frames"),
        "{name}: every frame verified or awaiting its signature at the end: {i:#}"
    );
    let viewers = i["by_viewer"].as_object().expect("by_viewer");
    assert_eq!(viewers.len(), 4, "{name}: {i:#}");
    let mut protocols: Vec<&str> = Vec::new();
    for (id, v) in viewers {
        // 30 fps, a group every 2 s, about 6 s of playing: at least two whole groups.
        assert!(
            v["verified"].as_u64().unwrap_or(0) >= 100,
            "{name}: viewer {id} verified too little: {v:#}"
        );
        // At most the group in progress (2 s at 30 fps, audio is not sent).
        assert!(
            v["pending_at_end"].as_u64().unwrap_or(u64::MAX) <= 2 * 60 + 10,
            "{name}: viewer {id}: {v:#}"
        );
        assert_eq!(v["failed"], 0, "{name}: viewer {id}: {v:#}");
        protocols.push(v["protocol"].as_str().unwrap_or(""));
    }
    assert!(
        protocols.contains(&"rtmp") && protocols.contains(&"flv"),
        "{name}: both protocols: {protocols:?}"
    );
    // The timeline says the same per second.
    let per_second: u64 = report["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|p| p["integrity"]["verified"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_second, n("verified"), "{name}");
    assert!(
        summary.contains(&format!(
            "signed frames: verified {} | failed 0 |",
            n("verified")
        )),
        "{name}: summary: {summary}"
    );
}

#[test]
fn viewers_verify_a_signed_stream_at_an_edge_and_count_a_key_that_did_not_sign_it() {
    let _serial = one_at_a_time();
    let dir = temp_dir("verify-replay");
    let (trusted, trusted_pub) = key_pair(&dir, "trusted");
    let (_, foreign_pub) = key_pair(&dir, "foreign");
    let (origin_rtmp, origin_http) = (free_port(), free_port());
    let _origin = start_relay(&dir, origin_rtmp, origin_http);
    let (_edge, edge_rtmp, edge_http) = start_edge(&dir, origin_rtmp, &trusted_pub);
    let _publisher = publish(&dir, origin_rtmp, &["--sign-key", &trusted]);
    wait_for_publisher(origin_http, "e2e", Duration::from_secs(10));

    // Both at once: viewers trusting the signer, and viewers trusting another key.
    let wrong_dir = dir.clone();
    let wrong = std::thread::spawn(move || {
        verifying_replay(&wrong_dir, "wrong", (edge_rtmp, edge_http), &foreign_pub)
    });
    let (report, summary) = verifying_replay(&dir, "right", (edge_rtmp, edge_http), &trusted_pub);
    assert_all_verified("publisher signs", &report, &summary);

    let (report, summary) = wrong.join().expect("wrong-key replay");
    let i = &report["integrity"];
    assert_eq!(
        i["verified"], 0,
        "nothing verified with a key that did not sign: {i:#}"
    );
    let failed = i["failed"].as_u64().unwrap_or(0);
    assert!(failed >= 4 * 100, "every viewer's groups failed: {i:#}");
    assert_eq!(
        i["failures_by_reason"]["unknown_key"]["frames"].as_u64(),
        Some(failed),
        "{i:#}"
    );
    assert_eq!(i["viewers_with_failed"], 4, "{i:#}");
    assert!(summary.contains("unknown_key"), "summary: {summary}");
}

#[test]
fn an_origin_signing_for_an_unsigned_publisher_verifies_at_the_viewers() {
    let _serial = one_at_a_time();
    let dir = temp_dir("verify-replay-origin-signs");
    let (key, key_pub) = key_pair(&dir, "origin");
    let (origin_rtmp, origin_http) = (free_port(), free_port());
    let _origin = start_relay_with(&dir, origin_rtmp, origin_http, &["--sign-key", &key]);
    let (_edge, edge_rtmp, edge_http) = start_edge(&dir, origin_rtmp, &key_pub);
    let _publisher = publish(&dir, origin_rtmp, &[]);
    wait_for_publisher(origin_http, "e2e", Duration::from_secs(10));
    let (report, summary) = verifying_replay(&dir, "origin", (edge_rtmp, edge_http), &key_pub);
    assert_all_verified("origin signs", &report, &summary);
}

#[test]
fn an_unreadable_verify_key_is_a_clear_error() {
    let dir = temp_dir("verify-replay-bad-key");
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "not a key").expect("write");
    let out = replay(&[
        "--target",
        "r=127.0.0.1:1",
        "--stream",
        "live/x",
        "--trace",
        &trace(&dir, "t", 1, 1),
        "--verify-key",
        bad.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--verify-key"), "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
}
