//! What a replay against a healthy surge-relay on loopback must show: the viewers the
//! trace asks for, playing, and the delivery figures the README promises.

use std::time::Duration;

use serde_json::Value;

use super::trace::TraceExpectation;

/// Promise: a viewer's first keyframe comes from the relay's GOP cache (README: "in a few
/// ms"), so start-up never waits for the publisher's next keyframe (2 s away at the
/// publisher's default GOP). 500 ms holds on a busy 2-core machine running debug builds.
pub const STARTUP_P99_PROMISE_MS: f64 = 500.0;
/// Promise: live frames reach viewers with no queueing at the relay; on loopback the
/// delivery lag is scheduling noise. 250 ms is far below a frame queue's worth (a relay
/// that held frames back even a few hundred ms, or dropped to the next keyframe, fails).
pub const LAG_P99_PROMISE_MS: f64 = 250.0;
/// Each region rounds its share of a scaled or interpolated total on its own: the
/// replayed total may differ from the trace's by half a viewer per region.
const ROUNDING_PER_REGION: f64 = 0.5;

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// When a server lets a new viewer play.
#[derive(Debug, Clone, Copy)]
pub enum StartUp {
    /// At once, from its GOP cache (surge-relay): within the start-up promise.
    FromGopCache,
    /// At the publisher's next keyframe, up to one GOP later (nginx-rtmp).
    AtNextKeyframe(Duration),
}

/// The replay opened the viewers the trace file asks for, and they were playing (had
/// their first keyframe), not merely connecting: sessions and peak as the trace says,
/// and in every one-second sample the playing count within max(2, 10%) of what the trace
/// asked for at some moment within one start-up time before it.
pub fn assert_follows_trace(report: &Value, expected: &TraceExpectation, startup: StartUp) {
    let details = &report["details"];
    let regions = details["regions"].as_array().expect("regions").len() as f64;
    let rounding = ROUNDING_PER_REGION * regions;
    // Whole-trace figures are integers unless the trace is scaled.
    let exact = if expected.scale < 1.0 { rounding } else { 0.0 };
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(details["disconnects"], 0, "{report:#}");
    assert!(
        (num(&details["scale"]) - expected.scale).abs() < 1e-6,
        "scale {} but the trace's peak {} needs {}",
        details["scale"],
        expected.peak / expected.scale,
        expected.scale
    );
    let sessions = num(&report["viewer_sessions"]);
    assert!(
        (sessions - expected.sessions).abs() <= exact,
        "{sessions} sessions; the trace has {} arrivals",
        expected.sessions
    );
    let peak = num(&report["viewers_peak"]);
    let (startup_allowance, peak_slack) = match startup {
        StartUp::FromGopCache => (Duration::from_secs_f64(STARTUP_P99_PROMISE_MS / 1e3), exact),
        // Waiting for a keyframe, churned-in viewers may not all play at the same moment.
        StartUp::AtNextKeyframe(gop) => (gop, (expected.peak * 0.1).max(2.0)),
    };
    assert!(
        peak <= expected.peak + exact && peak >= expected.peak - peak_slack,
        "{peak} viewers playing at the peak; the trace peaks at {}",
        expected.peak
    );
    let timeline = report["timeline"].as_array().expect("timeline");
    let trace_span = expected.span_seconds() / num(&details["speed"]);
    assert!(
        timeline.len() as f64 >= trace_span.floor(),
        "{} one-second samples for a {trace_span} s replay",
        timeline.len()
    );
    let lookback = startup_allowance.as_secs_f64() * num(&details["speed"]);
    for p in timeline {
        let t = num(&p["trace_t_s"]);
        let want = expected.viewers_at(t);
        let target = num(&p["target"]);
        assert!(
            (target - want).abs() <= rounding,
            "replay aimed at {target} viewers where the trace has {want:.1}: {p}"
        );
        let playing = num(&p["viewers"]);
        let (low, high) = expected.range(t - lookback, t);
        assert!(
            playing >= low - (low * 0.1).max(2.0) && playing <= high + (high * 0.1).max(2.0),
            "{playing} playing where the trace has {want:.1}: {p}"
        );
    }
}

/// Every frame arrived, in order and on time: no frame missing from any viewer's
/// sequence, no stall, every frame timestamped, lag p99 and start-up p99 within the
/// promises, and as many live frames as the viewers watched seconds at `fps`.
pub fn assert_delivery_promises(report: &Value, expected: &TraceExpectation, fps: f64) {
    let d = &report["details"];
    assert_eq!(d["frames_missing"], 0, "frames lost: {report:#}");
    assert_eq!(d["frames_without_timing_sei"], 0, "{report:#}");
    // With a 1 s player pre-buffer a stall needs a second without frames; nothing on
    // loopback justifies one.
    assert_eq!(d["stalls"], 0, "stalls: {report:#}");
    assert_eq!(num(&report["stall_ratio"]), 0.0, "{report:#}");
    let lag = &report["lag_ms"];
    let (lag_p50, lag_p99) = (num(&lag["p50"]), num(&lag["p99"]));
    assert!(lag_p50 > 0.0 && lag_p50 <= lag_p99, "{lag}");
    assert!(
        lag_p99 < LAG_P99_PROMISE_MS,
        "lag p99 {lag_p99} ms breaks the {LAG_P99_PROMISE_MS} ms promise: {lag}"
    );
    let startup_p99 = num(&report["startup_ms"]["p99"]);
    assert!(
        startup_p99 < STARTUP_P99_PROMISE_MS,
        "start-up p99 {startup_p99} ms breaks the {STARTUP_P99_PROMISE_MS} ms promise: {}",
        report["startup_ms"]
    );
    // Live frames (not replayed from the GOP cache): one per 1/fps of watching. 10% off
    // covers each session's start-up and the replay's 100 ms join/leave granularity.
    let live = num(&d["frames"]) - num(&d["frames_catchup"]);
    let watched = expected.viewer_seconds() / num(&d["speed"]);
    assert!(
        live >= 0.9 * watched * fps,
        "{live} live frames for {watched:.0} viewer-seconds at {fps} fps"
    );
}
