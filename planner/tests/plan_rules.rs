//! The planner's rules, one scenario each.

mod common;

use common::{input, region, samples};
use surge_planner::{PlanError, PlannerState, ScaleChange, Tier, TierCount, plan};

#[test]
fn steady_audience_gets_the_static_rule() {
    let r = region("eu", samples(0, 120, 5, |_| 10_000.0), &[5_000, 5_000]);
    let out = plan(&input(120.0, vec![r]), &PlannerState::default()).unwrap();
    let eu = &out.regions[0];
    // ceil(10,000 × 1.2 / 2,000) = 6
    assert_eq!(eu.desired_edges, 6);
    assert_eq!(eu.change, ScaleChange::Up);
    assert!(!out.flash_crowd);
    assert!(eu.growth_per_minute.abs() < 1.0);
    assert!(eu.reason.contains("scale up 2→6"), "{}", eu.reason);
}

#[test]
fn growth_is_planned_one_lead_time_ahead() {
    // 50,000 viewers growing 1,000/min: below the 5%-of-level flash threshold (2,500/min).
    let r = region(
        "us",
        samples(0, 120, 5, |t| 50_000.0 + 1000.0 * t / 60.0),
        &[2_000; 30],
    );
    let out = plan(&input(120.0, vec![r]), &PlannerState::default()).unwrap();
    let us = &out.regions[0];
    assert!(!us.flash_crowd, "{:?}", us.flash_crowd_reason);
    assert!((us.growth_per_minute - 1000.0).abs() < 5.0);
    assert_eq!(us.horizon_seconds, 60.0);
    // 52,000 now, 53,000 in 60 s; ×1.2 / 2,000 = 31.8 → 32.
    assert!((us.forecast_viewers - 53_000.0).abs() < 10.0);
    assert_eq!(us.desired_edges, 32);
}

#[test]
fn measured_ready_time_longer_than_lead_time_stretches_the_horizon() {
    let r = region(
        "us",
        samples(0, 120, 5, |t| 50_000.0 + 1000.0 * t / 60.0),
        &[],
    );
    let mut i = input(120.0, vec![r]);
    i.relay_ready_seconds = Some(180.0);
    let out = plan(&i, &PlannerState::default()).unwrap();
    assert_eq!(out.regions[0].horizon_seconds, 210.0);
}

#[test]
fn flash_crowd_is_detected_explained_and_scaled_multiplicatively() {
    // Facebook-Live style: +6,700/min from a few hundred viewers.
    let r = region(
        "us",
        samples(0, 60, 5, |t| 300.0 + 6_700.0 * t / 60.0),
        &[3_000, 3_000, 1_000, 0],
    );
    let out = plan(&input(60.0, vec![r]), &PlannerState::default()).unwrap();
    let us = &out.regions[0];
    assert!(out.flash_crowd && us.flash_crowd);
    let why = out.flash_crowd_reason.as_deref().unwrap();
    assert!(why.starts_with("us: growth +6,700/min"), "{why}");
    assert_eq!(us.horizon_seconds, 90.0, "lead time ×1.5 in flash mode");
    // Forecast 7,000 + 1.5 × 6,700 = 17,050 × 1.2 / 2,000 → 11 edges (more than 2 × 4).
    assert_eq!(us.desired_edges, 11);

    // 43,000 viewers growing 3,000/min on 20 edges (40,000): the crowd outruns the fleet, so
    // the step doubles it although the forecast (47,500 × 1.2 / 2,000 → 29) asks for less.
    let growing = || samples(0, 60, 5, |t| 40_000.0 + 3_000.0 * t / 60.0);
    let out = plan(
        &input(60.0, vec![region("us", growing(), &[2_000; 20])]),
        &PlannerState::default(),
    )
    .unwrap();
    let us = &out.regions[0];
    assert!(us.flash_crowd);
    assert_eq!(us.sized_edges, 29);
    assert_eq!(us.desired_edges, 40);
    assert!(us.reason.contains("flash-crowd step ×2"), "{}", us.reason);

    // Same crowd on 26 edges (52,000 ≥ 43,000 × 1.2): the forecast keeps ahead, no step.
    let out = plan(
        &input(60.0, vec![region("us", growing(), &[2_000; 26])]),
        &PlannerState::default(),
    )
    .unwrap();
    assert_eq!(out.regions[0].desired_edges, 29);
}

#[test]
fn flash_crowd_mode_ends_after_calm() {
    let r = |t1: u64, f: fn(f64) -> f64| region("us", samples(0, t1, 5, f), &[2_000; 10]);
    let rising = |t: f64| 1_000.0 + 100.0 * t;
    let mut state = PlannerState::default();
    let out = plan(&input(60.0, vec![r(60, rising)]), &state).unwrap();
    assert!(out.flash_crowd);
    state = out.state;
    // Flat from t=60 on: the mode holds for exitAfterSeconds (120) after growth falls.
    let flat_after = |t: f64| 1_000.0 + 100.0 * t.min(60.0);
    let mut off_at = None;
    for now in (65..=600).step_by(5) {
        let out = plan(&input(now as f64, vec![r(now, flat_after)]), &state).unwrap();
        state = out.state;
        if !out.flash_crowd && off_at.is_none() {
            off_at = Some(now);
        }
    }
    let off_at = off_at.expect("flash-crowd mode ends");
    assert!((180..=360).contains(&off_at), "ended at {off_at}");
}

