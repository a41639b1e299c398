//! The simulator's `surge` policy plans as the operator does: for the same viewer samples,
//! fleet and clock, its decisions equal those of the operator's own loop (sample history kept
//! over `history_window_seconds`, one `plan_stream` per scrape with the planner state carried
//! over), for a Stream that sets nothing, for one with its own settings and for relays that hold
//! half of what the Stream says (their load reported as the simulator models it).

use std::path::PathBuf;

use surge_load::simulate::policies::{Surge, edge_holds, edge_load, idle_relays};
use surge_load::simulate::{Demand, Fleet, Policy, SimSettings, SimulateArgs, View, stream_spec};
use surge_load::trace::read_trace;
use surge_operator::crd::StreamSpec;
use surge_operator::sizing::{SampleHistory, history_window_seconds, plan_stream};
use surge_planner::{PlannerState, RegionInput, TierCount};

/// The operator's scrape interval and the metric age the simulator models.
const SCRAPE_S: usize = 5;
const METRIC_AGE_S: usize = 5;
const READY_S: u64 = 30;

fn demand(name: &str) -> Demand {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("traces/{name}.csv"));
    Demand::from_trace(&read_trace(&path).expect("trace"), None).expect("demand")
}

/// The operator's loop, written out: record the scraped sample, plan the whole Stream once.
struct OperatorLoop {
    spec: StreamSpec,
    history: SampleHistory,
    state: PlannerState,
    /// Viewers an edge reports load 1 at.
    edge_holds: f64,
}

impl OperatorLoop {
    fn decide(&mut self, demand: &Demand, step: usize, fleets: &[Fleet]) -> Vec<u32> {
        let mut inputs = Vec::new();
        for (r, name) in demand.regions.iter().enumerate() {
            if let Some(i) = step.checked_sub(METRIC_AGE_S) {
                let keep = history_window_seconds(&self.spec);
                let viewers = demand.viewers[r][i].round() as u64;
                self.history.record(name, i as f64, viewers, keep);
            }
            let viewers = step
                .checked_sub(METRIC_AGE_S)
                .map_or(0.0, |i| demand.viewers[r][i]);
            inputs.push(RegionInput {
                name: name.clone(),
                samples: self.history.samples(name),
                edges: TierCount {
                    relays: fleets[r].requested,
                    ready: fleets[r].ready,
                },
                // The simulator's model of relay loads (least-loaded spreading).
                relays: idle_relays(name, fleets[r].requested, fleets[r].ready, viewers),
                // And of what they report about their load.
                edge_load: edge_load(fleets[r].ready, viewers, self.edge_holds),
                ..RegionInput::default()
            });
        }
        let plan = plan_stream(
            &self.spec,
            &inputs,
            step as f64,
            Some(READY_S as f64),
            &self.state,
        )
        .expect("plan");
        self.state = plan.state.clone();
        demand
            .regions
            .iter()
            .map(|n| plan.region(n).expect("every region planned").desired_edges)
            .collect()
    }
}

/// Feeds both the same steps; the fleet follows the decisions at once (the comparison is of
/// the planning path, not of the fleet model). Returns how many decisions changed the fleet.
fn assert_same_decisions(trace: &str, args: SimulateArgs) -> usize {
    let demand = demand(trace);
    let spec = stream_spec(&args, &demand.regions).expect("valid Stream");
    let settings = SimSettings {
        ready_s: READY_S,
        viewers_per_edge: u64::from(spec.tree.viewers_per_edge),
        min_edges: 1,
        max_edges: 10_000,
        true_capacity_factor: args.true_capacity_factor,
    };
    let mut simulator =
        Surge::new(&demand.regions, spec.clone()).with_true_capacity(args.true_capacity_factor);
    let mut operator = OperatorLoop {
        edge_holds: edge_holds(&spec, args.true_capacity_factor),
        spec,
        history: SampleHistory::default(),
        state: PlannerState::default(),
    };
    let mut fleets = vec![Fleet::default(); demand.regions.len()];
    let mut changes = 0;
    for step in (0..demand.len()).step_by(SCRAPE_S) {
        let view = View {
            step,
            demand: &demand,
            fleets: &fleets,
            settings: &settings,
        };
        let simulated = simulator.decide(&view).expect("a decision every scrape");
        let expected = operator.decide(&demand, step, &fleets);
        assert_eq!(simulated, expected, "{trace} at {step} s");
        for (fleet, edges) in fleets.iter_mut().zip(&simulated) {
            if fleet.requested != *edges {
                changes += 1;
            }
            fleet.requested = *edges;
            fleet.ready = *edges;
        }
    }
    changes
}

#[test]
fn a_stream_that_sets_nothing_plans_the_same_in_both() {
    let changes = assert_same_decisions(
        "facebook",
        SimulateArgs::for_trace(PathBuf::from("facebook.csv")),
    );
    assert!(
        changes > 5,
        "the crowd made the plan move ({changes} changes)"
    );
}

#[test]
fn a_stream_with_its_own_settings_plans_the_same_in_both() {
    let args = SimulateArgs {
        viewers_per_edge: Some(500),
        headroom: Some(0.5),
        lead_time_seconds: Some(120),
        estimation_window_seconds: Some(90),
        flash_lead_time_factor: Some(2.0),
        ..SimulateArgs::for_trace(PathBuf::from("twitch.csv"))
    };
    let changes = assert_same_decisions("twitch", args);
    assert!(
        changes > 5,
        "the crowd made the plan move ({changes} changes)"
    );
}

#[test]
fn relays_that_hold_half_plan_the_same_in_both() {
    let args = SimulateArgs {
        true_capacity_factor: 0.5,
        ..SimulateArgs::for_trace(PathBuf::from("facebook.csv"))
    };
    let changes = assert_same_decisions("facebook", args);
    assert!(changes > 5, "the plan moved ({changes} changes)");
}
