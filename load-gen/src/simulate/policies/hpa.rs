//! `hpa`: the Kubernetes HorizontalPodAutoscaler (autoscaling/v2) at its defaults, one per
//! region's edge Deployment, on a per-pod viewers metric with target `viewersPerEdge`. The
//! rules are the planner crate's ([`surge_planner::HpaRegion`], shared with
//! `surge-operator local --policy hpa`); this file only feeds them like the simulator feeds
//! every policy: a sync every 15 s, the region's demand as it was 30 s earlier.

use surge_planner::{HpaInput, HpaRegion, HpaSettings};

use super::super::engine::{Policy, View};

pub const SYNC_S: usize = 15;
pub const METRIC_AGE_S: usize = 30;

pub struct Hpa {
    settings: HpaSettings,
    regions: Vec<HpaRegion>,
}

impl Hpa {
    pub fn new(regions: usize) -> Self {
        Self {
            settings: HpaSettings::default(),
            regions: vec![HpaRegion::default(); regions],
        }
    }
}

impl Policy for Hpa {
    fn name(&self) -> &'static str {
        "hpa"
    }

    fn decide(&mut self, view: &View) -> Option<Vec<u32>> {
        if !view.step.is_multiple_of(SYNC_S) {
            return None;
        }
        let s = view.settings;
        let desired = view
            .fleets
            .iter()
            .zip(&mut self.regions)
            .enumerate()
            .map(|(r, (fleet, hpa))| {
                let input = HpaInput {
                    current: fleet.requested,
                    ready: fleet.ready,
                    usage: view.observed(r, METRIC_AGE_S),
                    viewers_per_edge: s.viewers_per_edge as f64,
                    min_edges: s.min_edges,
                    max_edges: s.max_edges,
                };
                hpa.sync(view.step as f64, &input, &self.settings)
            })
            .collect();
        Some(desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::demand::Demand;
    use crate::simulate::engine::{SimSettings, simulate};

    fn run(viewers: Vec<f64>) -> crate::simulate::engine::Outcome {
        let demand = Demand {
            broadcast_id: "b".into(),
            regions: vec!["r".into()],
            start_s: 0,
            viewers: vec![viewers],
        };
        let settings = SimSettings {
            ready_s: 0,
            viewers_per_edge: 100,
            min_edges: 1,
            max_edges: 1000,
            true_capacity_factor: 1.0,
        };
        simulate(&mut Hpa::new(1), &demand, &settings)
    }

    /// Edges at each HPA sync (Ready at once, capacity / 100).
    fn edges_at_syncs(out: &crate::simulate::engine::Outcome) -> Vec<u32> {
        out.capacity
            .iter()
            .step_by(SYNC_S)
            .map(|c| (*c / 100.0) as u32)
            .collect()
    }

    #[test]
    fn scale_up_waits_for_30_s_old_metrics_and_doubles_at_most() {
        // From 100 to 3,000 viewers at t = 1: 30 edges wanted.
        let mut v = vec![3_000.0; 200];
        v[0] = 100.0;
        let edges = edges_at_syncs(&run(v));
        // t=0,15,30: the metric is still the old one (or none); t=45: 1 → 5 (max(2x, +4));
        // then doubling: 10, 20, 30.
        assert_eq!(&edges[..8], &[1, 1, 1, 5, 10, 20, 30, 30]);
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        // 10 edges' worth, then +9% (inside the 0.1 tolerance).
        let mut v = vec![1_000.0; 100];
        v.extend(vec![1_090.0; 200]);
        let out = run(v);
        // The run starts with 10 edges; 1,090 viewers is 1.09 × the target: no change.
        assert_eq!(out.scale_events, 0);
        assert_eq!(*out.capacity.last().unwrap(), 1_000.0);
    }

    #[test]
    fn scale_down_waits_for_the_300_s_window() {
        let mut v = vec![2_000.0; 60];
        v.extend(vec![500.0; 600]);
        let edges = edges_at_syncs(&run(v));
        // Demand falls at t=60 and the metric at t=90; the highest recommendation of the last
        // 300 s stays 20 until t = 90 + 300.
        let first_down = edges.iter().position(|&e| e < 20).unwrap() * SYNC_S;
        assert!((390..=405).contains(&first_down), "{first_down}: {edges:?}");
        assert_eq!(*edges.last().unwrap(), 5);
    }
}
