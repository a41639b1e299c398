//! Scale-down that follows the audience (idle edges, an oversized fleet) and the rules for
//! slow relays (warm pool, onset detection), one scenario each.

mod common;

use common::{input, region, samples};
use surge_planner::{PlannerState, Recommendation, RegionState, ScaleChange, TierCount, plan};

/// A state that has planned for an hour and scaled up at `up_s`.
fn settled(up_s: f64) -> PlannerState {
    let mut state = PlannerState::default();
    state.regions.insert(
        "eu".into(),
        RegionState {
            first_seen_s: Some(0.0),
            last_scale_up_s: Some(up_s),
            ..Default::default()
        },
    );
    state
}

/// 18 edges (the forecast's size) serving 30,000 viewers until t = 3,600 s, then all but
/// 1,000 leave. Returns the scale-downs as (time, from, to).
fn cliff(collapse_utilization: f64) -> Vec<(u64, u32, u32)> {
    let viewers = |t: f64| if t < 3_600.0 { 30_000.0 } else { 1_000.0 };
    let mut state = settled(3_500.0);
    let mut edges = 18;
    let mut downs = Vec::new();
    for now in (3_400..=4_800).step_by(5) {
        let per_edge = (viewers(now as f64 - 5.0) / f64::from(edges)) as u64;
        let mut r = region(
            "eu",
            samples(now - 125, now - 5, 5, viewers),
            &vec![per_edge; edges as usize],
        );
        r.edges = TierCount {
            relays: edges,
            ready: edges,
        };
        let mut i = input(now as f64, vec![r]);
        i.scaling.collapse_utilization = collapse_utilization;
        let out = plan(&i, &state).unwrap();
        state = out.state;
        let eu = &out.regions[0];
        if eu.change == ScaleChange::Down {
            downs.push((now, edges, eu.desired_edges));
        }
        edges = eu.desired_edges;
    }
    downs
}

#[test]
fn a_collapsed_audience_is_released_in_one_step_once_the_level_falls() {
    let downs = cliff(0.5);
    let (t, from, to) = downs[0];
    // 1,000 viewers × 1.2 / 2,000 = 1 edge, asked for once the level has fallen: an
    // oversized fleet goes down to the current plan, so the smoothing window's higher
    // recommendations (the audience before it left) do not hold it (they did until
    // 3,660 s or later), nor does the scale-up at 3,500 s or the 25% bound.
    assert_eq!(from, 18, "{downs:?}");
    assert!(to <= 2, "{downs:?}");
    assert!((3_610..3_660).contains(&t), "{downs:?}");
    assert!(downs.len() <= 2, "{downs:?}");
    assert_eq!(downs.last().map(|d| d.2), Some(1), "{downs:?}");
}

#[test]
fn without_the_rule_a_collapse_waits_and_steps_a_quarter_at_a_time() {
    let downs = cliff(0.0);
    assert!(downs[0].0 >= 3_500 + 300, "{downs:?}");
    assert_eq!((downs[0].1, downs[0].2), (18, 14), "{downs:?}");
    assert!(downs.len() >= 8, "{downs:?}");
}

#[test]
fn idle_edges_go_inside_the_window_and_loaded_ones_wait() {
    // 9,000 viewers on 6 edges, 4 more edges empty: the forecast wants ceil(10,800 / 2,000)
    // = 6. A scale-up 30 s ago holds loaded edges for 300 s, not the empty ones.
    let loads = [1_500, 0, 1_500, 1_500, 0, 1_500, 0, 1_500, 1_500, 0];
    let mut state = settled(1_000.0);
    // The scale-up's own recommendation, which the smoothing window keeps for 60 s.
    state.regions.get_mut("eu").unwrap().recommendations = vec![Recommendation {
        t_s: 1_000.0,
        edges: 10,
    }];
    let mut out = None;
    for now in (1_030..=1_100).step_by(5) {
        let r = region("eu", samples(now - 120, now, 5, |_| 9_000.0), &loads);
        let plan = plan(&input(now as f64, vec![r]), &state).unwrap();
        state = plan.state.clone();
        if plan.regions[0].change == ScaleChange::Down {
            out = Some((now, plan));
            break;
        }
    }
    let (now, plan) = out.expect("the idle edges go");
    let eu = &plan.regions[0];
    assert_eq!(
        now, 1_065,
        "once the scale-up's recommendation left the smoothing window"
    );
    assert_eq!(eu.desired_edges, 6, "{}", eu.reason);
    let mut removed = eu.remove.clone();
    removed.sort();
    assert_eq!(removed, ["eu-e1", "eu-e4", "eu-e6", "eu-e9"]);
    assert!(eu.reason.contains("4 idle"), "{}", eu.reason);
}

