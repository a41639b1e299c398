//! End-to-end against a real `surge-relay` (built from this workspace, killed on drop):
//! the publisher reconnects after the relay dies mid-stream, viewers cut off by the
//! server count as disconnects, received bytes add up, the HTML report is complete and
//! self-contained, and `--max-viewers` caps the replayed peak.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{Guard, free_port, replay, wait_for_port};

const BIN: &str = env!("CARGO_BIN_EXE_surge-load");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("surge-load-relay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The `surge-relay` binary next to this test's target directory, built (once per test
/// binary) with the same profile. `cargo test --workspace` has built it already.
fn relay_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable");
        // target/<profile>/deps/relay_e2e-HASH
        let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
        let bin = profile_dir.join("surge-relay");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "surge-relay", "--bin", "surge-relay"]);
        if let Some(target_dir) = profile_dir.parent() {
            build.arg("--target-dir").arg(target_dir);
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let built = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            bin.exists(),
            "surge-relay is needed at {} (cargo build -p surge-relay)",
            bin.display()
        );
        if !built {
            eprintln!("cargo build -p surge-relay failed; using {}", bin.display());
        }
        bin
    })
}

/// A surge-relay on fixed loopback ports (so a restart comes back on the same ones).
fn start_relay(dir: &Path, rtmp: u16, http: u16) -> Guard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("relay.log"))
        .expect("relay log");
    let child = Command::new(relay_bin())
        .args([
            "--rtmp-listen",
            &format!("127.0.0.1:{rtmp}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--shutdown-grace",
            "1s",
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start surge-relay");
    let guard = Guard(child);
    wait_for_port(rtmp);
    wait_for_port(http);
    guard
}

/// `surge-load publish` to live/e2e, its log in `dir/publish.log`.
fn publish(dir: &Path, port: u16) -> Guard {
    let log = std::fs::File::create(dir.join("publish.log")).expect("publish log");
    let child = Command::new(BIN)
        .args([
            "publish",
            "--url",
            &format!("rtmp://127.0.0.1:{port}/live/e2e"),
            "--duration",
            "60s",
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start publisher");
    Guard(child)
}

/// `GET /api/v1/streams` of the relay, parsed.
fn relay_streams(http: u16) -> Option<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", http)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /api/v1/streams HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

/// Waits until the relay has a publisher on live/e2e; returns how long that took.
fn wait_for_publisher(http: u16, patience: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let live = relay_streams(http).is_some_and(|v| {
            v["streams"].as_array().is_some_and(|streams| {
                streams
                    .iter()
                    .any(|s| s["name"] == "e2e" && s["source"] == "publisher")
            })
        });
        if live {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < patience,
            "no publisher on live/e2e within {patience:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_trace(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("# livetrace v1; {name}\nbroadcast_id,t_s,region,viewers\n{body}"),
    )
    .expect("trace");
    path.to_str().expect("utf-8 path").to_owned()
}

/// Runs a replay against live/e2e and returns its JSON report.
fn replay_report(dir: &Path, target: &str, extra: &[&str]) -> Value {
    let report_path = dir.join("report.json");
    let _ = std::fs::remove_file(&report_path);
    let mut args = vec![
        "--target",
        target,
        "--stream",
        "live/e2e",
        "--report",
        report_path.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let out = replay(&args);
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report")).expect("JSON")
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The viewers got live frames: every one with the timing SEI, lag measured and small.
fn assert_live_frames(report: &Value, min_frames: u64) {
    let d = &report["details"];
    assert!(
        d["frames"].as_u64().unwrap_or(0) >= min_frames,
        "{} frames, wanted {min_frames}: {report:#}",
        d["frames"]
    );
    assert_eq!(d["frames_without_timing_sei"], 0, "{report:#}");
    let p99 = num(&report["lag_ms"]["p99"]);
    assert!(p99 > 0.0 && p99 < 1000.0, "lag p99 {p99} ms");
}

#[test]
fn publisher_reconnects_with_backoff_after_the_relay_is_killed_and_restarted() {
    let dir = temp_dir("reconnect");
    let (rtmp, http) = (free_port(), free_port());
    let target = format!("*=127.0.0.1:{rtmp}");
    let three = write_trace(&dir, "three.csv", "b,0,eu,3\nb,2,eu,3\n");
    let relay = start_relay(&dir, rtmp, http);
    let _publisher = publish(&dir, rtmp);
    wait_for_publisher(http, Duration::from_secs(5));
    // Viewers watch the first relay: the publisher is mid-stream.
    let before = replay_report(&dir, &target, &["--trace", &three, "--speed", "1"]);
    assert_eq!(before["errors"], 0, "{before:#}");
    assert_live_frames(&before, 3 * 30);

    // The relay dies (SIGKILL) and comes back on the same ports a second later.
    drop(relay);
    std::thread::sleep(Duration::from_millis(1200));
    let _relay = start_relay(&dir, rtmp, http);
    let back_after = wait_for_publisher(http, Duration::from_secs(6));
    // After a session that carried frames the back-off is capped at 1 s.
    assert!(
        back_after < Duration::from_secs(3),
        "publisher back {back_after:?} after the restart"
    );

    // New viewers get live, timestamped frames again.
    let after = replay_report(&dir, &target, &["--trace", &three, "--speed", "1"]);
    assert_eq!(after["errors"], 0, "{after:#}");
    assert_live_frames(&after, 3 * 30);

    // The publisher's log shows the failure, growing delays between attempts, and the
    // second session.
    // surge-load writes colours only to a terminal: the file is plain text.
    let log = std::fs::read_to_string(dir.join("publish.log")).unwrap_or_default();
    assert!(log.contains("publish failed"), "{log}");
    let delays: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("reconnecting in ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(
        delays.len() >= 2 && delays[0] == "250ms" && delays[1] == "500ms",
        "back-off delays {delays:?}"
    );
    assert!(
        delays.iter().all(|d| ["250ms", "500ms", "1s"].contains(d)),
        "back-off beyond 1 s after a live session: {delays:?}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("session=2") && l.contains("publishing to")),
        "{log}"
    );
}

#[test]
fn viewers_cut_off_by_the_relay_count_as_disconnects_and_bytes_add_up() {
    let dir = temp_dir("disconnect");
    let (rtmp, http) = (free_port(), free_port());
    let relay = start_relay(&dir, rtmp, http);
    let _publisher = publish(&dir, rtmp);
    wait_for_publisher(http, Duration::from_secs(5));
    let trace = write_trace(&dir, "three.csv", "b,0,eu,3\nb,7,eu,3\n");
    let target = format!("*=127.0.0.1:{rtmp}");
    // Kill the relay while the three viewers watch (preflight < 1 s, then ~3 s of play).
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        drop(relay);
    });
    let report = replay_report(&dir, &target, &["--trace", &trace, "--speed", "1"]);
    killer.join().expect("killer thread");
    let d = &report["details"];
    let timeline = report["timeline"].as_array().expect("timeline");

    // Each viewer was playing when the server went away: one disconnect each, named.
    assert_eq!(d["disconnects"], 3, "{report:#}");
    assert!(
        d["error_kinds"]
            .as_object()
            .is_some_and(|k| k.keys().any(|k| k.starts_with("disconnect: "))),
        "{report:#}"
    );
    assert_eq!(timeline.last().expect("points")["disconnects"], 3);
    assert!(
        timeline.iter().any(|p| p["viewers"] == 3),
        "never 3 playing"
    );
    assert_eq!(timeline.last().expect("points")["viewers"], 0);
    // Their attempts to come back while nothing listens are errors, not disconnects.
    assert!(report["errors"].as_u64().unwrap_or(0) >= 3, "{report:#}");

    // Bytes: received, equal to the per-second throughput summed over the timeline, and
    // what a 600 kbit/s, 30 fps stream weighs per frame.
    let bytes = num(&d["bytes"]);
    assert!(bytes > 0.0);
    let mut t_prev = 0.0;
    let mut from_timeline = 0.0;
    for p in timeline {
        let t = num(&p["t_s"]);
        from_timeline += num(&p["mbps"]) * 1e6 / 8.0 * (t - t_prev);
        t_prev = t;
    }
    assert!(
        (from_timeline - bytes).abs() <= bytes * 0.02,
        "timeline sums to {from_timeline:.0} bytes, report says {bytes}"
    );
    let per_frame = bytes / num(&d["frames"]);
    assert!(
        (1250.0..5000.0).contains(&per_frame),
        "{per_frame:.0} bytes per frame (600 kbit/s at 30 fps is 2500)"
    );
    let mean_mbps = bytes * 8.0 / 1e6 / num(&d["wall_seconds"]);
    assert!((num(&d["mean_mbps"]) - mean_mbps).abs() < 0.01);
}

#[test]
fn html_report_has_the_four_plots_and_is_self_contained() {
    let dir = temp_dir("html");
    let (rtmp, http) = (free_port(), free_port());
    let _relay = start_relay(&dir, rtmp, http);
    let _publisher = publish(&dir, rtmp);
    wait_for_publisher(http, Duration::from_secs(5));
    let trace = write_trace(&dir, "ramp.csv", "b,0,eu,1\nb,2,eu,4\nb,4,eu,4\n");
    let html_path = dir.join("report.html");
    let report = replay_report(
        &dir,
        &format!("*=127.0.0.1:{rtmp}"),
        &[
            "--trace",
            &trace,
            "--speed",
            "1",
            "--html",
            html_path.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(report["errors"], 0, "{report:#}");
    let html = std::fs::read_to_string(&html_path).expect("html");
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));

    // Four inline SVG plots, in order, each with its title, axis labels and legend, and
    // each drawing data (a path with points, not "no data").
    let plots: Vec<&str> = html.split("<svg").skip(1).collect();
    assert_eq!(plots.len(), 4, "{html}");
    let expected: [(&str, &[&str]); 4] = [
        (
            "Viewers over time",
            &["wall time (s)", "viewers", "trace (scaled)", "playing"],
        ),
        (
            "Delivery lag per second",
            &["wall time (s)", "lag (ms)", ">p50<", ">p99<", ">max<"],
        ),
        (
            "Startup time CDF",
            &["startup (ms)", "viewers (%)", ">startup<"],
        ),
        (
            "Stall ratio vs player pre-buffer",
            &["pre-buffer (s)", "stalled time (%)", ">stall ratio<"],
        ),
    ];
    for (svg, (title, labels)) in plots.iter().zip(expected) {
        let svg = &svg[..svg.find("</svg>").expect("closed svg")];
        assert!(svg.contains(&format!(">{title}")), "no {title}: {svg}");
        for label in labels {
            assert!(svg.contains(label), "{title}: no {label}");
        }
        assert!(!svg.contains("no data"), "{title} is empty");
        assert!(svg.contains("<path d=\"M"), "{title} draws no line");
    }
    // The viewers plot draws the trace and the playing count as lines of several points;
    // the stall plot has one marker per modelled pre-buffer size.
    let viewers_paths = plots[0].matches("<path d=\"M").count();
    assert_eq!(viewers_paths, 3, "trace, playing, connecting");
    let stall_markers = plots[3].matches("<circle").count();
    let grid = report["details"]["stall_by_prebuffer"]
        .as_array()
        .map(Vec::len);
    assert_eq!(Some(stall_markers), grid);

    // Self-contained: nothing is fetched from anywhere.
    let lower = html.to_lowercase();
    for needle in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "href='http",
        "url(",
        "@import",
        "<script",
        "<link",
        "<img",
        "<iframe",
    ] {
        assert!(!lower.contains(needle), "HTML references `{needle}`");
    }
}

#[test]
fn max_viewers_scales_the_trace_peak_under_the_limit() {
    let dir = temp_dir("max-viewers");
    let (rtmp, http) = (free_port(), free_port());
    let _relay = start_relay(&dir, rtmp, http);
    let _publisher = publish(&dir, rtmp);
    wait_for_publisher(http, Duration::from_secs(5));
    let tiny = format!("{}/tests/data/tiny.csv", env!("CARGO_MANIFEST_DIR"));
    // tiny.csv peaks at 30 (20 eu + 10 us); capped at 10 it is scaled by 1/3.
    let report = replay_report(
        &dir,
        &format!("*=127.0.0.1:{rtmp}"),
        &["--trace", &tiny, "--speed", "2", "--max-viewers", "10"],
    );
    assert_eq!(report["errors"], 0, "{report:#}");
    assert!((num(&report["details"]["scale"]) - 1.0 / 3.0).abs() < 1e-3);
    // At or under the limit, within the replay test's tolerance (10%) of it.
    let peak = report["viewers_peak"].as_u64().expect("peak");
    assert!(
        (9..=10).contains(&peak),
        "peak {peak} with --max-viewers 10"
    );
    let timeline = report["timeline"].as_array().expect("timeline");
    let max_target = timeline.iter().filter_map(|p| p["target"].as_u64()).max();
    assert_eq!(max_target, Some(10), "scaled trace peak");
    assert!(
        timeline
            .iter()
            .all(|p| p["viewers"].as_u64().is_some_and(|v| v <= 10)),
        "more than 10 playing"
    );
    // Connections follow the scaled trace within max(2, 10%) in 90% of the samples.
    let close = timeline
        .iter()
        .filter(|p| {
            let target = num(&p["target"]);
            let have = num(&p["viewers"]) + num(&p["connecting"]);
            (have - target).abs() <= (target * 0.1).max(2.0)
        })
        .count();
    assert!(
        close * 10 >= timeline.len() * 9,
        "{close}/{} samples within tolerance",
        timeline.len()
    );
    // Scaled churn: a third of the trace's 39 arrivals (13), give or take rounding.
    let sessions = report["viewer_sessions"].as_u64().expect("sessions");
    assert!((12..=14).contains(&sessions), "{sessions} sessions");
}
