//! Properties the planner keeps for any input (proptest).

mod common;

use proptest::prelude::*;
use surge_planner::{
    EdgeLoad, PlanInput, PlannerState, RegionInput, RegionState, RelayLoad, ScaleChange, Tier,
    TierCount, TreeSettings, ViewerSample, build_tree, edges_for_viewers, plan,
};

fn tree_settings() -> impl Strategy<Value = TreeSettings> {
    (2u32..=16, 1u64..=5_000, 1u32..=10, 0u32..=200).prop_map(|(fanout, vpe, min, extra)| {
        TreeSettings {
            fanout,
            viewers_per_edge: vpe,
            min_edges: min,
            max_edges: min + extra,
        }
    })
}

/// A noisy, gappy series: a level, a trend, multiplicative noise, dropped samples.
fn series() -> impl Strategy<Value = Vec<ViewerSample>> {
    (
        0.0f64..2_000_000.0,
        -20_000.0f64..50_000.0,
        prop::collection::vec((0.0f64..1.0, 0.8f64..1.2), 1..40),
    )
        .prop_map(|(level, per_min, points)| {
            points
                .into_iter()
                .enumerate()
                .filter(|(i, (drop, _))| *i == 0 || *drop > 0.15)
                .map(|(i, (_, noise))| {
                    let t = i as f64 * 5.0;
                    ViewerSample {
                        t_s: t,
                        viewers: ((level + per_min * t / 60.0) * noise).max(0.0) as u64,
                    }
                })
                .collect()
        })
}

fn single_region_input(
    tree: TreeSettings,
    samples: Vec<ViewerSample>,
    edges: u32,
    now: f64,
) -> PlanInput {
    let mut input = common::input(now, vec![]);
    input.tree = tree;
    input.regions = vec![RegionInput {
        name: "r".into(),
        samples,
        edges: TierCount {
            relays: edges,
            ready: edges,
        },
        ..Default::default()
    }];
    input
}

fn newest(samples: &[ViewerSample]) -> u64 {
    samples
        .iter()
        .max_by(|a, b| a.t_s.total_cmp(&b.t_s))
        .map_or(0, |s| s.viewers)
}

