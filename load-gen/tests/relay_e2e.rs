//! End-to-end against a real `surge-relay` (built from this workspace, a failed build fails
//! the test; killed on drop):
//! the publisher reconnects after the relay dies mid-stream, viewers cut off by the
//! server count as disconnects, received bytes add up, the HTML report is complete and
//! self-contained, and `--max-viewers` scales the trace to the limit with the delivery
//! promises kept.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::promises::{StartUp, assert_delivery_promises, assert_follows_trace};
use common::relay::{relay_metric, relay_viewers, start_relay, wait_for_publisher, wait_until};
use common::trace::TraceExpectation;
use common::{data, free_port, one_at_a_time, publish, publisher_backoffs, replay, temp_dir};

/// The publisher's defaults (`surge-load publish --fps --gop-seconds --bitrate-kbps`).
const PUBLISH_FPS: f64 = 30.0;
const PUBLISH_GOP_SECONDS: f64 = 2.0;
const PUBLISH_BYTES_PER_SECOND: f64 = 600_000.0 / 8.0;

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
    let _serial = one_at_a_time();
    let dir = temp_dir("reconnect");
    let (rtmp, http) = (free_port(), free_port());
    let target = format!("*=127.0.0.1:{rtmp}");
    let three = write_trace(&dir, "three.csv", "b,0,eu,3\nb,2,eu,3\n");
    let relay = start_relay(&dir, rtmp, http);
    let _publisher = publish(&dir, rtmp, &[]);
    wait_for_publisher(http, "e2e", Duration::from_secs(5));
    // Viewers watch the first relay: the publisher is mid-stream.
    let before = replay_report(&dir, &target, &["--trace", &three, "--speed", "1"]);
    assert_eq!(before["errors"], 0, "{before:#}");
    assert_live_frames(&before, 3 * 30);

    // The relay dies (SIGKILL) and comes back on the same ports once the publisher has
    // lost its session and been refused once (two back-offs: 250 ms, then 500 ms).
    let backoffs_before = publisher_backoffs(&dir).len();
    drop(relay);
    wait_until(
        "the publisher backs off twice after the kill",
        Duration::from_secs(10),
        || publisher_backoffs(&dir).len() >= backoffs_before + 2,
    );
    let _relay = start_relay(&dir, rtmp, http);
    let back_after = wait_for_publisher(http, "e2e", Duration::from_secs(6));
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
    let delays = publisher_backoffs(&dir);
    assert!(
        delays.len() >= 2 && delays[0] == "250ms" && delays[1] == "500ms",
        "back-off delays {delays:?}"
    );
    assert!(
        delays
            .iter()
            .all(|d| ["250ms", "500ms", "1s"].contains(&d.as_str())),
        "back-off beyond 1 s after a live session: {delays:?}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("session=2") && l.contains("publishing to")),
        "{log}"
    );
}

