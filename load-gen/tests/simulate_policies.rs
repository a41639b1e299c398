//! The simulator on the shipped traces: the policy ordering and targets users rely on.

use std::path::PathBuf;
use std::process::Command;

use surge_load::simulate::{PolicyReport, Report, SimulateArgs, simulate_trace, stream_spec};

/// The README's headline scenario: a relay is Ready 30 s after it is asked for.
const READY_SECONDS: u64 = 30;
/// Target: surge's relay-seconds within this factor of the oracle's, times the Stream's
/// headroom (capacity it keeps above the forecast on purpose). The 25% on top pays for
/// forecasting ahead of a crowd, the scale-down stabilisation and whole relays.
/// (1.5x with the default 20% headroom.)
const SURGE_COST_TARGET_OVER_HEADROOM: f64 = 1.25;

/// Slow relays: Ready two minutes after they are asked for.
const SLOW_READY_SECONDS: u64 = 120;
/// Target with slow relays: surge short by at most a quarter of what the HPA is short.
const SLOW_READY_SHORTFALL_TARGET_VS_HPA: f64 = 0.25;

fn trace(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("traces")
        .join(format!("{name}.csv"))
}

/// The simulator set up like a Stream that sets nothing (the operator's defaults: surge plans
/// through the operator's own path with the Stream's defaults), the trace's regions.
fn args(name: &str, ready_seconds: u64) -> SimulateArgs {
    SimulateArgs {
        ready_seconds,
        ..SimulateArgs::for_trace(trace(name))
    }
}

/// The Stream's default headroom, read from the spec the simulator plans with.
fn default_headroom() -> f64 {
    stream_spec(&args("steady", READY_SECONDS), &["r".to_owned()])
        .expect("a Stream that sets nothing is valid")
        .scaling
        .headroom
}

fn surge_cost_target() -> f64 {
    (1.0 + default_headroom()) * SURGE_COST_TARGET_OVER_HEADROOM
}

fn policy<'a>(report: &'a Report, name: &str) -> &'a PolicyReport {
    report
        .policies
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", report.policies))
}

#[test]
fn surge_covers_flash_crowds_at_low_cost_where_reactive_scaling_falls_behind() {
    let target = surge_cost_target();
    for name in ["facebook", "twitch"] {
        let (report, _, _) = simulate_trace(&args(name, READY_SECONDS)).expect("simulates");
        assert!(
            !report.surges.is_empty(),
            "{name}: the flash crowd is found"
        );
        let surge = policy(&report, "surge");
        let hpa = policy(&report, "hpa");
        let oracle = policy(&report, "oracle");
        // The promise: capacity Ready before the crowd, not a single viewer short.
        assert_eq!(
            surge.underprovisioned_viewer_seconds, 0.0,
            "{name}: surge has capacity Ready before the crowd: {surge:?}"
        );
        assert_eq!(surge.peak_shortfall, 0.0, "{name}: {surge:?}");
        assert!(
            surge.cost_vs_oracle <= target,
            "{name}: surge misses its cost target of {target:.2}x the oracle: {surge:?}"
        );
        assert!(
            hpa.underprovisioned_viewer_seconds > 0.0 && hpa.peak_shortfall > 0.0,
            "{name}: the HPA reacts too late for a flash crowd: {hpa:?}"
        );
        // Every surge of the trace has capacity sooner under surge than under the HPA.
        assert_eq!(surge.surges.len(), report.surges.len(), "{surge:?}");
        assert_eq!(hpa.surges.len(), report.surges.len(), "{hpa:?}");
        for (s, h) in surge.surges.iter().zip(&hpa.surges) {
            assert!(
                s.time_to_capacity_s < h.time_to_capacity_s,
                "{name}: {s:?} vs {h:?}"
            );
        }
        assert_eq!(oracle.underprovisioned_viewer_seconds, 0.0);
        assert_eq!(oracle.cost_vs_oracle, 1.0);
    }
}

#[test]
fn the_oracle_is_the_lower_bound_on_cost_on_every_trace() {
    for name in ["facebook", "twitch", "periscope", "steady"] {
        let (report, _, _) = simulate_trace(&args(name, READY_SECONDS)).expect("simulates");
        let oracle = policy(&report, "oracle").relay_seconds;
        for p in &report.policies {
            // HPA may undercut the oracle only by being short of capacity.
            if p.underprovisioned_viewer_seconds == 0.0 {
                assert!(
                    p.relay_seconds >= oracle,
                    "{name}: {p:?} below oracle {oracle}"
                );
            }
        }
    }
}

#[test]
fn a_longer_ready_time_hurts_reactive_policies_more_than_surge() {
    let (fast, _, _) = simulate_trace(&args("facebook", READY_SECONDS)).expect("simulates");
    let (slow, _, _) = simulate_trace(&args("facebook", SLOW_READY_SECONDS)).expect("simulates");
    let under = |r: &Report, p: &str| policy(r, p).underprovisioned_viewer_seconds;
    assert!(under(&slow, "hpa") > under(&fast, "hpa"));
    assert!(under(&slow, "livejack") >= under(&fast, "livejack"));
    // Surge forecasts max(lead time, metric delay + ready time) ahead, so it keeps most of
    // the gap closed even when the 3-minute crowd outruns a linear forecast.
    assert!(
        under(&slow, "surge") < SLOW_READY_SHORTFALL_TARGET_VS_HPA * under(&slow, "hpa"),
        "surge misses its target of at most {SLOW_READY_SHORTFALL_TARGET_VS_HPA} of the \
         HPA's shortfall: {slow:?}"
    );
    assert!(under(&slow, "surge") < under(&slow, "livejack"), "{slow:?}");
}

#[test]
fn a_steady_stream_needs_no_scaling_from_anyone() {
    let (report, _, _) = simulate_trace(&args("steady", READY_SECONDS)).expect("simulates");
    for p in &report.policies {
        assert_eq!(p.underprovisioned_viewer_seconds, 0.0, "{p:?}");
        assert!(p.cost_vs_oracle <= 1.0 + 1e-9, "{p:?}");
    }
}

#[test]
fn the_command_prints_a_table_and_writes_json_and_svg() {
    let dir = std::env::temp_dir().join(format!("surge-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let svg = dir.join("out.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .args(["simulate", "--trace"])
        .arg(trace("periscope"))
        .args(["--policy", "all", "--ready-seconds", "30", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .expect("runs surge-load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    for name in ["surge", "hpa", "livejack", "reactive", "oracle"] {
        assert!(table.lines().any(|l| l.starts_with(name)), "{table}");
    }
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(value["trace"].as_str().unwrap().ends_with("periscope.csv"));
    let policies = value["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 5);
    for key in [
        "name",
        "underprovisioned_viewer_seconds",
        "shortfall_vs_reactive",
        "peak_shortfall",
        "relay_seconds",
        "cost_vs_oracle",
        "scale_events",
    ] {
        assert!(
            policies.iter().all(|p| !p[key].is_null()),
            "{key} in {value}"
        );
    }
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    assert_eq!(
        plot.matches("<polyline").count() % 6,
        0,
        "demand + 5 policies per panel"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("surge-sim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "# livetrace v1; bad\nbroadcast_id,t_s,region,viewers\nb,0,eu,10\nb,5,eu,ten\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .args(["simulate", "--trace"])
        .arg(&bad)
        .output()
        .expect("runs surge-load");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4") && err.contains("viewers"), "{err}");
    let mut a = args("steady", READY_SECONDS);
    a.broadcast = Some("nope".into());
    let e = simulate_trace(&a).unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("steady-small"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
