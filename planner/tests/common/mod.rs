//! Builders shared by the planner's integration tests.
#![allow(dead_code)]

use surge_planner::{
    PlanInput, RegionInput, RelayLoad, ScalingSettings, Tier, TierCount, TreeSettings, ViewerSample,
};

/// Samples every `step` seconds from `t0` to `t1` following `f(t)`.
pub fn samples(t0: u64, t1: u64, step: u64, f: impl Fn(f64) -> f64) -> Vec<ViewerSample> {
    (t0..=t1)
        .step_by(step as usize)
        .map(|t| ViewerSample {
            t_s: t as f64,
            viewers: f(t as f64).max(0.0).round() as u64,
        })
        .collect()
}

/// A region with `edges` ready edges named `<name>-e<i>` carrying the given loads.
pub fn region(name: &str, samples: Vec<ViewerSample>, loads: &[u64]) -> RegionInput {
    let n = loads.len() as u32;
    RegionInput {
        name: name.into(),
        samples,
        edges: TierCount {
            relays: n,
            ready: n,
        },
        reflectors: vec![],
        relays: loads
            .iter()
            .enumerate()
            .map(|(i, &v)| RelayLoad {
                name: format!("{name}-e{i}"),
                tier: Tier::Edge,
                viewers: v,
                ready: true,
            })
            .collect(),
        edge_load: None,
        bounds: None,
    }
}

pub fn input(now_s: f64, regions: Vec<RegionInput>) -> PlanInput {
    PlanInput {
        now_s,
        tree: TreeSettings::default(),
        scaling: ScalingSettings::default(),
        relay_ready_seconds: Some(30.0),
        regions,
    }
}