fn unix_now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[test]
fn viewers_cut_off_by_the_relay_count_as_disconnects_and_bytes_add_up() {
    let _serial = one_at_a_time();
    let dir = temp_dir("disconnect");
    let (rtmp, http) = (free_port(), free_port());
    let relay = start_relay(&dir, rtmp, http);
    let _publisher = publish(&dir, rtmp, &[]);
    wait_for_publisher(http, "e2e", Duration::from_secs(5));
    let trace = write_trace(&dir, "three.csv", "b,0,eu,3\nb,7,eu,3\n");
    let target = format!("*=127.0.0.1:{rtmp}");
    // Kill the relay while the three viewers watch: once it counts them on two polls in
    // a row (so the replay's preflight probe, which leaves at its first keyframe, is not
    // one of them) and has since sent them their GOP catch-up and two more seconds each.
    let killer = std::thread::spawn(move || {
        let sent = || {
            relay_metric(http, "surge_relay_bytes_sent_total", &["protocol=\"rtmp\""])
                .expect("the relay's surge_relay_bytes_sent_total{protocol=\"rtmp\"}")
        };
        let mut seen = 0;
        wait_until(
            "the relay serves 3 viewers",
            Duration::from_secs(20),
            || {
                seen = if relay_viewers(http, "e2e") == Some(3) {
                    seen + 1
                } else {
                    0
                };
                seen >= 2
            },
        );
        let from = sent();
        let watched = 3.0 * (PUBLISH_GOP_SECONDS + 2.0) * PUBLISH_BYTES_PER_SECOND;
        wait_until(
            "the relay sends the viewers 2 s of video",
            Duration::from_secs(20),
            || sent() - from >= watched,
        );
        drop(relay);
        unix_now_s()
    });
    let report = replay_report(&dir, &target, &["--trace", &trace, "--speed", "1"]);
    let killed_at = killer.join().expect("killer thread");
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
    // `started_unix_s` puts the timeline on the wall clock: the disconnects show in the
    // second that ends just after the kill (a chaos script finds its fault that way).
    let kill_t = killed_at - num(&d["started_unix_s"]);
    let cut = timeline
        .iter()
        .find(|p| p["disconnects"] == 3)
        .map(|p| num(&p["t_s"]))
        .unwrap_or(f64::NAN);
    assert!(
        cut >= kill_t - 0.1 && cut <= kill_t + 1.5,
        "disconnects at t={cut:.2} s, the kill at t={kill_t:.2} s"
    );
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
fn html_report_has_its_plots_and_is_self_contained() {
    let _serial = one_at_a_time();
    let dir = temp_dir("html");
    let (rtmp, http) = (free_port(), free_port());
    let _relay = start_relay(&dir, rtmp, http);
    let _publisher = publish(&dir, rtmp, &[]);
    wait_for_publisher(http, "e2e", Duration::from_secs(5));
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

    // Six inline SVG plots, in order, each with its title, axis labels and legend, and
    // each drawing data (a path with points, not "no data"): four of the run, two of the
    // QoE section.
    let plots: Vec<&str> = html.split("<svg").skip(1).collect();
    assert_eq!(plots.len(), 5, "{html}");
    let expected: [(&str, &[&str]); 5] = [
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
            "Playback latency p50 vs pre-buffer",
            &["pre-buffer P (s)", "playback latency (s)", ">latency p50<"],
        ),
        (
            "Stall ratio vs pre-buffer (QoE model)",
            &["pre-buffer P (s)", "stalled time (%)", ">stall ratio<"],
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
    // the QoE stall plot has one marker per modelled pre-buffer size.
    let viewers_paths = plots[0].matches("<path d=\"M").count();
    assert_eq!(viewers_paths, 3, "trace, playing, connecting");
    let stall_markers = plots[4].matches("<circle").count();
    let grid = report["details"]["stall_by_prebuffer"]
        .as_array()
        .map(Vec::len);
    assert_eq!(Some(stall_markers), grid);
    let sweep = report["qoe"]["by_player_buffer"].as_array().map(Vec::len);
    assert_eq!(Some(stall_markers), sweep);

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
    let _serial = one_at_a_time();
    let dir = temp_dir("max-viewers");
    let (rtmp, http) = (free_port(), free_port());
    let _relay = start_relay(&dir, rtmp, http);
    let _publisher = publish(&dir, rtmp, &[]);
    wait_for_publisher(http, "e2e", Duration::from_secs(5));
    let tiny = data("tiny.csv");
    let report = replay_report(
        &dir,
        &format!("*=127.0.0.1:{rtmp}"),
        &[
            "--trace",
            tiny.to_str().expect("utf-8 path"),
            "--speed",
            "2",
            "--max-viewers",
            "10",
        ],
    );
    // The trace scaled so its peak total is the limit: the scale, the scaled arrivals and
    // playing viewers as the file says, and the relay's delivery promises kept.
    let expected = TraceExpectation::read(&tiny, Some(10));
    assert!(expected.scale < 1.0, "tiny.csv peaks above 10");
    assert_follows_trace(&report, &expected, StartUp::FromGopCache);
    assert_delivery_promises(&report, &expected, PUBLISH_FPS);
    // Never more than the limit, in the plan or playing.
    let timeline = report["timeline"].as_array().expect("timeline");
    for p in timeline {
        assert!(
            num(&p["target"]) <= 10.0 && num(&p["viewers"]) <= 10.0,
            "{p}"
        );
    }
    assert!(num(&report["viewers_peak"]) <= 10.0, "{report:#}");
}
