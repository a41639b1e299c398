//! Which autoscaler sizes the edge tiers (`surge-operator local --policy`): `surge`, the
//! planner's forecast; `hpa`, the Kubernetes HorizontalPodAutoscaler at its defaults on the
//! same viewers metric (the planner crate's [`HpaRegion`], the simulator's `hpa` rules); or
//! `static`, each region's `minEdges`. Pure. The planner still runs for every policy (its
//! growth, forecast and flash-crowd state fill the status); another policy then replaces
//! each region's edge count, and the reflector tree is rebuilt for the new counts.

use std::collections::BTreeMap;

use surge_planner::{HpaInput, HpaSettings, HpaState, RegionInput, build_tree, metric_at};

use crate::crd::StreamSpec;
use crate::sizing::{StreamPlan, viewers_per_edge};

/// The autoscaler of the edge tiers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ScalingPolicy {
    /// The planner: forecast, headroom, flash-crowd steps, stabilised scale-down.
    #[default]
    Surge,
    /// The HorizontalPodAutoscaler's rules on the viewers metric, reacting to it.
    Hpa,
    /// No scaling: every region keeps its minEdges.
    Static,
}

impl ScalingPolicy {
    pub fn name(self) -> &'static str {
        match self {
            ScalingPolicy::Surge => "surge",
            ScalingPolicy::Hpa => "hpa",
            ScalingPolicy::Static => "static",
        }
    }
}

/// Replaces the planner's edge counts in `plan` by `policy`'s (nothing for `surge`).
/// `inputs`: the regions as observed, with their viewer samples; `now_s` on the planner's
/// clock; `hpa`: the HPA's memory, updated at each of its syncs.
pub fn apply_policy(
    policy: ScalingPolicy,
    spec: &StreamSpec,
    inputs: &[RegionInput],
    now_s: f64,
    hpa: &mut HpaState,
    settings: &HpaSettings,
    plan: &mut StreamPlan,
) {
    let desired: BTreeMap<String, (u32, String)> = match policy {
        ScalingPolicy::Surge => return,
        ScalingPolicy::Static => spec
            .regions
            .iter()
            .map(|r| {
                let why = format!("static policy: {} edges (minEdges)", r.min_edges);
                (r.name.clone(), (r.min_edges, why))
            })
            .collect(),
        ScalingPolicy::Hpa => hpa_edges(spec, inputs, now_s, hpa, settings),
    };
    for region in &mut plan.regions {
        if let Some((edges, why)) = desired.get(&region.name) {
            region.desired_edges = *edges;
            region.reason = why.clone();
            // The operator deletes by pod-deletion cost, not by these names.
            region.remove.clear();
        }
    }
    let edges: Vec<u32> = plan.regions.iter().map(|r| r.desired_edges).collect();
    let tree = build_tree(&edges, spec.tree.fanout);
    for (region, reflectors) in plan.regions.iter_mut().zip(tree.reflectors) {
        region.reflectors = reflectors;
    }
    plan.reason = plan
        .regions
        .iter()
        .map(|r| format!("{}: {}", r.name, r.reason))
        .collect::<Vec<_>>()
        .join("; ");
}

