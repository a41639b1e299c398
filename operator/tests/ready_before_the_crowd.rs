//! "Relays are Ready before a flash crowd arrives, not after": the operator's decision path
//! (relay stats as scraped → `observe` → sample history → `plan_stream`, the steps of
//! decide.rs) fed a steadily growing crowd, with new edges becoming Ready only a relay start
//! time after they are asked for. No API server: the Deployment and its pods are simulated.
//!
//! A reactive rule (edges for today's viewers) always lags by the relay start time, so viewers
//! outgrow the Ready edges during every step; the operator must instead have the capacity
//! Ready before the viewers need it.

mod common;

use std::collections::BTreeMap;

use common::fixture;
use surge_operator::crd::Stream;
use surge_operator::labels::TierKind;
use surge_operator::observe::{DeploymentCounts, PodView, ScrapeOutcome, observe};
use surge_operator::scrape::RelayStats;
use surge_operator::sizing::{SampleHistory, history_window_seconds, plan_stream};
use surge_planner::{PlannerState, edges_for_viewers};

const REGION: &str = "eu-west";
/// The operator's default scrape interval (`--scrape-interval`).
const SCRAPE_S: f64 = 5.0;
/// From asking for an edge to its relay being Ready (pod scheduling, image, start).
const RELAY_START_S: f64 = 20.0;

/// One simulated edge pod.
struct Edge {
    name: String,
    created_s: f64,
}

/// What an edge relay answers on `/api/v1/streams` with `viewers` watching the stream.
fn relay_answer(stream: &str, viewers: u64) -> RelayStats {
    let json = serde_json::json!({
        "relay": {"tier": "edge", "region": REGION, "viewers": viewers, "max_viewers": 10000},
        "streams": [{"app": "live", "name": stream, "viewers": {"rtmp": viewers / 2, "flv": viewers - viewers / 2},
                     "source": "upstream", "upstream": {"url": "rtmp://origin/live", "state": "connected"},
                     "ingest_kbps": 2500.0, "dropped_frames": 0, "gop_cache_ms": 2000}]
    });
    serde_json::from_value(json).expect("the relay's answer parses")
}

/// What happened at one scrape.
struct Step {
    t_s: f64,
    viewers: u64,
    edges: u32,
    ready_edges: u32,
    desired: u32,
}

