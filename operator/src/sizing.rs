//! The thin adapter between a Stream and the planner (`surge-planner`), which makes every sizing
//! decision. A Stream's settings and observations become one [`PlanInput`] ([`plan_input`],
//! each region with its own edge range) and the planner plans all regions and the shared
//! reflector tree in one call. The simulator's `surge` policy plans through the same
//! [`plan_input`], so it runs the operator's path.

use std::collections::{BTreeMap, VecDeque};

use k8s_openapi::jiff::Timestamp;
use surge_planner::{
    EdgeBounds, FlashCrowdSettings, PlanError, PlanInput, PlannerState, QualitySettings,
    RegionInput, RegionPlan, ScalingSettings, ScheduledEvent, TreeSettings, ViewerSample, plan,
};

use crate::crd::{RegionSpec, ScalingSpec, StreamSpec};

/// Seconds since the Unix epoch of an RFC 3339 time; `None` when it is not one.
pub fn unix_seconds(rfc3339: &str) -> Option<f64> {
    let t: Timestamp = rfc3339.parse().ok()?;
    Some(t.as_millisecond() as f64 / 1000.0)
}

/// `spec.scaling.schedule` on the planner's clock: the planner's `now_s` is Unix time
/// `now_s + unix_offset_s`. Events whose start does not parse (refused by validation) are
/// left out.
pub fn schedule_events(s: &ScalingSpec, unix_offset_s: f64) -> Vec<ScheduledEvent> {
    s.schedule
        .iter()
        .filter_map(|e| {
            Some(ScheduledEvent {
                start_s: unix_seconds(&e.start)? - unix_offset_s,
                expected_viewers: e.expected_viewers,
                regions: e.regions.clone(),
                duration_seconds: e.duration_minutes.map(|m| f64::from(m) * 60.0),
            })
        })
        .collect()
}

/// Planner scaling settings from `spec.scaling`. Struct updates keep this compiling (with the
/// planner's defaults) when the planner grows a setting the Stream does not expose yet.
#[allow(clippy::needless_update)]
pub fn scaling_settings(s: &ScalingSpec) -> ScalingSettings {
    ScalingSettings {
        lead_time_seconds: f64::from(s.lead_time_seconds),
        headroom: s.headroom,
        scale_down_stabilization_seconds: f64::from(s.scale_down_stabilization_seconds),
        max_scale_down_fraction: s.max_scale_down_fraction,
        scale_down_step_seconds: f64::from(s.scale_down_step_seconds),
        estimation_window_seconds: f64::from(s.estimation_window_seconds),
        flash_crowd: FlashCrowdSettings {
            enabled: s.flash_crowd.enabled,
            min_growth_per_minute: s.flash_crowd.min_growth_per_minute,
            relative_growth_per_minute: s.flash_crowd.relative_growth_per_minute,
            scale_up_factor: s.flash_crowd.scale_up_factor,
            lead_time_factor: s.flash_crowd.lead_time_factor,
            exit_after_seconds: f64::from(s.flash_crowd.exit_after_seconds),
            ..FlashCrowdSettings::default()
        },
        warm_edges: s.warm_edges,
        quality: QualitySettings {
            enabled: s.quality.enabled,
            hot_load: s.quality.hot_load,
            ..QualitySettings::default()
        },
        // Planner settings the Stream does not expose keep the planner's defaults.
        ..ScalingSettings::default()
    }
}

/// Largest edge size the CRD allows (`viewersPerEdge` maximum), also the ceiling of a derived
/// one.
pub const MAX_VIEWERS_PER_EDGE: u32 = 1_000_000;

/// The edge size the planner sizes for and `--max-viewers` derives from, the one place it is
/// decided: an explicit `viewersPerEdge` wins; else, with `edgeEgressMbps`, what that egress
/// carries at the Stream's bitrate ([`viewers_for_egress`]); else the default (2000).
pub fn viewers_per_edge(spec: &StreamSpec) -> u32 {
    match spec.tree.edge_egress_mbps {
        Some(mbps) if !spec.tree.viewers_per_edge_given => {
            viewers_for_egress(mbps, spec.bitrate_kbps)
        }
        _ => spec.tree.viewers_per_edge,
    }
}

/// Viewers an egress budget of `mbps` carries at `bitrate_kbps`: floor(mbps * 1000 /
/// bitrate), within 1..=[`MAX_VIEWERS_PER_EDGE`] (a bitrate of 0, refused by validation, counts
/// as 1 kbit/s).
pub fn viewers_for_egress(mbps: u32, bitrate_kbps: u32) -> u32 {
    let viewers = u64::from(mbps) * 1000 / u64::from(bitrate_kbps.max(1));
    u32::try_from(viewers)
        .unwrap_or(u32::MAX)
        .clamp(1, MAX_VIEWERS_PER_EDGE)
}

