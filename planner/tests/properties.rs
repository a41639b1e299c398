//! Properties the planner keeps for any input (proptest).

mod common;

use proptest::prelude::*;
use surge_planner::{
    PlanInput, PlannerState, RegionInput, ScaleChange, TierCount, TreeSettings, ViewerSample,
    build_tree, edges_for_viewers, plan,
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
                let step = ((edges as f64 * 0.25).floor() as u32).max(1);
                prop_assert!(edges - r.desired_edges <= step, "{edges} → {}", r.desired_edges);
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
}
