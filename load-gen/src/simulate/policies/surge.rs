//! `surge`: the operator's planning path (`surge_operator::sizing`: the same sample history,
//! the same Stream-to-planner mapping and one `plan_stream` call per scrape), fed like the
//! operator is fed: a viewer sample per region every 5 s (the operator's scrape interval),
//! 5 s old, the edges asked for and Ready, and the measured relay-ready time.
//!
//! Relay loads follow the locator's least-loaded spreading: the region's viewers are spread
//! over its Ready edges, so a Ready edge is empty only when there are fewer viewers than
//! Ready edges; edges not Ready yet serve nobody. Only those idle edges are listed (the
//! planner picks no other relay for removal, and a fleet of thousands stays cheap to plan).

use surge_operator::crd::StreamSpec;
use surge_operator::sizing::{SampleHistory, history_window_seconds, plan_stream_at};
use surge_planner::{PlannerState, RegionInput, RelayLoad, Tier, TierCount};

use super::super::engine::{Policy, View};

pub const SYNC_S: usize = 5;
pub const METRIC_AGE_S: usize = 5;

pub struct Surge {
    spec: StreamSpec,
    history: SampleHistory,
    state: PlannerState,
    /// The simulated regions, in `Demand::regions` order (sorted by name).
    regions: Vec<String>,
    /// Deepest tree planned (reflector levels + edges), for the report.
    pub deepest_tree: u32,
    /// Seconds in flash-crowd mode (any region).
    pub flash_seconds: u64,
    /// Unix time of step 0 (the trace's first second), for the schedule.
    unix_offset_s: f64,
}

impl Surge {
    /// `spec` must name every region of `regions` (checked by the caller).
    pub fn new(regions: &[String], spec: StreamSpec) -> Self {
        Self {
            spec,
            history: SampleHistory::default(),
            state: PlannerState::default(),
            regions: regions.to_vec(),
            deepest_tree: 0,
            flash_seconds: 0,
            unix_offset_s: 0.0,
        }
    }

    /// Step 0 is Unix time `s` (a trace's second t is Unix time t, so: its first second).
    pub fn with_unix_offset(mut self, s: f64) -> Self {
        self.unix_offset_s = s;
        self
    }
}

impl Policy for Surge {
    fn name(&self) -> &'static str {
        "surge"
    }

    fn decide(&mut self, view: &View) -> Option<Vec<u32>> {
        if !view.step.is_multiple_of(SYNC_S) {
            return None;
        }
        let now = view.step as f64;
        let keep = history_window_seconds(&self.spec);
        let mut inputs = Vec::with_capacity(self.regions.len());
        for (r, name) in self.regions.iter().enumerate() {
            if let Some(v) = view.observed(r, METRIC_AGE_S) {
                let sampled_at = now - METRIC_AGE_S as f64;
                self.history
                    .record(name, sampled_at, v.round() as u64, keep);
            }
            let fleet = &view.fleets[r];
            let viewers = view.observed(r, METRIC_AGE_S).unwrap_or(0.0);
            inputs.push(RegionInput {
                name: name.clone(),
                samples: self.history.samples(name),
                edges: TierCount {
                    relays: fleet.requested,
                    ready: fleet.ready,
                },
                relays: idle_relays(name, fleet.requested, fleet.ready, viewers),
                ..RegionInput::default()
            });
        }
        let ready_s = Some(view.settings.ready_s as f64);
        // The spec is validated before the run, so a plan always comes back.
        let out = plan_stream_at(
            &self.spec,
            &inputs,
            now,
            self.unix_offset_s,
            ready_s,
            &self.state,
        )
        .ok()?;
        self.state = out.state.clone();
        let depth = out
            .regions
            .iter()
            .map(|r| r.reflectors.len() as u32 + 1)
            .max()
            .unwrap_or(0);
        self.deepest_tree = self.deepest_tree.max(depth);
        if out.flash_crowd {
            self.flash_seconds += SYNC_S as u64;
        }
        self.regions
            .iter()
            .map(|name| out.region(name).map(|p| p.desired_edges))
            .collect()
    }
}

/// The idle edges of a region with `requested` edges, `ready` of them Ready, serving
/// `viewers` spread over the Ready ones: the edges not Ready yet, and the Ready edges left
/// empty when there are fewer viewers than Ready edges.
pub fn idle_relays(region: &str, requested: u32, ready: u32, viewers: f64) -> Vec<RelayLoad> {
    let loaded = (viewers.max(0.0).ceil() as u64).min(u64::from(ready)) as u32;
    let pending = (ready..requested).map(|i| (i, false));
    let empty = (loaded..ready).map(|i| (i, true));
    empty
        .chain(pending)
        .map(|(i, ready)| RelayLoad {
            name: format!("{region}-e{i}"),
            tier: Tier::Edge,
            viewers: 0,
            ready,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_edges_are_the_pending_and_the_empty_ones() {
        assert!(idle_relays("r", 4, 4, 10_000.0).is_empty());
        let idle = idle_relays("r", 6, 4, 2.0);
        let ready: Vec<bool> = idle.iter().map(|r| r.ready).collect();
        assert_eq!(ready, vec![true, true, false, false]);
        assert!(idle.iter().all(|r| r.viewers == 0));
        assert_eq!(idle_relays("r", 2, 2, 0.0).len(), 2);
    }
}