/// The load an edge reports when it serves `viewersPerEdge` viewers at the Stream's bitrate,
/// from how its edges are started ([`crate::build::deployment`]): `--max-viewers` (twice
/// viewersPerEdge) and, with `edgeEgressMbps`, the viewers that egress carries at
/// `bitrateKbps` (the relays' bitrate floor), whichever is fewer; at most 1 (an edge size
/// above what the egress carries is a full relay).
pub fn load_at_viewers_per_edge(spec: &StreamSpec) -> f64 {
    let size = viewers_per_edge(spec);
    let mut holds = crate::build::deployment::max_viewers(size) as f64;
    if let Some(mbps) = spec.tree.edge_egress_mbps {
        let by_egress = f64::from(mbps) * 1000.0 / f64::from(spec.bitrate_kbps.max(1));
        holds = holds.min(by_egress);
    }
    (f64::from(size) / holds.max(1.0)).clamp(f64::MIN_POSITIVE, 1.0)
}

/// Planner tree settings of the whole Stream (`spec.tree`); the edge range of the first region
/// stands in for the Stream-wide one, which every region overrides with its own
/// ([`edge_bounds`]).
#[allow(clippy::needless_update)]
fn stream_tree_settings(spec: &StreamSpec) -> TreeSettings {
    let mut tree = TreeSettings {
        fanout: spec.tree.fanout,
        viewers_per_edge: u64::from(viewers_per_edge(spec)),
        ..TreeSettings::default()
    };
    if let Some(first) = spec.regions.first() {
        tree = tree.for_region(Some(&edge_bounds(spec, first)));
    }
    tree
}

/// One region's edge range and edge size.
pub fn edge_bounds(spec: &StreamSpec, region: &RegionSpec) -> EdgeBounds {
    EdgeBounds {
        min_edges: region.min_edges,
        max_edges: region.max_edges,
        viewers_per_edge: u64::from(viewers_per_edge(spec)),
    }
}

/// Planner tree settings as they apply to one region (`spec.tree` plus the region's edge range).
pub fn tree_settings(spec: &StreamSpec, region: &RegionSpec) -> TreeSettings {
    stream_tree_settings(spec).for_region(Some(&edge_bounds(spec, region)))
}

/// What the planner is told for `spec` at `now_s`: one input per spec region (matched by name
/// in `observed`; a region with no observations is planned from no samples and no relays),
/// each carrying its own edge bounds. The one mapping from a Stream to the planner, shared by
/// the operator and the simulator. `now_s` is taken as Unix time for `spec.scaling.schedule`
/// (as in the simulator, whose second t is 1970-01-01T00:00:00Z + t); a caller on another
/// clock uses [`plan_input_at`].
pub fn plan_input(
    spec: &StreamSpec,
    observed: &[RegionInput],
    now_s: f64,
    relay_ready_seconds: Option<f64>,
) -> PlanInput {
    plan_input_at(spec, observed, now_s, 0.0, relay_ready_seconds)
}

/// [`plan_input`] on a planner clock that is Unix time minus `unix_offset_s` (the operator's
/// clock counts from its start: offset = Unix now − `now_s`).
pub fn plan_input_at(
    spec: &StreamSpec,
    observed: &[RegionInput],
    now_s: f64,
    unix_offset_s: f64,
    relay_ready_seconds: Option<f64>,
) -> PlanInput {
    let regions = spec
        .regions
        .iter()
        .map(|region| {
            let mut input = observed
                .iter()
                .find(|o| o.name == region.name)
                .cloned()
                .unwrap_or_else(|| RegionInput {
                    name: region.name.clone(),
                    ..RegionInput::default()
                });
            input.bounds = Some(edge_bounds(spec, region));
            input
        })
        .collect();
    let mut scaling = ScalingSettings {
        schedule: schedule_events(&spec.scaling, unix_offset_s),
        ..scaling_settings(&spec.scaling)
    };
    scaling.quality.load_at_viewers_per_edge = load_at_viewers_per_edge(spec);
    PlanInput {
        now_s,
        tree: stream_tree_settings(spec),
        scaling,
        relay_ready_seconds,
        regions,
    }
}

