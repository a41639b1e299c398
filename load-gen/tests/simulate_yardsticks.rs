//! The yardsticks of `surge-load simulate`: perfect reaction (`reactive`) for shortfall and
//! the oracle for cost, on a shipped trace and over a seeded crowd family, and the
//! simulator's speed on the goal's workload.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use surge_load::simulate::policies::PolicyName;
use surge_load::simulate::{
    PolicyReport, Report, SeedRange, SeedRun, SimulateArgs, simulate_family, simulate_loaded,
    simulate_trace,
};
use surge_load::trace::generate::Shape;
use surge_load::trace::{Trace, read_trace};

fn trace(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("traces")
        .join(format!("{name}.csv"))
}

fn policy<'a>(report: &'a Report, name: &str) -> &'a PolicyReport {
    report
        .policies
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", report.policies))
}

#[test]
fn reactive_is_in_all_and_every_shortfall_is_a_ratio_to_it() {
    let (report, _, _) =
        simulate_trace(&SimulateArgs::for_trace(trace("facebook"))).expect("simulates");
    let names: Vec<&str> = report.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["surge", "hpa", "livejack", "reactive", "oracle"]);
    let reactive = policy(&report, "reactive");
    // A 3-minute crowd outruns any policy that only reacts.
    assert!(
        reactive.underprovisioned_viewer_seconds > 0.0,
        "{reactive:?}"
    );
    assert_eq!(
        report.reactive_underprovisioned_viewer_seconds,
        reactive.underprovisioned_viewer_seconds
    );
    assert_eq!(reactive.shortfall_vs_reactive, Some(1.0));
    for p in &report.policies {
        let want = (p.underprovisioned_viewer_seconds / reactive.underprovisioned_viewer_seconds
            * 1000.0)
            .round()
            / 1000.0;
        assert_eq!(p.shortfall_vs_reactive, Some(want), "{p:?}");
    }
    assert_eq!(policy(&report, "oracle").shortfall_vs_reactive, Some(0.0));
    assert_eq!(policy(&report, "oracle").cost_vs_oracle, 1.0);
    // Reactive keeps no headroom: it costs about what the oracle does (a little less, being
    // short), far less than headroom-keeping policies.
    assert!(reactive.cost_vs_oracle <= 1.05, "{reactive:?}");
    assert!(policy(&report, "livejack").cost_vs_oracle > reactive.cost_vs_oracle);

    // One policy alone still gets both ratios: the yardsticks run anyway.
    let alone = SimulateArgs {
        policy: PolicyName::Surge,
        ..SimulateArgs::for_trace(trace("facebook"))
    };
    let (only, _, _) = simulate_trace(&alone).expect("simulates");
    assert_eq!(only.policies.len(), 1);
    assert_eq!(
        only.reactive_underprovisioned_viewer_seconds,
        report.reactive_underprovisioned_viewer_seconds
    );
    assert_eq!(
        only.policies[0].shortfall_vs_reactive,
        policy(&report, "surge").shortfall_vs_reactive
    );
    assert_eq!(
        only.policies[0].cost_vs_oracle,
        policy(&report, "surge").cost_vs_oracle
    );
}

#[test]
fn a_crowd_family_is_simulated_seed_by_seed_and_pooled() {
    let args = SimulateArgs {
        shape: Some(Shape::Push),
        seeds: Some("3..4".parse::<SeedRange>().expect("seeds")),
        trace: None,
        ..SimulateArgs::for_trace(PathBuf::new())
    };
    let family = simulate_family(&args).expect("simulates the family");
    assert_eq!(family.seeds, [3, 4]);
    assert_eq!(family.runs.len(), 2);
    assert!(family.runs[0].header.contains("seed=3"));
    assert_ne!(
        family.runs[0].peak_viewers, family.runs[1].peak_viewers,
        "each seed is its own curve"
    );
    for run in &family.runs {
        // A push step outruns perfect reaction on every seed.
        assert!(run.reactive_underprovisioned_viewer_seconds > 0.0);
    }
    let surge_i = family
        .policies
        .iter()
        .position(|p| p.name == "surge")
        .expect("surge");
    let surge = &family.policies[surge_i];
    let sum = |f: &dyn Fn(&SeedRun) -> f64| family.runs.iter().map(f).sum::<f64>();
    let pooled = sum(&|r| r.policies[surge_i].underprovisioned_viewer_seconds)
        / sum(&|r| r.reactive_underprovisioned_viewer_seconds);
    assert_eq!(
        surge.shortfall_vs_reactive.pooled,
        Some((pooled * 1000.0).round() / 1000.0)
    );
    let pooled_cost =
        sum(&|r| r.policies[surge_i].relay_seconds) / sum(&|r| r.oracle_relay_seconds);
    assert_eq!(
        surge.cost_vs_oracle.pooled,
        Some((pooled_cost * 1000.0).round() / 1000.0)
    );
    assert_eq!(surge.shortfall_vs_reactive.seeds, 2);
    let reactive = family
        .policies
        .iter()
        .find(|p| p.name == "reactive")
        .expect("reactive in all");
    assert_eq!(reactive.shortfall_vs_reactive.pooled, Some(1.0));

    // The same family on the command line, with JSON.
    let json = std::env::temp_dir().join(format!("surge-family-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .args(["simulate", "--shape", "push", "--seeds", "3..4", "--json"])
        .arg(&json)
        .output()
        .expect("runs surge-load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("shape push, seeds 3..4 (2 traces)"),
        "{table}"
    );
    for name in ["surge", "hpa", "livejack", "reactive", "oracle"] {
        assert!(table.lines().any(|l| l.starts_with(name)), "{table}");
    }
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(value["runs"].as_array().unwrap().len(), 2);
    assert!(value["policies"][0]["shortfall_vs_reactive"]["pooled"].is_number());
    std::fs::remove_file(&json).ok();

    // --trace and --shape exclude each other; --seeds needs --shape.
    let both = Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .args(["simulate", "--trace", "x.csv", "--shape", "push"])
        .output()
        .expect("runs surge-load");
    assert!(!both.status.success());
    let bad = Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .args(["simulate", "--shape", "push", "--seeds", "9..2"])
        .output()
        .expect("runs surge-load");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("empty"));
}

/// The goal's workload: 3 hours, 3 regions, 2M peak (the election trace's evening).
#[test]
fn three_hours_three_regions_two_million_simulate_in_under_a_second() {
    let day = read_trace(&trace("election")).expect("reads");
    let evening = Trace {
        header: day.header.clone(),
        rows: day
            .rows
            .into_iter()
            .filter(|r| (54_000..=64_800).contains(&r.t_s))
            .collect(),
    };
    let started = Instant::now();
    let (report, demand, outcomes) = simulate_loaded(
        &evening,
        "election 21:00-24:00",
        &SimulateArgs::for_trace(PathBuf::new()),
    )
    .expect("simulates");
    let took = started.elapsed();
    assert_eq!(demand.len(), 10_801);
    assert_eq!(demand.regions.len(), 3);
    assert!(
        report.peak_viewers >= 2_000_000.0,
        "{}",
        report.peak_viewers
    );
    assert_eq!(outcomes.len(), 5);
    // Under a second in a release build; a debug build (what `cargo test` runs) gets 5x.
    let limit = if cfg!(debug_assertions) {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(1)
    };
    assert!(took < limit, "{took:?}");
}