#[test]
fn scale_down_waits_then_steps_least_loaded_first() {
    let loads = [2_000, 100, 2_000, 50, 2_000, 2_000, 2_000, 2_000];
    let mut state = PlannerState::default();
    let mut edges = loads.len() as u32;
    let mut history = Vec::new();
    for now in (0..=900).step_by(15) {
        // 1,000 viewers throughout: wants 1 edge.
        let mut r = region("eu", samples(0, now, 5, |_| 1_000.0), &loads);
        r.edges = TierCount {
            relays: edges,
            ready: edges,
        };
        // The loaded-edge rules alone: no oversized-fleet shortcut.
        let mut i = input(now as f64, vec![r]);
        i.scaling.collapse_utilization = 0.0;
        let out = plan(&i, &state).unwrap();
        state = out.state.clone();
        let eu = &out.regions[0];
        if eu.change == ScaleChange::Down {
            history.push((now, edges, eu.desired_edges, eu.remove.clone()));
        }
        edges = eu.desired_edges;
    }
    let (first_t, from, to, removed) = &history[0];
    assert!(
        *first_t >= 300,
        "no scale-down inside the window: {history:?}"
    );
    assert_eq!((*from, *to), (8, 6), "at most 25% per step");
    assert_eq!(removed, &vec!["eu-e3".to_string(), "eu-e1".to_string()]);
    for pair in history.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= 60,
            "one step per minute: {history:?}"
        );
    }
    assert_eq!(edges, 1, "reaches the minimum eventually: {history:?}");
}

#[test]
fn a_scale_up_restarts_the_stabilisation_window() {
    let mut state = PlannerState::default();
    let viewers = |now: u64| {
        if (400..420).contains(&now) {
            30_000.0
        } else {
            1_000.0
        }
    };
    let mut edges = 1;
    let mut downs = Vec::new();
    for now in (0..=1200).step_by(15) {
        let v = viewers(now);
        let mut r = region("eu", samples(now.saturating_sub(60), now, 5, |_| v), &[]);
        r.edges = TierCount {
            relays: edges,
            ready: edges,
        };
        let mut i = input(now as f64, vec![r]);
        i.scaling.collapse_utilization = 0.0;
        let out = plan(&i, &state).unwrap();
        state = out.state;
        if out.regions[0].change == ScaleChange::Down {
            downs.push(now);
        }
        edges = out.regions[0].desired_edges;
    }
    assert!(downs.iter().all(|&t| t >= 405 + 300), "{downs:?}");
    assert!(!downs.is_empty());
}

#[test]
fn removals_cover_reflector_levels_that_go_away() {
    let mut r = region("eu", samples(0, 60, 5, |_| 1_000.0), &[10; 12]);
    r.reflectors = vec![TierCount {
        relays: 2,
        ready: 2,
    }];
    r.relays.push(surge_planner::RelayLoad {
        name: "eu-r0".into(),
        tier: Tier::Reflector(1),
        viewers: 5,
        ready: true,
    });
    r.relays.push(surge_planner::RelayLoad {
        name: "eu-r1".into(),
        tier: Tier::Reflector(1),
        viewers: 7,
        ready: true,
    });
    let mut i = input(1000.0, vec![r]);
    i.scaling.scale_down_stabilization_seconds = 0.0;
    i.scaling.collapse_utilization = 0.0;
    let out = plan(&i, &PlannerState::default()).unwrap();
    let eu = &out.regions[0];
    assert_eq!(eu.desired_edges, 9, "12 - 25%");
    assert_eq!(eu.reflectors, vec![2]);
    assert_eq!(eu.remove.len(), 3);
    // Down to 8 edges: the origin feeds them directly and both reflectors go.
    let mut r = region("eu", samples(0, 60, 5, |_| 1_000.0), &[10; 9]);
    r.reflectors = vec![TierCount {
        relays: 2,
        ready: 2,
    }];
    r.relays.push(surge_planner::RelayLoad {
        name: "eu-r0".into(),
        tier: Tier::Reflector(1),
        viewers: 5,
        ready: true,
    });
    let mut i = input(1000.0, vec![r]);
    i.scaling.scale_down_stabilization_seconds = 0.0;
    i.scaling.collapse_utilization = 0.0;
    let out = plan(&i, &PlannerState::default()).unwrap();
    let eu = &out.regions[0];
    assert_eq!(eu.desired_edges, 7);
    assert!(eu.reflectors.is_empty());
    assert!(eu.remove.contains(&"eu-r0".to_string()));
}