/// The planner's decision for a whole Stream, regions in spec order.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamPlan {
    pub regions: Vec<RegionPlan>,
    pub flash_crowd: bool,
    pub flash_crowd_reason: Option<String>,
    /// One line per region that changed, for events.
    pub reason: String,
    pub state: PlannerState,
}

impl StreamPlan {
    pub fn region(&self, name: &str) -> Option<&RegionPlan> {
        self.regions.iter().find(|r| r.name == name)
    }
}

/// Plans every region of `spec` and the reflector tree they share, in one planner call.
/// `observed` holds one input per spec region (matched by name; see [`plan_input`]); `now_s`
/// is taken as Unix time for the schedule ([`plan_stream_at`] for another clock).
pub fn plan_stream(
    spec: &StreamSpec,
    observed: &[RegionInput],
    now_s: f64,
    relay_ready_seconds: Option<f64>,
    state: &PlannerState,
) -> Result<StreamPlan, PlanError> {
    plan_stream_at(spec, observed, now_s, 0.0, relay_ready_seconds, state)
}

/// [`plan_stream`] on a planner clock that is Unix time minus `unix_offset_s`.
pub fn plan_stream_at(
    spec: &StreamSpec,
    observed: &[RegionInput],
    now_s: f64,
    unix_offset_s: f64,
    relay_ready_seconds: Option<f64>,
    state: &PlannerState,
) -> Result<StreamPlan, PlanError> {
    let out = plan(
        &plan_input_at(spec, observed, now_s, unix_offset_s, relay_ready_seconds),
        state,
    )?;
    // The planner answers in region-name order; the Stream's status and events use spec order.
    let mut by_name: BTreeMap<String, RegionPlan> = out
        .regions
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
    let regions: Vec<RegionPlan> = spec
        .regions
        .iter()
        .filter_map(|r| by_name.remove(&r.name))
        .collect();
    let flash: Vec<String> = regions
        .iter()
        .filter(|r| r.flash_crowd)
        .map(|r| {
            format!(
                "{}: {}",
                r.name,
                r.flash_crowd_reason.as_deref().unwrap_or("flash crowd")
            )
        })
        .collect();
    let reason = regions
        .iter()
        .map(|r| format!("{}: {}", r.name, r.reason))
        .collect::<Vec<_>>()
        .join("; ");
    Ok(StreamPlan {
        flash_crowd: !flash.is_empty(),
        flash_crowd_reason: (!flash.is_empty()).then(|| flash.join("; ")),
        reason,
        regions,
        state: out.state,
    })
}

/// How much viewer history to keep for `spec`: twice the planner's estimation window.
pub fn history_window_seconds(spec: &StreamSpec) -> f64 {
    f64::from(spec.scaling.estimation_window_seconds) * 2.0
}

/// Viewer samples per region, kept between reconciles (the planner itself holds no history).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleHistory {
    regions: BTreeMap<String, VecDeque<ViewerSample>>,
}

impl SampleHistory {
    /// Records `viewers` for `region` at `t_s`, dropping samples older than `keep_seconds`.
    pub fn record(&mut self, region: &str, t_s: f64, viewers: u64, keep_seconds: f64) {
        let samples = self.regions.entry(region.to_string()).or_default();
        samples.push_back(ViewerSample { t_s, viewers });
        while samples.front().is_some_and(|s| s.t_s < t_s - keep_seconds) {
            samples.pop_front();
        }
    }

