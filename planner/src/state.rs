//! State the planner carries from one reconcile to the next.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Planner memory between reconciles. Start with `PlannerState::default()`, then pass the
/// `state` of each returned [`crate::Plan`] into the next call. It is small (a few numbers
/// and at most one recommendation per reconcile within the stabilisation window per region)
/// and serde-serialisable, so it can live in memory or in the Stream's status. Losing it is
/// safe: the planner then behaves as on a fresh start (no scale-down until it has planned
/// for a full stabilisation window, flash-crowd mode re-detected from
/// the samples). The growth estimate itself needs no state (it is recomputed from the
/// samples' window each time).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PlannerState {
    pub regions: BTreeMap<String, RegionState>,
}

/// One region's memory.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegionState {
    /// When this region last scaled up.
    pub last_scale_up_s: Option<f64>,
    /// When this region last scaled down.
    pub last_scale_down_s: Option<f64>,
    /// When recommendations started being recorded (the first plan for this region).
    pub first_seen_s: Option<f64>,
    /// Edge recommendations within the smoothing window, kept as a decreasing
    /// sequence (a recommendation older and smaller than a newer one can never be the
    /// window's maximum, so it is dropped).
    pub recommendations: Vec<Recommendation>,
    /// The edges for the forecast plus the counts' noise band within the smoothing window,
    /// kept like `recommendations`: a bounded scale-down goes no lower than its maximum.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub noise_keep: Vec<Recommendation>,
    /// Flash-crowd mode, when on.
    pub flash: Option<FlashState>,
    /// Edge sizes the edges' load measured within the stabilisation window, kept as an
    /// increasing sequence (the front is the smallest): a smaller size counts at once, a
    /// larger one only once the smaller ones are that old (quality as a second signal).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edge_sizes: Vec<EdgeSize>,
}

/// An edge size (viewers per edge) measured at a time.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeSize {
    pub t_s: f64,
    pub viewers_per_edge: u64,
}

/// An edge count recommended at a time.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub t_s: f64,
    pub edges: u32,
}

/// Flash-crowd mode bookkeeping.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FlashState {
    /// When the mode was entered.
    pub since_s: f64,
    /// Since when growth has been below the thresholds (`None` while it is above).
    pub calm_since_s: Option<f64>,
    /// When the last multiplicative scale-up step was taken.
    pub last_step_s: Option<f64>,
    /// Highest growth seen in this episode, viewers per minute.
    pub peak_growth_per_minute: f64,
}