/// Runs the operator's decision path every scrape for `minutes` while viewers grow from `start`
/// by `per_minute`; edges asked for become Ready `RELAY_START_S` later.
fn grow(stream: &Stream, start: u64, per_minute: u64, minutes: u32) -> Vec<Step> {
    let spec = &stream.spec;
    let name = "talk";
    // As in decide.rs.
    let keep = history_window_seconds(spec);
    let mut history = SampleHistory::default();
    let mut state = PlannerState::default();
    let mut edges = vec![Edge {
        name: "edge-0".into(),
        created_s: -600.0,
    }];
    let mut steps = Vec::new();
    let scrapes = (f64::from(minutes) * 60.0 / SCRAPE_S) as u32;
    for i in 0..=scrapes {
        let t = f64::from(i) * SCRAPE_S;
        let viewers = start + (per_minute as f64 * t / 60.0) as u64;
        let is_ready = |e: &Edge| t - e.created_s >= RELAY_START_S;
        let pods: Vec<PodView> = edges
            .iter()
            .map(|e| PodView {
                name: e.name.clone(),
                tier: TierKind::Edge,
                region: REGION.into(),
                // A relay that has not started yet has no IP to scrape.
                ip: is_ready(e).then(|| "127.0.0.1".to_string()),
                ready: is_ready(e),
                ready_after_seconds: is_ready(e).then_some(RELAY_START_S),
                deletion_cost: None,
                terminating: false,
                node: None,
                advertise_host: None,
            })
            .collect();
        let ready: Vec<&PodView> = pods.iter().filter(|p| p.ready).collect();
        // Viewers spread over the Ready edges (the Service balances them).
        let share = viewers / ready.len() as u64;
        let mut scraped: BTreeMap<String, ScrapeOutcome> = BTreeMap::new();
        for (n, pod) in ready.iter().enumerate() {
            let mine = if n == 0 {
                viewers - share * (ready.len() as u64 - 1)
            } else {
                share
            };
            scraped.insert(
                pod.name.clone(),
                Ok(relay_answer(name, mine).viewers_of("live", name)),
            );
        }
        let deployments = BTreeMap::from([(
            (REGION.to_string(), TierKind::Edge),
            DeploymentCounts {
                desired: edges.len() as i32,
                ready: ready.len() as i32,
            },
        )]);
        let observation = observe(
            &[REGION.to_string()],
            &pods,
            &scraped,
            &BTreeMap::new(),
            &deployments,
        );
        assert_eq!(observation.region_viewers[REGION], Some(viewers));
        history.record(REGION, t, viewers, keep);
        let inputs: Vec<_> = observation
            .regions
            .values()
            .cloned()
            .map(|mut r| {
                r.samples = history.samples(&r.name);
                r
            })
            .collect();
        let ready_s = surge_operator::observe::relay_ready_seconds(&pods);
        let plan = plan_stream(spec, &inputs, t, ready_s, &state).expect("plan");
        state = plan.state.clone();
        let desired = plan.region(REGION).expect("region planned").desired_edges;
        steps.push(Step {
            t_s: t,
            viewers,
            edges: edges.len() as u32,
            ready_edges: ready.len() as u32,
            desired,
        });
        // The Deployment gets `desired` replicas; new pods start now.
        while (edges.len() as u32) < desired {
            edges.push(Edge {
                name: format!("edge-{}", edges.len()),
                created_s: t,
            });
        }
        assert!(
            desired as usize >= edges.len(),
            "t={t}: scaled down from {} to {desired} while the crowd grows",
            edges.len()
        );
    }
    steps
}

fn show(steps: &[Step], per_edge: u64) -> String {
    steps
        .iter()
        .map(|s| {
            format!(
                "t={:>4}s viewers={:>6} ready capacity={:>6} edges={} ready={} desired={}",
                s.t_s,
                s.viewers,
                u64::from(s.ready_edges) * per_edge,
                s.edges,
                s.ready_edges,
                s.desired
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The Stream defaults (what `kubectl apply` of a minimal Stream gets), with a crowd growing by
/// one edge's worth of viewers per minute for ten minutes.
#[test]
fn a_steadily_growing_crowd_never_outgrows_the_ready_edges() {
    let stream = fixture("minimal.yaml");
    let per_edge = u64::from(stream.spec.tree.viewers_per_edge);
    let steps = grow(&stream, per_edge / 10, per_edge, 10);
    let log = show(&steps, per_edge);

    // Every scrape, from the first: the viewers fit on the edges already Ready.
    for s in &steps {
        assert!(
            s.viewers <= u64::from(s.ready_edges) * per_edge,
            "t={}s: {} viewers but only {} Ready edges of {per_edge} viewers:\n{log}",
            s.t_s,
            s.viewers,
            s.ready_edges
        );
    }

    // The first scale-up came while today's viewers still fitted the current edges by the
    // planner's own static rule (edges for viewers, with headroom): it was the forecast, not
    // the count, that asked for more.
    let first_up = steps
        .iter()
        .find(|s| s.desired > s.edges)
        .unwrap_or_else(|| panic!("never scaled up:\n{log}"));
    let tree = surge_operator::sizing::tree_settings(&stream.spec, &stream.spec.regions[0]);
    let today = edges_for_viewers(first_up.viewers as f64, &tree, stream.spec.scaling.headroom);
    assert!(
        today <= first_up.edges,
        "the first scale-up (t={}s, {} -> {} edges) came only when today's {} viewers needed {today} \
         edges: reactive, not ahead of the crowd:\n{log}",
        first_up.t_s,
        first_up.edges,
        first_up.desired,
        first_up.viewers
    );

    // The crowd really did outgrow the first edge many times over.
    let last = steps.last().expect("steps");
    assert!(last.viewers >= 10 * per_edge, "{log}");
}
