//! Scheduled events: Ready at the start, held while the event lasts, never below the forecast.

mod common;

use common::input;
use proptest::prelude::*;
use surge_planner::{
    PlanInput, PlannerState, RegionInput, ScheduledEvent, TierCount, TreeSettings, ViewerSample,
    plan,
};

fn event(start_s: f64, viewers: u64, regions: &[&str], minutes: Option<f64>) -> ScheduledEvent {
    ScheduledEvent {
        start_s,
        expected_viewers: viewers,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        duration_seconds: minutes.map(|m| m * 60.0),
    }
}

/// A tiny fleet: a reconcile every 5 s on samples 5 s old, edges Ready `ready_s` after they
/// are asked for, removals at once. Returns Ready edges per region at every second.
fn run(
    mut base: PlanInput,
    demand: impl Fn(&str, f64) -> f64,
    until_s: u64,
    ready_s: u64,
) -> Vec<(String, Vec<u32>)> {
    let names: Vec<String> = base.regions.iter().map(|r| r.name.clone()).collect();
    base.relay_ready_seconds = Some(ready_s as f64);
    let mut state = PlannerState::default();
    let mut asked: Vec<u32> = vec![1; names.len()];
    // (ready at, count) per region; the first edge is Ready from the start.
    let mut pending: Vec<Vec<(u64, u32)>> = vec![vec![(0, 1)]; names.len()];
    let mut ready_by_second = vec![Vec::new(); names.len()];
    let mut history: Vec<Vec<ViewerSample>> = vec![Vec::new(); names.len()];
    for t in 0..=until_s {
        if t % 5 == 0 {
            let mut step = base.clone();
            step.now_s = t as f64;
            for (i, r) in step.regions.iter_mut().enumerate() {
                if t >= 5 {
                    let at = (t - 5) as f64;
                    history[i].push(ViewerSample {
                        t_s: at,
                        viewers: demand(&names[i], at).round() as u64,
                    });
                }
                let ready = pending[i]
                    .iter()
                    .filter(|(at, _)| *at <= t)
                    .map(|p| p.1)
                    .sum();
                r.samples = history[i].clone();
                r.edges = TierCount {
                    relays: asked[i],
                    ready,
                };
            }
            let out = plan(&step, &state).expect("valid");
            state = out.state;
            for (i, name) in names.iter().enumerate() {
                let want = out
                    .regions
                    .iter()
                    .find(|p| &p.name == name)
                    .unwrap()
                    .desired_edges;
                if want > asked[i] {
                    pending[i].push((t + ready_s, want - asked[i]));
                } else {
                    // Removals: the newest pending first, then Ready ones.
                    let mut extra = asked[i] - want;
                    while extra > 0 {
                        let last = pending[i].last_mut().unwrap();
                        let take = last.1.min(extra);
                        last.1 -= take;
                        extra -= take;
                        if last.1 == 0 {
                            pending[i].pop();
                        }
                    }
                }
                asked[i] = want;
            }
        }
        for i in 0..names.len() {
            ready_by_second[i].push(
                pending[i]
                    .iter()
                    .filter(|(at, _)| *at <= t)
                    .map(|p| p.1)
                    .sum(),
            );
        }
    }
    names.into_iter().zip(ready_by_second).collect()
}

fn regions(names: &[&str]) -> Vec<RegionInput> {
    names
        .iter()
        .map(|n| RegionInput {
            name: n.to_string(),
            ..RegionInput::default()
        })
        .collect()
}

#[test]
fn a_kick_off_is_ready_at_start_for_every_ready_time() {
    // 1,000 viewers, then 50,000 within seconds of t = 1,200.
    let demand = |_: &str, t: f64| if t < 1_200.0 { 1_000.0 } else { 50_000.0 };
    for ready in [30, 60, 120] {
        let mut base = input(0.0, regions(&["eu"]));
        base.scaling.schedule = vec![event(1_200.0, 50_000, &[], Some(30.0))];
        let fleet = run(base, demand, 3_000, ready);
        let eu = &fleet[0].1;
        assert!(
            eu[1_200] >= 25,
            "ready {ready}: {} edges at the start",
            eu[1_200]
        );
        // Not asked for long before: one horizon (30 s + ready, at least 60 s) ahead.
        let horizon = (30 + ready).max(60) as usize;
        assert!(eu[1_200 - horizon - ready as usize - 1] < 25);
        // Held through the event (the crowd is there, so the forecast holds it anyway).
        assert!(eu[1_200..3_000].iter().all(|&e| e >= 25));
    }
}