#[test]
fn warm_edges_sit_on_top_of_the_forecast_within_max_edges() {
    let r = || region("eu", samples(0, 120, 5, |_| 10_000.0), &[2_000; 6]);
    let mut i = input(120.0, vec![r()]);
    i.scaling.warm_edges = 2;
    let out = plan(&i, &PlannerState::default()).unwrap();
    // ceil(10,000 × 1.2 / 2,000) = 6, plus 2 warm.
    assert_eq!(out.regions[0].desired_edges, 8);
    assert_eq!(out.regions[0].sized_edges, 8);
    assert!(out.regions[0].reason.contains("2 warm edges"));
    i.tree.max_edges = 7;
    let out = plan(&i, &PlannerState::default()).unwrap();
    assert_eq!(out.regions[0].desired_edges, 7);
}

#[test]
fn a_step_enters_flash_crowd_mode_at_its_first_sample() {
    // Flat at 1,000 for a minute, then 4,000: +36,000/min over the last 5 s.
    let mut s = samples(0, 60, 5, |_| 1_000.0);
    s.push(surge_planner::ViewerSample {
        t_s: 65.0,
        viewers: 4_000,
    });
    let onset = plan(
        &input(65.0, vec![region("eu", s.clone(), &[1_000])]),
        &PlannerState::default(),
    )
    .unwrap();
    let eu = &onset.regions[0];
    assert!(eu.flash_crowd, "{}", eu.reason);
    assert!(eu.growth_per_minute >= 36_000.0 - 1.0, "{}", eu.reason);
    assert!(eu.forecast_viewers > 40_000.0, "{}", eu.reason);
    assert!(eu.reason.contains("onset +36,000/min"), "{}", eu.reason);
    // The window's median slope alone ignores one sample: sized for today's 4,000 only.
    let mut off = input(65.0, vec![region("eu", s, &[1_000])]);
    off.scaling.flash_crowd.onset_factor = 0.0;
    let eu = plan(&off, &PlannerState::default()).unwrap().regions[0].clone();
    assert!(!eu.flash_crowd);
    assert_eq!(eu.desired_edges, 3, "{}", eu.reason);
}

#[test]
fn counting_noise_is_no_onset() {
    // ±1% noise on 10,000 viewers: no sample is 4 × 5%/min × 5 s (1.7%) above the window's
    // highest.
    let s = samples(0, 120, 5, |t| 10_000.0 * (1.0 + 0.01 * ((t * 7.0).sin())));
    let out = plan(
        &input(120.0, vec![region("eu", s, &[2_000; 6])]),
        &PlannerState::default(),
    )
    .unwrap();
    assert!(!out.regions[0].flash_crowd, "{}", out.regions[0].reason);
}

