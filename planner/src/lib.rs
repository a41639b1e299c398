//! Forecasting and relay-tree sizing for Surge. Pure: no IO, no async, no Kubernetes types.
//!
//! # Using it from a controller
//!
//! Every reconcile, build a [`PlanInput`] and call [`plan`] with the [`PlannerState`] that the
//! previous call returned (start with `PlannerState::default()`):
//!
//! ```
//! use surge_planner::{
//!     plan, EdgeLoad, PlanInput, PlannerState, RegionInput, RelayLoad, ScalingSettings, Tier,
//!     TierCount, TreeSettings, ViewerSample,
//! };
//!
//! let mut state = PlannerState::default();
//! let input = PlanInput {
//!     now_s: 120.0,
//!     tree: TreeSettings::default(),        // fanout 8, viewersPerEdge 2000, edges 1..=100
//!     scaling: ScalingSettings::default(),  // lead 60 s, headroom 0.2, stabilisation 300 s
//!     relay_ready_seconds: Some(30.0),      // measured: asked-for → Ready
//!     regions: vec![RegionInput {
//!         name: "us-east".into(),
//!         // Viewers summed over the region's relays at each scrape (any order, gaps ok).
//!         samples: (0..=24)
//!             .map(|i| ViewerSample { t_s: i as f64 * 5.0, viewers: 1_000 + i * 400 })
//!             .collect(),
//!         edges: TierCount { relays: 2, ready: 2 },
//!         reflectors: vec![], // index 0 = level 1 (feeds edges), index 1 = level 2, ...
//!         relays: vec![
//!             RelayLoad { name: "edge-a".into(), tier: Tier::Edge, viewers: 6_000, ready: true },
//!             RelayLoad { name: "edge-b".into(), tier: Tier::Edge, viewers: 4_600, ready: true },
//!         ],
//!         // What the edges report about their load (None: not measured); here what
//!         // 10,600 viewers on edges with --max-viewers 4,000 report.
//!         edge_load: Some(EdgeLoad { edges: 2, viewers: 10_600, load_sum: 2.65 }),
//!         bounds: None, // or this region's own edge range and edge size (EdgeBounds)
//!     }],
//! };
//! let out = plan(&input, &state).expect("valid settings");
//! state = out.state.clone(); // keep for the next reconcile (in memory or in status)
//! let us = &out.regions[0];
//! assert!(us.desired_edges > 2);        // growing 4,800/min: scale up ahead of the crowd
//! assert!(out.flash_crowd);             // and that is a flash crowd
//! println!("{}", out.reason);           // event text
//! println!("{:?}", out.flash_crowd_reason); // FlashCrowd condition message
//! # let _ = state;
//! ```
//!
//! ## Inputs ([`PlanInput`])
//! - `now_s`: the reconcile time, same clock as the samples (any origin, seconds).
//! - `tree` ([`TreeSettings`]): `fanout` (8), `viewersPerEdge` (2000), `minEdges` (1),
//!   `maxEdges` (100).
//! - `scaling` ([`ScalingSettings`]): `leadTimeSeconds` (60), `metricDelaySeconds` (30),
//!   `headroom` (0.2),
//!   `scaleDownStabilizationSeconds` (300), `scaleDownSmoothingSeconds` (60),
//!   `maxScaleDownFraction` (0.25),
//!   `scaleDownStepSeconds` (60), `estimationWindowSeconds` (60), and `flashCrowd`
//!   ([`FlashCrowdSettings`]: `enabled` (true), `minGrowthPerMinute` (500),
//!   `relativeGrowthPerMinute` (0.05), `scaleUpFactor` (2.0), `leadTimeFactor` (1.5),
//!   `exitAfterSeconds` (120)), `schedule` (announced events, [`ScheduledEvent`]: start,
//!   expected viewers, regions, duration), `scheduleGraceSeconds` (900), `warmEdges` (0),
//!   `collapseUtilization` (0.5) and `quality` ([`QualitySettings`]: `enabled` (true),
//!   `loadAtViewersPerEdge` (0.5), `tolerance` (0.1), `hotLoad` (0.8)). All structs are serde
//!   with camelCase names and
//!   `#[serde(default)]`, so a CRD can embed them or map its own fields onto them.
//!   Invalid values give [`PlanError::InvalidSetting`] naming the field.
//! - `relay_ready_seconds`: measured relay-ready time; the forecast horizon is
//!   `max(leadTimeSeconds, metricDelaySeconds + relay_ready_seconds)` (×`leadTimeFactor` in
//!   flash-crowd mode),
//!   counted from `now_s`; the extrapolation starts at the newest sample, so stale metrics
//!   lengthen the effective horizon by their age.
//! - `regions` ([`RegionInput`]): name, viewer samples, the edges that exist (asked for)
//!   and how many are Ready, the reflector tiers that exist, and per-relay loads
//!   ([`RelayLoad`]: name, [`Tier`], viewers, ready) for picking removals, the edges' measured
//!   load ([`EdgeLoad`]: edges that reported one, their viewers, the sum of their loads),
//!   and optionally the
//!   region's own `bounds` ([`EdgeBounds`]: `minEdges`, `maxEdges`, `viewersPerEdge`) in place
//!   of the Stream-wide ones in `tree` (a Stream's regions each have their own edge range; the
//!   fan-out and the reflector tree stay shared).
//!
//! ## Outputs ([`Plan`])
//! Per region ([`RegionPlan`], sorted by name): `desired_edges`, `reflectors` (counts per
//! level, index 0 = level 1 feeding the edges, last = fed by the origin; empty = origin feeds
//! edges directly), `level_viewers`, `growth_per_minute`, `forecast_viewers`,
//! `horizon_seconds`, `sized_edges`, `viewers_per_edge` (the edge size it sized with),
//! `edge_load` (the edges' mean load), `change` (Up/Down/Hold), `flash_crowd` and its reason,
//! `remove` (relay names to delete now, least loaded first: fewest viewers, not-Ready before
//! Ready at equal viewers, then name), `removal_order` (all listed relays, cheapest to delete first, for
//! `controller.kubernetes.io/pod-deletion-cost`), and `reason`. Overall: `origin_children`,
//! `depth` (levels below the origin, edges included), `flash_crowd` +
//! `flash_crowd_reason` (for the `FlashCrowd` condition), `reason` (one line for an event),
//! and `state` for the next call.
//!
//! ## Rules
//! 1. Level and growth: Theil–Sen over the last `estimationWindowSeconds` of samples (and
//!    its newest half, taking the larger), robust to noise, outliers and gaps
//!    ([`estimate`]).
//! 2. Forecast `level + growth × horizon`; size
//!    `ceil(max(forecast, current viewers) × (1 + headroom) / viewersPerEdge)` within
//!    bounds ([`edges_for_viewers`]): capacity is never planned below today's demand.
//! 3. Flash-crowd mode when growth ≥ `minGrowthPerMinute` and ≥ `relativeGrowthPerMinute` ×
//!    level; the horizon is stretched by `leadTimeFactor`, and when the crowd outruns the
//!    fleet (current viewers with headroom exceed what all edges asked for serve) a
//!    scale-up is at least `scaleUpFactor` × the current edges (at most one such step per
//!    relay-ready time); it ends after growth stayed below the thresholds for
//!    `exitAfterSeconds`.
//! 4. Scale-up is immediate. Scale-down waits until the region has been planned for a full
//!    stabilisation window and none of its scale-ups happened within it, goes no lower than
//!    the highest recommendation of the last `scaleDownSmoothingSeconds`, removes at most
//!    `maxScaleDownFraction` of the edges (≥ 1) per step and one step per
//!    `scaleDownStepSeconds`.
//! 5. Schedule: from one horizon before an event's start until its end (`start + duration`,
//!    else `start + scheduleGraceSeconds`), a region keeps at least
//!    `ceil(its share of expectedViewers / viewersPerEdge)` edges; its share is its part of
//!    the event's regions' viewers now (equal when none has any) ([`schedule`]).
//! 6. Quality: the edges' loads give the edge size they really have,
//!    `loadAtViewersPerEdge × viewers / Σ load`; when that size × (1 + `tolerance`) is below
//!    `viewersPerEdge` the region is sized with that size (rules 2, 3, 5 and the oversized-fleet
//!    test; a smaller size counts at once, a larger one after the stabilisation window), and
//!    no scale-down leaves the edges' mean load above `hotLoad` ([`quality`]).
//! 7. Tree: the fewest reflector levels such that no relay (origin included) feeds more than
//!    `fanout` children; regions share the origin's fan-out ([`build_tree`]).
//!
//! ## State ([`PlannerState`])
//! Per region: last scale-up/down times, when planning started, the smoothing window's edge
//! recommendations (a decreasing list, a handful of entries), and the flash-crowd episode.
//! serde-serialisable; losing it is safe (behaves like a fresh start: no scale-down for one
//! stabilisation window).

mod estimate;
mod format;
mod hpa;
mod input;
mod output;
mod planner;
pub mod quality;
pub mod schedule;
mod settings;
mod sizing;
mod state;
mod tree;

pub use estimate::{Estimate, estimate};
pub use hpa::{HpaInput, HpaRegion, HpaSettings, HpaState, metric_at};
pub use input::{
    EdgeBounds, EdgeLoad, PlanInput, RegionInput, RelayLoad, Tier, TierCount, ViewerSample,
};
pub use output::{Plan, RegionPlan, ScaleChange};
pub use planner::{plan, reflector_removals};
pub use schedule::ScheduledEvent;
pub use settings::{FlashCrowdSettings, QualitySettings, ScalingSettings, TreeSettings};
pub use sizing::edges_for_viewers;
pub use state::{EdgeSize, FlashState, PlannerState, Recommendation, RegionState};
pub use tree::{Tree, build as build_tree};

/// Why a plan could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// A setting is out of range; `field` is its path in the Stream spec.
    #[error("invalid {field}: {why}")]
    InvalidSetting {
        field: &'static str,
        why: &'static str,
    },
    /// The input itself is unusable (duplicate region names, non-finite time, ...).
    #[error("invalid planner input: {0}")]
    InvalidInput(String),
}