/// The HPA's edges per region: at a sync (every `sync_seconds`), its recommendation from the
/// viewers `metric_age_seconds` ago; between syncs, what each region has.
fn hpa_edges(
    spec: &StreamSpec,
    inputs: &[RegionInput],
    now_s: f64,
    hpa: &mut HpaState,
    settings: &HpaSettings,
) -> BTreeMap<String, (u32, String)> {
    let sync = hpa.due(now_s, settings);
    if sync {
        hpa.last_sync_s = Some(now_s);
    }
    hpa.regions
        .retain(|name, _| spec.regions.iter().any(|r| &r.name == name));
    let per_edge = f64::from(viewers_per_edge(spec));
    spec.regions
        .iter()
        .map(|r| {
            let observed = inputs.iter().find(|i| i.name == r.name);
            // Before its Deployment exists a region "has" its minimum, as the HPA's target
            // Deployment would.
            let current = observed
                .map(|i| i.edges.relays)
                .filter(|&n| n > 0)
                .unwrap_or(r.min_edges)
                .clamp(r.min_edges, r.max_edges);
            if !sync {
                let why = format!("hpa: hold {current} edges until the next sync");
                return (r.name.clone(), (current, why));
            }
            let metric_time = now_s - settings.metric_age_seconds;
            let usage = observed.and_then(|i| metric_at(&i.samples, metric_time));
            let input = HpaInput {
                current,
                ready: observed.map_or(0, |i| i.edges.ready),
                usage,
                viewers_per_edge: per_edge,
                min_edges: r.min_edges,
                max_edges: r.max_edges,
            };
            let state = hpa.regions.entry(r.name.clone()).or_default();
            let edges = state
                .sync(now_s, &input, settings)
                .clamp(r.min_edges, r.max_edges);
            let metric = usage.map_or("no metric".to_string(), |v| format!("{v:.0} viewers"));
            let verb = match edges.cmp(&current) {
                std::cmp::Ordering::Greater => "scale up",
                std::cmp::Ordering::Less => "scale down",
                std::cmp::Ordering::Equal => "hold",
            };
            let why = format!(
                "hpa: {verb} {current}→{edges} edges ({metric} {:.0} s ago, {} Ready, target {:.0} per edge)",
                settings.metric_age_seconds,
                input.ready,
                per_edge * settings.target_utilization
            );
            (r.name.clone(), (edges, why))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Stream;
    use crate::sizing::plan_stream;
    use surge_planner::{PlannerState, TierCount, ViewerSample};

    const TWO: &str = r#"
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: s}
spec:
  origin: {region: us-east}
  tree: {fanout: 4, viewersPerEdge: 100}
  regions:
    - {name: us-east, minEdges: 2, maxEdges: 40}
    - {name: eu-west, minEdges: 1, maxEdges: 3}
"#;

    fn spec() -> StreamSpec {
        serde_saphyr::from_str::<Stream>(TWO).unwrap().spec
    }

    /// `viewers` every 5 s from t = 0 to t = 60, on `edges` Ready edges.
    fn input(name: &str, viewers: u64, edges: u32) -> RegionInput {
        RegionInput {
            name: name.into(),
            samples: (0..=12)
                .map(|i| ViewerSample {
                    t_s: f64::from(i) * 5.0,
                    viewers,
                })
                .collect(),
            edges: TierCount {
                relays: edges,
                ready: edges,
            },
            ..RegionInput::default()
        }
    }

    fn planned(policy: ScalingPolicy, inputs: &[RegionInput], hpa: &mut HpaState) -> StreamPlan {
        let s = spec();
        let mut plan = plan_stream(&s, inputs, 60.0, None, &PlannerState::default()).unwrap();
        let settings = HpaSettings::default();
        apply_policy(policy, &s, inputs, 60.0, hpa, &settings, &mut plan);
        plan
    }

    #[test]
    fn surge_keeps_the_planner_s_edges() {
        let inputs = [input("us-east", 1000, 2), input("eu-west", 100, 1)];
        let p = planned(ScalingPolicy::Surge, &inputs, &mut HpaState::default());
        // 1000 × 1.2 / 100.
        assert_eq!(p.region("us-east").unwrap().desired_edges, 12);
    }

    #[test]
    fn static_keeps_min_edges_and_a_matching_tree() {
        let inputs = [input("us-east", 5000, 2), input("eu-west", 500, 1)];
        let p = planned(ScalingPolicy::Static, &inputs, &mut HpaState::default());
        let us = p.region("us-east").unwrap();
        assert_eq!(
            (us.desired_edges, p.region("eu-west").unwrap().desired_edges),
            (2, 1)
        );
        // 3 edges in all fit under the origin's fan-out of 4: no reflectors.
        assert!(p.regions.iter().all(|r| r.reflectors.is_empty()));
        assert!(us.reason.starts_with("static policy"), "{}", us.reason);
    }

    #[test]
    fn hpa_reacts_to_the_30_s_old_metric_within_its_step_limit() {
        // us-east: 1000 viewers on 2 edges: 10 wanted, at most max(2 × 2, 2 + 4) = 6.
        // eu-west: 250 on 1: 3 wanted, within max(2, 5); maxEdges 3.
        let inputs = [input("us-east", 1000, 2), input("eu-west", 250, 1)];
        let mut hpa = HpaState::default();
        let p = planned(ScalingPolicy::Hpa, &inputs, &mut hpa);
        assert_eq!(p.region("us-east").unwrap().desired_edges, 6);
        assert_eq!(p.region("eu-west").unwrap().desired_edges, 3);
        assert_eq!(hpa.last_sync_s, Some(60.0));
        // 6 + 3 edges exceed the origin's fan-out of 4: the tree was rebuilt for them.
        let top: u32 = p.regions.iter().map(|r| r.top_count()).sum();
        assert!(top <= 4, "origin feeds {top}");
        let reason = &p.region("us-east").unwrap().reason;
        assert!(reason.contains("scale up 2→6"), "{reason}");
    }

    #[test]
    fn hpa_holds_between_syncs_and_without_a_metric() {
        let mut hpa = HpaState {
            last_sync_s: Some(50.0),
            ..HpaState::default()
        };
        let inputs = [input("us-east", 1000, 2), input("eu-west", 250, 1)];
        let p = planned(ScalingPolicy::Hpa, &inputs, &mut hpa);
        assert_eq!(
            p.region("us-east").unwrap().desired_edges,
            2,
            "10 s since the sync"
        );
        // No samples at all yet (and no Deployment): each region's minimum.
        let p = planned(ScalingPolicy::Hpa, &[], &mut HpaState::default());
        assert_eq!(p.region("us-east").unwrap().desired_edges, 2);
        assert_eq!(p.region("eu-west").unwrap().desired_edges, 1);
    }
}