    pub fn samples(&self, region: &str) -> Vec<ViewerSample> {
        self.regions
            .get(region)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Forgets regions no longer in the spec.
    pub fn retain_regions(&mut self, names: &[&str]) {
        self.regions.retain(|k, _| names.contains(&k.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Stream;
    use surge_planner::TierCount;

    fn spec(yaml: &str) -> StreamSpec {
        serde_saphyr::from_str::<Stream>(yaml).unwrap().spec
    }

    const THREE: &str = r#"
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: s}
spec:
  origin: {region: us-east}
  tree: {fanout: 4, viewersPerEdge: 100}
  regions:
    - {name: us-east, minEdges: 2, maxEdges: 40}
    - {name: eu-west, minEdges: 1, maxEdges: 3}
"#;

    fn input(name: &str, viewers: u64, edges: u32) -> RegionInput {
        RegionInput {
            name: name.into(),
            samples: (0..=12)
                .map(|i| ViewerSample {
                    t_s: f64::from(i) * 5.0,
                    viewers,
                })
                .collect(),
            edges: TierCount {
                relays: edges,
                ready: edges,
            },
            ..RegionInput::default()
        }
    }

    #[test]
    fn idle_stream_gets_min_edges_per_region() {
        let s = spec(THREE);
        let p = plan_stream(&s, &[], 60.0, None, &PlannerState::default()).unwrap();
        assert_eq!(p.regions[0].name, "us-east");
        assert_eq!(p.regions[0].desired_edges, 2);
        assert_eq!(p.regions[1].desired_edges, 1);
        assert!(p.regions.iter().all(|r| r.reflectors.is_empty()));
        assert!(!p.flash_crowd);
    }

    #[test]
    fn steady_viewers_size_edges_with_headroom_and_per_region_bounds() {
        let s = spec(THREE);
        let obs = [input("us-east", 1000, 2), input("eu-west", 1000, 1)];
        let p = plan_stream(&s, &obs, 60.0, None, &PlannerState::default()).unwrap();
        // 1000 viewers * 1.2 / 100 per edge = 12 edges; eu-west is capped at 3.
        assert_eq!(p.region("us-east").unwrap().desired_edges, 12);
        assert_eq!(p.region("eu-west").unwrap().desired_edges, 3);
        // 12 + 3 children exceed the origin's fan-out of 4: reflectors appear.
        let total_top: u32 = p.regions.iter().map(|r| r.top_count()).sum();
        assert!(total_top <= 4, "origin feeds {total_top}");
        assert!(!p.region("us-east").unwrap().reflectors.is_empty());
        assert_eq!(p.state.regions.len(), 2);
    }

    #[test]
    fn edge_size_explicit_wins_else_derived_from_egress_else_default() {
        let base = spec(THREE);
        assert_eq!(viewers_per_edge(&base), 100, "explicit, no egress");
        let mut s = base.clone();
        s.tree.edge_egress_mbps = Some(1000);
        assert_eq!(viewers_per_edge(&s), 100, "explicit wins over egress");
        s.tree.viewers_per_edge_given = false;
        // 1000 Mbit/s at the default 2500 kbit/s: 400 viewers.
        assert_eq!(viewers_per_edge(&s), 400);
        s.bitrate_kbps = 3000;
        assert_eq!(viewers_per_edge(&s), 333, "rounded down");
        s.tree = crate::crd::TreeSpec::default();
        assert_eq!(viewers_per_edge(&s), 2000, "neither: the planner default");
        assert_eq!(viewers_for_egress(1, 200_000), 1, "never below one viewer");
        assert_eq!(viewers_for_egress(u32::MAX, 1), MAX_VIEWERS_PER_EDGE);
        let p = plan_stream(&s, &[], 60.0, None, &PlannerState::default()).unwrap();
        assert_eq!(p.regions[0].desired_edges, 2);
    }

    #[test]
    fn an_edge_at_its_size_reports_the_load_its_flags_give() {
        let base = spec(THREE);
        // --max-viewers is twice the edge size.
        assert_eq!(load_at_viewers_per_edge(&base), 0.5);
        let mut s = base.clone();
        // Derived from the egress budget: an edge at its size fills it.
        s.tree.edge_egress_mbps = Some(1000);
        s.tree.viewers_per_edge_given = false;
        assert!((load_at_viewers_per_edge(&s) - 1.0).abs() < 1e-9);
        // An explicit size the budget cannot carry is a full relay, not more.
        s.tree.viewers_per_edge_given = true;
        s.tree.viewers_per_edge = 2000;
        assert_eq!(load_at_viewers_per_edge(&s), 1.0);
        // One it carries with room: the count limit decides.
        s.tree.viewers_per_edge = 100;
        assert_eq!(load_at_viewers_per_edge(&s), 0.5);
        let input = plan_input(&s, &[], 60.0, None);
        assert_eq!(input.scaling.quality.load_at_viewers_per_edge, 0.5);
        assert!(input.scaling.quality.enabled);
        s.scaling.quality.enabled = false;
        s.scaling.quality.hot_load = 0.7;
        let q = plan_input(&s, &[], 60.0, None).scaling.quality;
        assert!(!q.enabled);
        assert_eq!(q.hot_load, 0.7);
    }

    #[test]
    fn history_keeps_a_window() {
        let mut h = SampleHistory::default();
        for i in 0..10 {
            h.record("eu", f64::from(i) * 10.0, i as u64, 35.0);
        }
        let s = h.samples("eu");
        assert_eq!(s.first().unwrap().t_s, 60.0);
        assert_eq!(s.len(), 4);
        h.retain_regions(&["us"]);
        assert!(h.samples("eu").is_empty());
    }
}
