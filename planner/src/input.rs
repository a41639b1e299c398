//! What the planner is told each reconcile.

use serde::{Deserialize, Serialize};

use crate::settings::{ScalingSettings, TreeSettings};

/// Everything one planning step needs. Build it fresh every reconcile.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanInput {
    /// The time of this reconcile, in seconds on the same clock as the samples' `t_s`
    /// (any monotonic origin: Unix seconds, seconds since the Stream was created, ...).
    pub now_s: f64,
    /// The Stream's tree settings.
    pub tree: TreeSettings,
    /// The Stream's scaling settings.
    pub scaling: ScalingSettings,
    /// Measured time from asking for a relay to its being Ready, in seconds (`None` until
    /// measured). The forecast horizon is `max(leadTimeSeconds, metricDelaySeconds + this)`.
    pub relay_ready_seconds: Option<f64>,
    /// One entry per region, in any order (plans come back sorted by name).
    pub regions: Vec<RegionInput>,
}

/// One region's observations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionInput {
    /// Region name (e.g. the `topology.kubernetes.io/region` value).
    pub name: String,
    /// Viewer counts over time for this region (the sum over its relays at each sample time).
    /// Any order, gaps allowed, duplicates by time keep the last. Only samples within
    /// `estimationWindowSeconds` of the newest are used, so passing a longer history is fine.
    pub samples: Vec<ViewerSample>,
    /// Edge relays that exist now (asked for, ready or not) and how many of them are Ready.
    pub edges: TierCount,
    /// Reflector tiers that exist now; index 0 is reflector level 1 (the tier that feeds the
    /// edges), index 1 is level 2 (feeds level 1), and so on. Empty when the origin feeds the
    /// edges directly.
    pub reflectors: Vec<TierCount>,
    /// Per-relay loads, used to pick the least-loaded relays when scaling down. May be
    /// incomplete; relays not listed are never picked for removal.
    pub relays: Vec<RelayLoad>,
    /// What the region's edges report about their own load, for quality as a second signal
    /// ([`crate::quality`]); `None` when nothing was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_load: Option<EdgeLoad>,
    /// This region's own edge range and edge size (a Stream's `spec.regions[]`); `None` uses
    /// the Stream-wide [`PlanInput::tree`]. The fan-out stays Stream-wide: regions share the
    /// origin and the reflector tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<EdgeBounds>,
}

/// One region's edge range and how many viewers one of its edges is sized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeBounds {
    pub min_edges: u32,
    pub max_edges: u32,
    pub viewers_per_edge: u64,
}

/// The load a region's edges report (each relay's `relay.load`: its viewers over what it
/// holds at its streams' current bitrates).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeLoad {
    /// Edges that reported a load: Ready ones, and those refusing new viewers because they
    /// are full (their pods are not Ready then, but they serve).
    pub edges: u32,
    /// The viewers on those edges (of all their streams: what the loads count).
    pub viewers: u64,
    /// The sum of their loads (each 0..1).
    pub load_sum: f64,
}

/// A viewer count at a time.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewerSample {
    /// Seconds, on the same clock as [`PlanInput::now_s`].
    pub t_s: f64,
    pub viewers: u64,
}

/// How many relays a tier has and how many are Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierCount {
    pub relays: u32,
    pub ready: u32,
}

/// Which tier a relay belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Tier {
    Edge,
    /// Reflector level `n` (1 feeds the edges, 2 feeds level 1, ...).
    Reflector(u32),
}

/// One relay's current load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayLoad {
    /// The relay's name (e.g. the pod name). Returned as-is in removal lists.
    pub name: String,
    pub tier: Tier,
    /// Its load: viewers for an edge, downstream viewers or children for a reflector.
    pub viewers: u64,
    pub ready: bool,
}