#[test]
fn no_samples_hold_the_current_count() {
    let r = region("eu", vec![], &[10; 4]);
    let out = plan(&input(10.0, vec![r]), &PlannerState::default()).unwrap();
    assert_eq!(out.regions[0].desired_edges, 4);
    assert_eq!(out.regions[0].change, ScaleChange::Hold);
}

#[test]
fn invalid_settings_name_the_field() {
    let mut i = input(0.0, vec![]);
    i.tree.fanout = 1;
    assert_eq!(
        plan(&i, &PlannerState::default()).unwrap_err().to_string(),
        "invalid tree.fanout: must be at least 2"
    );
    let mut i = input(0.0, vec![]);
    i.scaling.headroom = f64::NAN;
    assert!(matches!(
        plan(&i, &PlannerState::default()),
        Err(PlanError::InvalidSetting {
            field: "scaling.headroom",
            ..
        })
    ));
    let i = input(
        0.0,
        vec![region("a", vec![], &[]), region("a", vec![], &[])],
    );
    assert!(matches!(
        plan(&i, &PlannerState::default()),
        Err(PlanError::InvalidInput(_))
    ));
}

#[test]
fn state_round_trips_through_json_and_plans_are_deterministic() {
    let r = region("us", samples(0, 60, 5, |t| 300.0 + 100.0 * t), &[10; 3]);
    let i = input(60.0, vec![r]);
    let a = plan(&i, &PlannerState::default()).unwrap();
    let b = plan(&i, &PlannerState::default()).unwrap();
    assert_eq!(a, b);
    let json = serde_json::to_string(&a.state).unwrap();
    let back: PlannerState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a.state);
    assert!(json.contains("lastScaleUpS"), "{json}");
}

#[test]
fn reflector_removals_follow_a_rebuilt_tree() {
    let mut r = region("eu", vec![], &[]);
    r.reflectors = vec![
        TierCount {
            relays: 3,
            ready: 3,
        },
        TierCount {
            relays: 1,
            ready: 1,
        },
    ];
    for (name, level, viewers) in [("a", 1, 30), ("b", 1, 10), ("c", 1, 20), ("top", 2, 60)] {
        r.relays.push(surge_planner::RelayLoad {
            name: name.into(),
            tier: Tier::Reflector(level),
            viewers,
            ready: true,
        });
    }
    assert_eq!(surge_planner::reflector_removals(&r, &[2, 1]), vec!["b"]);
    assert_eq!(
        surge_planner::reflector_removals(&r, &[]),
        vec!["b", "c", "a", "top"]
    );
}

#[test]
fn each_region_is_sized_within_its_own_bounds_in_one_call() {
    use surge_planner::EdgeBounds;
    let steady = |name: &str, viewers: f64| region(name, samples(0, 120, 5, |_| viewers), &[0]);
    let mut small_edges = steady("ap", 1_000.0);
    small_edges.bounds = Some(EdgeBounds {
        min_edges: 1,
        max_edges: 50,
        viewers_per_edge: 100,
    });
    let mut capped = steady("eu", 10_000.0);
    capped.bounds = Some(EdgeBounds {
        min_edges: 2,
        max_edges: 3,
        viewers_per_edge: 2_000,
    });
    let mut floor = steady("us", 0.0);
    floor.bounds = Some(EdgeBounds {
        min_edges: 4,
        max_edges: 10,
        viewers_per_edge: 2_000,
    });
    let default = steady("za", 10_000.0);
    let out = plan(
        &input(120.0, vec![small_edges, capped, floor, default]),
        &PlannerState::default(),
    )
    .unwrap();
    let edges: Vec<(&str, u32)> = out
        .regions
        .iter()
        .map(|r| (r.name.as_str(), r.desired_edges))
        .collect();
    // ap: 1,000 × 1.2 / 100 = 12; eu: capped at 3; us: floor 4; za: the Stream-wide
    // 2,000 per edge, 10,000 × 1.2 / 2,000 = 6.
    assert_eq!(edges, [("ap", 12), ("eu", 3), ("us", 4), ("za", 6)]);
    // One tree over all regions: 25 edges under a fan-out of 8 need reflectors.
    assert!(out.origin_children <= 8, "{}", out.origin_children);
}

#[test]
fn invalid_region_bounds_are_refused_naming_the_region() {
    let mut r = region("eu", samples(0, 60, 5, |_| 10.0), &[0]);
    r.bounds = Some(surge_planner::EdgeBounds {
        min_edges: 5,
        max_edges: 2,
        viewers_per_edge: 100,
    });
    let err = plan(&input(60.0, vec![r]), &PlannerState::default()).unwrap_err();
    assert!(matches!(err, PlanError::InvalidInput(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("eu") && text.contains("maxEdges"), "{text}");
}
