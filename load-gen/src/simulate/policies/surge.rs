//! `surge`: the planner (`surge-planner`), fed like the operator feeds it: a viewer sample
//! per region every 5 s (the operator's scrape interval), 5 s old, the edges asked for and
//! Ready, and the measured relay-ready time; re-planned at every scrape.

use surge_planner::{
    PlanInput, PlannerState, RegionInput, ScalingSettings, TierCount, TreeSettings, ViewerSample,
    plan,
};

use super::super::engine::{Policy, View};

pub const SYNC_S: usize = 5;
pub const METRIC_AGE_S: usize = 5;
/// Samples kept per region (the planner uses the last `estimationWindowSeconds`).
const HISTORY_S: f64 = 300.0;

pub struct Surge {
    tree: TreeSettings,
    scaling: ScalingSettings,
    state: PlannerState,
    samples: Vec<Vec<ViewerSample>>,
    regions: Vec<String>,
    /// Deepest tree planned (reflector levels + edges), for the report.
    pub deepest_tree: u32,
    /// Seconds in flash-crowd mode (any region).
    pub flash_seconds: u64,
}

impl Surge {
    pub fn new(regions: &[String], tree: TreeSettings, scaling: ScalingSettings) -> Self {
        Self {
            tree,
            scaling,
            state: PlannerState::default(),
            samples: vec![Vec::new(); regions.len()],
            regions: regions.to_vec(),
            deepest_tree: 0,
            flash_seconds: 0,
        }
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
        let mut regions = Vec::with_capacity(self.regions.len());
        for (r, name) in self.regions.iter().enumerate() {
            let samples = &mut self.samples[r];
            if let Some(v) = view.observed(r, METRIC_AGE_S) {
                samples.push(ViewerSample {
                    t_s: now - METRIC_AGE_S as f64,
                    viewers: v.round() as u64,
                });
            }
            let keep_from = samples.partition_point(|s| s.t_s < now - HISTORY_S);
            samples.drain(..keep_from);
            let fleet = &view.fleets[r];
            regions.push(RegionInput {
                name: name.clone(),
                samples: samples.clone(),
                edges: TierCount {
                    relays: fleet.requested,
                    ready: fleet.ready,
                },
                reflectors: Vec::new(),
                relays: Vec::new(),
                bounds: None,
            });
        }
        let input = PlanInput {
            now_s: now,
            tree: self.tree.clone(),
            scaling: self.scaling.clone(),
            relay_ready_seconds: Some(view.settings.ready_s as f64),
            regions,
        };
        // Settings are validated before the run, so a plan always comes back.
        let out = plan(&input, &self.state).ok()?;
        self.state = out.state;
        self.deepest_tree = self.deepest_tree.max(out.depth);
        if out.flash_crowd {
            self.flash_seconds += SYNC_S as u64;
        }
        // Plans are sorted by region name, like `Demand::regions`.
        Some(out.regions.iter().map(|p| p.desired_edges).collect())
    }
}