#[test]
fn without_the_schedule_the_same_kick_off_is_short() {
    let demand = |_: &str, t: f64| if t < 1_200.0 { 1_000.0 } else { 50_000.0 };
    let fleet = run(input(0.0, regions(&["eu"])), demand, 1_400, 60);
    assert!(fleet[0].1[1_200] < 25);
}

#[test]
fn a_late_crowd_keeps_its_capacity_for_the_duration_then_the_forecast_takes_over() {
    // The audience never shows up: hold for the 20 minutes, then scale down.
    let demand = |_: &str, _: f64| 1_000.0;
    let mut base = input(0.0, regions(&["eu"]));
    base.scaling.schedule = vec![event(600.0, 40_000, &[], Some(20.0))];
    let fleet = run(base, demand, 3_600, 30);
    let eu = &fleet[0].1;
    assert!(
        eu[600..1_800].iter().all(|&e| e >= 20),
        "held until the end"
    );
    assert!(eu[3_600] <= 2, "back to the forecast: {}", eu[3_600]);
}

#[test]
fn without_a_duration_the_grace_holds() {
    let demand = |_: &str, _: f64| 1_000.0;
    let mut base = input(0.0, regions(&["eu"]));
    base.scaling.schedule = vec![event(600.0, 40_000, &[], None)];
    base.scaling.schedule_grace_seconds = 300.0;
    let fleet = run(base, demand, 3_000, 30);
    let eu = &fleet[0].1;
    assert!(eu[600..900].iter().all(|&e| e >= 20));
    assert!(eu[3_000] <= 2);
}

#[test]
fn never_below_the_forecast() {
    // An event smaller than the audience already there changes nothing.
    let demand = |_: &str, _: f64| 30_000.0;
    let plain = run(input(0.0, regions(&["eu"])), demand, 1_500, 30);
    let mut base = input(0.0, regions(&["eu"]));
    base.scaling.schedule = vec![event(600.0, 5_000, &[], Some(10.0))];
    let scheduled = run(base, demand, 1_500, 30);
    assert_eq!(plain, scheduled);
}

#[test]
fn the_audience_is_split_by_each_listed_regions_share() {
    let demand = |r: &str, _: f64| match r {
        "eu" => 3_000.0,
        "us" => 1_000.0,
        _ => 500.0,
    };
    let mut base = input(0.0, regions(&["ap", "eu", "us"]));
    base.scaling.schedule = vec![event(600.0, 80_000, &["eu", "us"], Some(10.0))];
    let fleet = run(base, demand, 700, 30);
    let at = |name: &str| fleet.iter().find(|(n, _)| n == name).unwrap().1[600];
    assert_eq!(at("eu"), 30, "3/4 of 80k at 2,000 per edge");
    assert_eq!(at("us"), 10, "1/4");
    assert!(at("ap") <= 1, "not listed");
}

#[test]
fn before_any_sample_the_region_still_pre_scales_and_says_why() {
    let mut i = input(100.0, regions(&["eu"]));
    i.scaling.schedule = vec![event(150.0, 10_000, &[], None)];
    let out = plan(&i, &PlannerState::default()).unwrap();
    assert_eq!(out.regions[0].desired_edges, 5);
    assert_eq!(out.regions[0].scheduled_viewers, 10_000.0);
    assert!(
        out.reason.contains("scheduled event at t=150s"),
        "{}",
        out.reason
    );
}

#[test]
fn a_bad_event_is_refused_naming_the_field() {
    let mut i = input(100.0, regions(&["eu"]));
    i.scaling.schedule = vec![event(f64::NAN, 10_000, &[], None)];
    let err = plan(&i, &PlannerState::default()).unwrap_err();
    assert!(
        err.to_string().contains("scaling.schedule[].start"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// With a schedule, Ready capacity at `start` is at least the expected audience (in edges,
    /// when `maxEdges` allows), whatever the ready time, the edge size and the audience before.
    #[test]
    fn capacity_at_start_covers_the_expected_audience(
        start in 300u64..1_500,
        expected in 1u64..400_000,
        before in 0u64..20_000,
        ready in prop::sample::select(vec![5u64, 30, 60, 120, 240]),
        vpe in 100u64..5_000,
        minutes in prop::option::of(1.0f64..120.0),
    ) {
        let mut base = input(0.0, regions(&["eu"]));
        base.tree = TreeSettings { viewers_per_edge: vpe, max_edges: 10_000, ..TreeSettings::default() };
        base.scaling.schedule = vec![event(start as f64, expected, &[], minutes)];
        let fleet = run(base, move |_, _| before as f64, start, ready);
        let ready_at_start = u64::from(fleet[0].1[start as usize]);
        prop_assert!(ready_at_start * vpe >= expected,
            "{ready_at_start} edges x {vpe} < {expected}");
    }
}
