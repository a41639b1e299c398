//! What the planner decides.

use serde::{Deserialize, Serialize};

use crate::state::PlannerState;

/// The result of one planning step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// One plan per input region, sorted by region name.
    pub regions: Vec<RegionPlan>,
    /// How many relays the origin feeds: the sum of every region's top tier.
    /// At most `fanout` unless there are more regions than `fanout` (then a warning is in
    /// `reason`).
    pub origin_children: u32,
    /// Relay levels below the origin in the deepest region (edges count as one level).
    pub depth: u32,
    /// True when any region is in flash-crowd mode.
    pub flash_crowd: bool,
    /// Why flash-crowd mode is on, for the `FlashCrowd` condition message; `None` when off.
    pub flash_crowd_reason: Option<String>,
    /// One line summarising the decision, for a Kubernetes event.
    pub reason: String,
    /// The state to pass to the next [`crate::plan`] call.
    pub state: PlannerState,
}

/// Whether a region's edge count goes up, down or stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScaleChange {
    Up,
    Down,
    Hold,
}

/// One region's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionPlan {
    pub name: String,
    /// Robust estimate of the current viewer count.
    pub level_viewers: f64,
    /// Robust estimate of growth, viewers per minute (negative when the audience shrinks).
    pub growth_per_minute: f64,
    /// How far ahead the forecast looks, seconds from `now_s`.
    pub horizon_seconds: f64,
    /// Forecast viewers `horizon_seconds` from now (never below 0).
    pub forecast_viewers: f64,
    /// Edges that the forecast alone asks for (before flash-crowd steps and scale-down
    /// stabilisation), within bounds.
    pub sized_edges: u32,
    /// Viewers one edge was sized for: `viewersPerEdge`, or less when the edges' measured
    /// load says they hold fewer (quality as a second signal).
    #[serde(default)]
    pub viewers_per_edge: u64,
    /// Mean load of the edges that reported one (0..1), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_load: Option<f64>,
    /// Viewers an announced event asks this region to be ready for now (its share of the
    /// event's `expectedViewers`), 0 when no event is due.
    #[serde(default)]
    pub scheduled_viewers: f64,
    /// Edges this region should have now, within `[minEdges, maxEdges]`.
    pub desired_edges: u32,
    /// Reflector counts per level: index 0 is level 1 (feeds the edges), index 1 is level 2,
    /// ... The last entry is fed by the origin. Empty when the origin feeds the edges.
    /// Every relay feeds at most `fanout` children and the depth is minimal.
    pub reflectors: Vec<u32>,
    pub change: ScaleChange,
    /// This region is in flash-crowd mode.
    pub flash_crowd: bool,
    /// Why, when it is.
    pub flash_crowd_reason: Option<String>,
    /// Relays to delete now (edges and reflectors), least loaded first (fewest viewers, not
    /// Ready before Ready at equal viewers, then name). Only relays named in the input's
    /// `relays` are listed.
    pub remove: Vec<String>,
    /// Every listed relay of the region, least loaded (cheapest to delete) first; use it for
    /// `controller.kubernetes.io/pod-deletion-cost` (position 0 = lowest cost).
    pub removal_order: Vec<String>,
    /// Why this region got this decision (one line).
    pub reason: String,
}

impl RegionPlan {
    /// Total relays in this region's tree (edges plus reflectors).
    pub fn total_relays(&self) -> u32 {
        self.desired_edges + self.reflectors.iter().sum::<u32>()
    }

    /// Relays the origin feeds for this region.
    pub fn top_count(&self) -> u32 {
        self.reflectors
            .last()
            .copied()
            .unwrap_or(self.desired_edges)
    }
}