/// Independent check of the tree: children per relay, and that one level less overflows.
fn check_tree(edges: &[u32], fanout: u32) -> Result<(), TestCaseError> {
    let t = build_tree(edges, fanout);
    let mut origin = 0;
    for (e, levels) in edges.iter().zip(&t.reflectors) {
        let mut below = *e;
        for &count in levels {
            prop_assert!(
                below <= count * fanout,
                "{below} children on {count} relays"
            );
            prop_assert!(count >= 1 && count < below.max(2));
            below = count;
        }
        origin += below;
    }
    prop_assert_eq!(origin, t.origin_children);
    let depth = t.reflectors.iter().map(Vec::len).max().unwrap_or(0);
    if edges.len() as u32 <= fanout {
        prop_assert!(t.origin_children <= fanout);
        if depth > 0 {
            // With one level fewer everywhere, the origin would overflow.
            let shallower: u32 = edges
                .iter()
                .map(|&e| {
                    let mut c = e;
                    for _ in 0..depth - 1 {
                        if c > 1 {
                            c = c.div_ceil(fanout);
                        }
                    }
                    c
                })
                .sum();
            prop_assert!(
                shallower > fanout,
                "depth {depth} is not minimal for {edges:?}"
            );
        }
    } else {
        // More regions than fanout: the best is one child per region.
        prop_assert_eq!(t.origin_children, edges.len() as u32);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn capacity_never_planned_below_current_demand(
        tree in tree_settings(),
        samples in series(),
        edges in 0u32..300,
    ) {
        let now = samples.last().map_or(0.0, |s| s.t_s);
        let latest = newest(&samples);
        let out = plan(&single_region_input(tree.clone(), samples, edges, now), &PlannerState::default()).unwrap();
        let r = &out.regions[0];
        let needed = latest.div_ceil(tree.viewers_per_edge);
        if needed <= tree.max_edges as u64 {
            prop_assert!(r.desired_edges as u64 * tree.viewers_per_edge >= latest,
                "{} edges for {latest} viewers", r.desired_edges);
        }
    }

    /// Quality as a second signal: relays that really hold `factor` of viewersPerEdge (their
    /// load says so) get enough edges for today's viewers at their true size, for any series,
    /// edge size and fleet.
    #[test]
    fn true_capacity_never_planned_below_current_demand(
        tree in tree_settings().prop_filter("an edge holds a viewer", |t| t.viewers_per_edge >= 10),
        samples in series(),
        edges in 1u32..300,
        factor in 0.1f64..1.0,
        load_at_size in 0.2f64..1.0,
    ) {
        let now = samples.last().map_or(0.0, |s| s.t_s);
        let latest = newest(&samples);
        let mut input = single_region_input(tree.clone(), samples, edges, now);
        input.scaling.quality.load_at_viewers_per_edge = load_at_size;
        let holds = factor * tree.viewers_per_edge as f64;
        input.regions[0].edge_load = Some(EdgeLoad {
            edges,
            viewers: latest,
            load_sum: latest as f64 * load_at_size / holds,
        });
        let out = plan(&input, &PlannerState::default()).unwrap();
        let r = &out.regions[0];
        if (latest as f64 / holds).ceil() <= f64::from(tree.max_edges) {
            prop_assert!(f64::from(r.desired_edges) * holds >= latest as f64,
                "{} edges of {holds:.0} for {latest} viewers: {}", r.desired_edges, r.reason);
        }
    }

    /// Loads that say what viewersPerEdge says change no plan: same edges, same sizing, with
    /// scale-down in play (a long-settled region) or not.
    #[test]
    fn loads_that_match_the_edge_size_change_nothing(
        tree in tree_settings(),
        samples in series(),
        edges in 1u32..300,
        load_at_size in 0.2f64..1.0,
        settled in any::<bool>(),
    ) {
        let now = samples.last().map_or(0.0, |s| s.t_s);
        let latest = newest(&samples);
        let without = single_region_input(tree.clone(), samples, edges, now);
        let mut with = without.clone();
        with.scaling.quality.load_at_viewers_per_edge = load_at_size;
        with.regions[0].edge_load = Some(EdgeLoad {
            edges,
            viewers: latest,
            load_sum: latest as f64 * load_at_size / tree.viewers_per_edge as f64,
        });
        let mut state = PlannerState::default();
        if settled {
            state.regions.insert("r".into(), RegionState {
                first_seen_s: Some(now - 10_000.0),
                ..Default::default()
            });
        }
        let a = plan(&without, &state).unwrap();
        let b = plan(&with, &state).unwrap();
        prop_assert_eq!(a.regions[0].desired_edges, b.regions[0].desired_edges,
            "{} / {}", &a.regions[0].reason, &b.regions[0].reason);
        prop_assert_eq!(a.regions[0].sized_edges, b.regions[0].sized_edges);
        prop_assert_eq!(b.regions[0].viewers_per_edge, tree.viewers_per_edge);
    }

    #[test]
    fn bounds_are_respected_along_any_run(
        tree in tree_settings(),
        walk in prop::collection::vec(0.0f64..3.0, 5..80),
        start in 0u32..300,
    ) {
        let mut state = PlannerState::default();
        let mut edges = start;
        let mut viewers = 10_000.0;
        let mut history = Vec::new();
        for (i, factor) in walk.into_iter().enumerate() {
            viewers = (viewers * (0.5 + factor / 2.0)).min(1e9);
            history.push(ViewerSample { t_s: i as f64 * 15.0, viewers: viewers as u64 });
            let now = i as f64 * 15.0;
            let input = single_region_input(tree.clone(), history.clone(), edges, now);
            let out = plan(&input, &state).unwrap();
            let r = &out.regions[0];
            prop_assert!(r.desired_edges >= tree.min_edges && r.desired_edges <= tree.max_edges);
            if r.change == ScaleChange::Down && edges <= tree.max_edges {
                // More than 25% at once only for an oversized fleet (no relay loads are
                // given, so no edge counts as idle): the audience with headroom filled at
                // most half of it.
                let step = ((edges as f64 * 0.25).floor() as u32).max(1);
                let used = viewers.floor() * 1.2;
                let served = edges as f64 * tree.viewers_per_edge as f64;
                prop_assert!(
                    edges - r.desired_edges <= step || used <= 0.5 * served,
                    "{edges} → {} for {viewers} viewers", r.desired_edges
                );
            }
            edges = r.desired_edges;
            state = out.state;
        }
    }

    #[test]
    fn monotone_in_the_forecast(
        tree in tree_settings(),
        headroom in 0.0f64..1.0,
        a in 0.0f64..1e8,
        b in 0.0f64..1e8,
    ) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(edges_for_viewers(lo, &tree, headroom) <= edges_for_viewers(hi, &tree, headroom));
    }

    #[test]
    fn more_viewers_never_plan_fewer_edges(
        tree in tree_settings(),
        samples in series(),
        extra in 0u64..500_000,
        edges in 0u32..300,
    ) {
        let now = samples.last().map_or(0.0, |s| s.t_s);
        let shifted: Vec<ViewerSample> = samples
            .iter()
            .map(|s| ViewerSample { t_s: s.t_s, viewers: s.viewers + extra })
            .collect();
        let mut low = single_region_input(tree.clone(), samples, edges, now);
        let mut high = single_region_input(tree, shifted, edges, now);
        // Flash-crowd mode depends on growth relative to the level; compare the forecast path.
        low.scaling.flash_crowd.enabled = false;
        high.scaling.flash_crowd.enabled = false;
        let l = plan(&low, &PlannerState::default()).unwrap();
        let h = plan(&high, &PlannerState::default()).unwrap();
        prop_assert!(h.regions[0].forecast_viewers + 1e-6 >= l.regions[0].forecast_viewers);
        prop_assert!(h.regions[0].desired_edges >= l.regions[0].desired_edges);
    }

    #[test]
    fn trees_respect_fanout_with_minimal_depth(
        edges in prop::collection::vec(1u32..5_000, 1..12),
        fanout in 2u32..20,
    ) {
        check_tree(&edges, fanout)?;
    }

    #[test]
    fn planned_trees_respect_fanout(
        tree in tree_settings(),
        regions in prop::collection::vec(series(), 1..6),
    ) {
        let mut input = common::input(200.0, vec![]);
        input.tree = tree.clone();
        input.regions = regions
            .into_iter()
            .enumerate()
            .map(|(i, samples)| RegionInput { name: format!("r{i}"), samples, ..Default::default() })
            .collect();
        let out = plan(&input, &PlannerState::default()).unwrap();
        let edges: Vec<u32> = out.regions.iter().map(|r| r.desired_edges).collect();
        check_tree(&edges, tree.fanout)?;
        let deepest = out.regions.iter().map(|r| r.reflectors.len() as u32 + 1).max().unwrap();
        prop_assert_eq!(out.depth, deepest);
    }

    #[test]
    fn deterministic(samples in series(), edges in 0u32..100) {
        let now = samples.last().map_or(0.0, |s| s.t_s);
        let input = single_region_input(TreeSettings::default(), samples, edges, now);
        prop_assert_eq!(
            plan(&input, &PlannerState::default()).unwrap(),
            plan(&input, &PlannerState::default()).unwrap()
        );
    }

    /// Idle edges (not Ready, or Ready with no viewers) that the plan has not asked for over
    /// the smoothing window (60 s) are gone within the stabilisation window (120–900 s here;
    /// it must exceed the smoothing window), whatever the
    /// last scale-up, the per-step bound or the fleet's size: along a run reconciled every
    /// 5 s where the fleet follows the plan (removing what `remove` names), an idle edge
    /// above the forecast's highest recent edge count is never kept longer than
    /// `scaleDownStabilizationSeconds`.
    #[test]
    fn idle_edges_the_forecast_does_not_need_are_released_within_the_window(
        vpe in 100u64..5_000,
        min_edges in 1u32..4,
        audience in 0.0f64..200_000.0,
        noise in prop::collection::vec(0.97f64..1.03, 200),
        loaded in 1u32..40,
        idle_ready in 0u32..30,
        idle_pending in 0u32..10,
        warm in 0u32..4,
        window in 120.0f64..900.0,
        scaled_up_ago in 0.0f64..900.0,
        observed_for in 0.0f64..900.0,
    ) {
        let tree = TreeSettings { fanout: 8, viewers_per_edge: vpe, min_edges, max_edges: 10_000 };
        let now0 = 10_000.0;
        let mut state = PlannerState::default();
        state.regions.insert("r".into(), surge_planner::RegionState {
            last_scale_up_s: Some(now0 - scaled_up_ago),
            first_seen_s: Some(now0 - observed_for),
            ..Default::default()
        });
        let mut relays: Vec<RelayLoad> = (0..loaded)
            .map(|i| RelayLoad {
                name: format!("l{i:03}"),
                tier: Tier::Edge,
                viewers: ((audience / loaded as f64).ceil() as u64).max(1),
                ready: true,
            })
            .chain((0..idle_ready).map(|i| RelayLoad {
                name: format!("i{i:03}"), tier: Tier::Edge, viewers: 0, ready: true,
            }))
            .chain((0..idle_pending).map(|i| RelayLoad {
                name: format!("p{i:03}"), tier: Tier::Edge, viewers: 0, ready: false,
            }))
            .collect();
        let mut history: Vec<ViewerSample> = Vec::new();
        let mut sized: Vec<(f64, u32)> = Vec::new();
        let mut unneeded_since: Option<f64> = None;
        for (i, n) in noise.iter().enumerate() {
            let now = now0 + i as f64 * 5.0;
            history.push(ViewerSample { t_s: now - 5.0, viewers: (audience * n) as u64 });
            history.retain(|s| s.t_s >= now - 130.0);
            let count = relays.len() as u32;
            let ready = relays.iter().filter(|r| r.ready).count() as u32;
            let mut input = common::input(now, vec![]);
            input.tree = tree.clone();
            input.scaling.scale_down_stabilization_seconds = window;
            input.scaling.warm_edges = warm;
            input.regions = vec![RegionInput {
                name: "r".into(),
                samples: history.clone(),
                edges: TierCount { relays: count, ready },
                relays: relays.clone(),
                ..Default::default()
            }];
            let out = plan(&input, &state).unwrap();
            let r = &out.regions[0];
            // What the plan asked for: the forecast's size, or a (flash-crowd) scale-up.
            let asked = if r.change == ScaleChange::Up { r.desired_edges } else { 0 };
            sized.push((now, r.sized_edges.max(asked)));
            sized.retain(|(t, _)| *t > now - 60.0);
            let needed = sized.iter().map(|(_, e)| *e).max().unwrap_or(0);
            let idle = relays.iter().filter(|r| !r.ready || r.viewers == 0).count() as u32;
            if idle.min(count.saturating_sub(needed)) > 0 {
                let since = *unneeded_since.get_or_insert(now);
                prop_assert!(
                    now - since <= window,
                    "{idle} idle of {count} edges kept {} s (forecast needs {needed}): {}",
                    now - since, r.reason
                );
            } else {
                unneeded_since = None;
            }
            relays.retain(|x| !r.remove.contains(&x.name));
            // New edges asked for start idle and not Ready.
            for j in count.min(r.desired_edges)..r.desired_edges {
                relays.push(RelayLoad {
                    name: format!("n{i:03}-{j}"), tier: Tier::Edge, viewers: 0, ready: false,
                });
            }
            state = out.state;
        }
    }
}
