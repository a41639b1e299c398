//! `surge`: the operator's planning path (`surge_operator::sizing`: the same sample history,
//! the same Stream-to-planner mapping and one `plan_stream` call per scrape), fed like the
//! operator is fed: a viewer sample per region every 5 s (the operator's scrape interval),
//! 5 s old, the edges asked for and Ready, and the measured relay-ready time.
//!
//! Relay loads follow the locator's least-loaded spreading: the region's viewers are spread
//! over its Ready edges, so a Ready edge is empty only when there are fewer viewers than
//! Ready edges; edges not Ready yet serve nobody. Only those idle edges are listed (the
//! planner picks no other relay for removal, and a fleet of thousands stays cheap to plan).
//!
//! The Ready edges also report their load ([`edge_load`]), as relays do on
//! `/api/v1/streams`: their viewers over what they really hold, which is the configured
//! `--max-viewers` times the true capacity factor (`--true-capacity-factor`).

use surge_operator::crd::StreamSpec;
use surge_operator::sizing::{
    SampleHistory, history_window_seconds, load_at_viewers_per_edge, plan_stream_at,
    viewers_per_edge,
};
use surge_planner::{EdgeLoad, PlannerState, RegionInput, RelayLoad, Tier, TierCount};

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
    /// Viewers an edge reports load 1 at: what it really holds.
    edge_holds: f64,
}

impl Surge {
    /// `spec` must name every region of `regions` (checked by the caller).
    pub fn new(regions: &[String], spec: StreamSpec) -> Self {
        let edge_holds = edge_holds(&spec, 1.0);
        Self {
            edge_holds,
            spec,
            history: SampleHistory::default(),
            state: PlannerState::default(),
            regions: regions.to_vec(),
            deepest_tree: 0,
            flash_seconds: 0,
            unix_offset_s: 0.0,
        }
    }

    /// Edges that really hold `factor` of what the Stream says (and report the load that goes
    /// with it).
    pub fn with_true_capacity(mut self, factor: f64) -> Self {
        self.edge_holds = edge_holds(&self.spec, factor);
        self
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
                edge_load: edge_load(fleet.ready, viewers, self.edge_holds),
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

/// Viewers an edge of `spec` reports load 1 at when it really holds `factor` of what the
/// Stream says: its viewersPerEdge over the load it is expected at then.
pub fn edge_holds(spec: &StreamSpec, factor: f64) -> f64 {
    f64::from(viewers_per_edge(spec)) / load_at_viewers_per_edge(spec) * factor
}

/// The load `ready` edges report while serving `viewers` spread over them, each holding
/// `holds` viewers at load 1: they serve at most that many (the rest is refused), at
/// load viewers / holds. `None` without Ready edges.
pub fn edge_load(ready: u32, viewers: f64, holds: f64) -> Option<EdgeLoad> {
    if ready == 0 || holds <= 0.0 {
        return None;
    }
    let served = viewers.max(0.0).min(f64::from(ready) * holds).round();
    Some(EdgeLoad {
        edges: ready,
        viewers: served as u64,
        load_sum: served / holds,
    })
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
    fn edges_report_their_viewers_over_what_they_hold() {
        assert_eq!(edge_load(0, 100.0, 4_000.0), None);
        let l = edge_load(4, 6_000.0, 2_000.0).unwrap();
        assert_eq!((l.edges, l.viewers, l.load_sum), (4, 6_000, 3.0));
        // Past what they hold, the rest is refused: full relays.
        let full = edge_load(2, 6_000.0, 2_000.0).unwrap();
        assert_eq!((full.viewers, full.load_sum), (4_000, 2.0));
    }

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