#[test]
fn pending_edges_of_an_overshot_onset_go_while_the_crowd_still_grows() {
    // An onset forecast asked for 40 edges 10 s ago; 10 are Ready and loaded, 30 still
    // pending. The crowd still grows (1,000/min on ~9,000, flash-crowd mode stays on, so the
    // fleet is not "oversized"), and the plan is now 7 edges: at most half of the highest
    // recommendation, an overshoot. The pending edges go now, not after 60 s.
    let mut state = settled(3_590.0);
    let eu = state.regions.get_mut("eu").unwrap();
    eu.recommendations = vec![Recommendation {
        t_s: 3_590.0,
        edges: 40,
    }];
    eu.flash = Some(surge_planner::FlashState {
        since_s: 3_500.0,
        peak_growth_per_minute: 20_000.0,
        ..Default::default()
    });
    let mut r = region(
        "eu",
        samples(3_480, 3_600, 5, |t| {
            9_000.0 + (t - 3_600.0) * 1_000.0 / 60.0
        }),
        &[900; 10],
    );
    r.relays.extend((10..40).map(|i| surge_planner::RelayLoad {
        name: format!("eu-e{i}"),
        tier: surge_planner::Tier::Edge,
        viewers: 0,
        ready: false,
    }));
    r.edges = TierCount {
        relays: 40,
        ready: 10,
    };
    let out = plan(&input(3_600.0, vec![r.clone()]), &state).unwrap();
    let plan0 = &out.regions[0];
    assert!(plan0.flash_crowd, "{}", plan0.reason);
    assert_eq!(plan0.desired_edges, 10, "{}", plan0.reason);
    assert!(plan0.remove.iter().all(|n| {
        let i: u32 = n.trim_start_matches("eu-e").parse().unwrap();
        i >= 10
    }));
    // A plan above half of the highest recommendation is noise or a dip: the window holds.
    state.regions.get_mut("eu").unwrap().recommendations[0].edges = 13;
    let out = plan(&input(3_600.0, vec![r]), &state).unwrap();
    assert_eq!(
        out.regions[0].desired_edges, 13,
        "{}",
        out.regions[0].reason
    );
}

/// A push step: 600 viewers, then +15,000 within 40 s from t = 600 s, flat after. The fleet
/// follows the plan, each edge Ready 30 s after it was asked for; viewers spread over the
/// Ready edges. Returns (time, edges asked for) at every reconcile.
fn push_step() -> Vec<(u64, u32)> {
    let viewers = |t: f64| 600.0 + 15_000.0 * ((t - 600.0) / 40.0).clamp(0.0, 1.0);
    let mut state = PlannerState::default();
    // Edges asked for at a time, in order: Ready 30 s later.
    let mut asked: Vec<u64> = vec![0];
    let mut out = Vec::new();
    for now in (5..=1_200).step_by(5) {
        let seen = viewers(now as f64 - 5.0);
        let ready = asked.iter().filter(|&&t| t + 30 <= now).count();
        let per_edge = (seen / ready.max(1) as f64) as u64;
        let mut r = region(
            "eu",
            samples(now.saturating_sub(120), now - 5, 5, viewers),
            &[],
        );
        r.relays = (0..asked.len())
            .map(|i| surge_planner::RelayLoad {
                name: format!("eu-e{i:03}"),
                tier: surge_planner::Tier::Edge,
                viewers: if i < ready { per_edge } else { 0 },
                ready: i < ready,
            })
            .collect();
        r.edges = TierCount {
            relays: asked.len() as u32,
            ready: ready as u32,
        };
        let plan = plan(&input(now as f64, vec![r]), &state).unwrap();
        state = plan.state;
        let want = plan.regions[0].desired_edges as usize;
        // Pending edges (the newest) go first, as the planner lists them.
        asked.truncate(want);
        while asked.len() < want {
            asked.push(now);
        }
        out.push((now, want as u32));
    }
    out
}

#[test]
fn a_push_steps_overshoot_is_released_soon_after_its_top() {
    let run = push_step();
    // 15,600 viewers × 1.2 / 2,000 = 10 edges (12 while the level still carries the ramp).
    // The onset's slope extrapolated one
    // flash-crowd horizon asks for far more; once the newest half of the window is flat
    // (the step's top) the forecast stops extrapolating the step, and the oversized fleet
    // goes down to that plan in one step, not to the window's highest. Before these rules
    // the overshoot stayed until t = 760 s (growth had to leave the whole window, then the
    // smoothing window its recommendations).
    let peak = run.iter().map(|r| r.1).max().unwrap();
    assert!(peak > 12, "the onset overshoots: {peak}");
    let at = |t: u64| run.iter().find(|r| r.0 == t).unwrap().1;
    assert!(at(700) <= 12, "still {} edges at 700 s: {run:?}", at(700));
    // And never below the plateau's audience afterwards.
    for &(t, edges) in run.iter().filter(|r| r.0 >= 640) {
        assert!(edges * 2_000 >= 15_600, "{edges} edges at {t} s");
    }
}
