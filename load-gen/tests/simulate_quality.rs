//! The simulator with a mis-set capacity (`--true-capacity-factor`): relays that hold half of
//! what viewersPerEdge says, whose load says so. Surge's quality signal keeps the viewers;
//! without it the forecast sizes for relays that do not exist.

use std::path::PathBuf;
use std::process::Command;

use surge_load::simulate::{PolicyReport, Report, SimulateArgs, simulate_trace};

fn args(name: &str, factor: f64, no_quality: bool) -> SimulateArgs {
    let trace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("traces")
        .join(format!("{name}.csv"));
    SimulateArgs {
        true_capacity_factor: factor,
        no_quality,
        ..SimulateArgs::for_trace(trace)
    }
}

fn surge(report: &Report) -> &PolicyReport {
    report
        .policies
        .iter()
        .find(|p| p.name == "surge")
        .expect("surge ran")
}

#[test]
fn at_half_the_capacity_the_load_signal_keeps_the_viewers_the_forecast_alone_drops() {
    for name in ["facebook", "twitch"] {
        let (on, _, _) = simulate_trace(&args(name, 0.5, false)).expect("simulates");
        let (off, _, _) = simulate_trace(&args(name, 0.5, true)).expect("simulates");
        let (on, off) = (surge(&on), surge(&off));
        // Without the rule a third of the viewers or more go short at the peak.
        assert!(
            off.underprovisioned_viewer_seconds > 1e6,
            "{name}: viewersPerEdge alone starves viewers: {off:?}"
        );
        assert!(
            on.underprovisioned_viewer_seconds * 100.0 < off.underprovisioned_viewer_seconds,
            "{name}: the rule cuts the shortfall a hundredfold: {on:?} vs {off:?}"
        );
        assert!(
            on.shortfall_vs_reactive.is_some_and(|r| r < 0.1),
            "{name}: close to the correctly sized run: {on:?}"
        );
        // Twice the edges of the rule-less run (they hold half), not more than about that.
        let cost = on.relay_seconds / off.relay_seconds;
        assert!((1.5..2.5).contains(&cost), "{name}: cost ×{cost:.2}");
    }
}

#[test]
fn with_the_capacity_it_says_the_rule_changes_nothing() {
    for name in ["facebook", "twitch"] {
        let (on, _, _) = simulate_trace(&args(name, 1.0, false)).expect("simulates");
        let (off, _, _) = simulate_trace(&args(name, 1.0, true)).expect("simulates");
        let (on, off) = (surge(&on), surge(&off));
        assert_eq!(
            on.underprovisioned_viewer_seconds,
            off.underprovisioned_viewer_seconds
        );
        assert_eq!(on.relay_seconds, off.relay_seconds, "{name}");
        assert_eq!(on.scale_events, off.scale_events, "{name}");
    }
}

#[test]
fn the_factor_is_checked_and_shown() {
    let bin = env!("CARGO_BIN_EXE_surge-load");
    let trace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("traces/steady.csv");
    for bad in ["0", "-1", "11", "nan"] {
        let out = Command::new(bin)
            .args(["simulate", "--trace"])
            .arg(&trace)
            .arg(format!("--true-capacity-factor={bad}"))
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{bad} is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--true-capacity-factor"), "{bad}: {err}");
    }
    let out = Command::new(bin)
        .args(["simulate", "--policy", "surge", "--trace"])
        .arg(&trace)
        .args(["--true-capacity-factor", "0.5"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("edges really hold 1,000 viewers (0.5x the configured edge size)"),
        "{table}"
    );
}
