//! The Stream's tree and scaling settings, with the documented defaults.

use serde::{Deserialize, Serialize};

use crate::PlanError;
use crate::input::EdgeBounds;
use crate::schedule::ScheduledEvent;

/// Shape of the relay tree (the Stream's `spec.tree`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TreeSettings {
    /// Most children (relays or, for edges, nothing counted here) one relay feeds. Default 8.
    pub fanout: u32,
    /// Viewers one edge relay is sized for. Default 2000.
    pub viewers_per_edge: u64,
    /// Fewest edges per region. Default 1.
    pub min_edges: u32,
    /// Most edges per region. Default 100.
    pub max_edges: u32,
}

impl Default for TreeSettings {
    fn default() -> Self {
        Self {
            fanout: 8,
            viewers_per_edge: 2000,
            min_edges: 1,
            max_edges: 100,
        }
    }
}

/// Flash-crowd detection and response (the Stream's `spec.scaling.flashCrowd`).
///
/// Defaults are set against the Facebook-Live flash-crowd definition (LiveJack, MM 2017):
/// a channel is a flash crowd when it gains at least 10k viewers within 20 minutes, i.e. an
/// average of 500 viewers per minute; 39.6% of those gain 20k within 3 minutes (≈6,700 per
/// minute). We enter flash-crowd mode as soon as the robust growth estimate reaches the
/// *average* rate of the definition (500/min), so the 3-minute crowds are caught within the
/// first tens of seconds, and only if that growth is also large relative to the audience
/// (5% of the current level per minute, i.e. doubling within ~14 minutes), so a 1M-viewer
/// stream drifting up by 600/min does not count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FlashCrowdSettings {
    /// Turn flash-crowd mode on or off. Default true.
    pub enabled: bool,
    /// Absolute growth (viewers per minute) needed to enter the mode. Default 500.
    pub min_growth_per_minute: f64,
    /// Growth relative to the current level (fraction per minute) also needed. Default 0.05.
    pub relative_growth_per_minute: f64,
    /// While in the mode and the crowd outruns the fleet (today's viewers with headroom
    /// exceed what all edges asked for can serve), a scale-up is at least this factor of
    /// the current edge count. Default 2.0 (HPA's own scale-up bound is 100% per step).
    pub scale_up_factor: f64,
    /// While in the mode, the forecast horizon is multiplied by this factor, since the crowd
    /// usually accelerates beyond a linear trend. Default 1.5.
    pub lead_time_factor: f64,
    /// Leave the mode after growth stayed below the thresholds this long. Default 120 s.
    pub exit_after_seconds: f64,
    /// Onset detection without waiting for the estimation window: when the newest sample
    /// rises above every earlier sample of the window at this many times both thresholds
    /// (per minute, over the last sample interval), the mode starts now and that rise is
    /// the growth the forecast uses. 0 turns it off. Default 4.
    pub onset_factor: f64,
}

impl Default for FlashCrowdSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_growth_per_minute: 500.0,
            relative_growth_per_minute: 0.05,
            scale_up_factor: 2.0,
            lead_time_factor: 1.5,
            exit_after_seconds: 120.0,
            onset_factor: 4.0,
        }
    }
}

/// Quality as a second signal (the Stream's `spec.scaling.quality`; see [`crate::quality`]):
/// the edges' measured load sizes the region when it says an edge holds fewer viewers than
/// `viewersPerEdge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QualitySettings {
    /// Use the edges' load at all. Default true.
    pub enabled: bool,
    /// The load an edge reports when it serves `viewersPerEdge` viewers at the Stream's
    /// bitrate. Default 0.5: the operator starts edges with `--max-viewers` = 2 ×
    /// viewersPerEdge (it derives this from the Stream, also for an egress budget).
    pub load_at_viewers_per_edge: f64,
    /// A measured edge size less than this fraction below `viewersPerEdge` (a bitrate a
    /// little above the Stream's) is left to the headroom; the tolerance is at most the
    /// headroom. Default 0.1.
    pub tolerance: f64,
    /// Edges whose mean load reaches this run hot (or the load at `viewersPerEdge`, if that is
    /// higher): no scale-down leaves the edges above it on average. Default 0.8.
    pub hot_load: f64,
}

impl Default for QualitySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            load_at_viewers_per_edge: 0.5,
            tolerance: 0.1,
            hot_load: 0.8,
        }
    }
}

/// How the planner scales (the Stream's `spec.scaling`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScalingSettings {
    /// How far ahead to forecast: metric delay + relay-ready time. Default 60 s. When the
    /// relay-ready time is measured, the planner uses
    /// `max(leadTimeSeconds, metricDelaySeconds + measured ready time)`.
    pub lead_time_seconds: f64,
    /// Age of the viewer counts plus the time to act on them (scrape, reconcile, pod
    /// scheduling), added to a measured relay-ready time. Default 30 s.
    pub metric_delay_seconds: f64,
    /// Extra capacity above the forecast, as a fraction. Default 0.2.
    pub headroom: f64,
    /// No scale-down within this long after a scale-up (or after planning starts).
    /// Default 300 s.
    pub scale_down_stabilization_seconds: f64,
    /// A scale-down goes no lower than the highest recommendation within this window, so
    /// counting noise does not remove relays that the next scrape wants back. Default 60 s.
    pub scale_down_smoothing_seconds: f64,
    /// Largest fraction of a region's edges removed in one scale-down step (at least one
    /// relay). Default 0.25.
    pub max_scale_down_fraction: f64,
    /// Least time between two scale-down steps in a region. Default 60 s.
    pub scale_down_step_seconds: f64,
    /// Samples older than this (relative to the newest) are ignored by the growth estimate.
    /// Default 60 s (12 samples at the operator's 5 s scrape).
    pub estimation_window_seconds: f64,
    /// Flash-crowd mode.
    pub flash_crowd: FlashCrowdSettings,
    /// Announced events: capacity for each event's audience is Ready at its start and held
    /// until it ends ([`crate::schedule`]). Default none.
    pub schedule: Vec<ScheduledEvent>,
    /// How long an event without a duration holds its capacity after its start. Default
    /// 900 s.
    pub schedule_grace_seconds: f64,
    /// Edges kept per region beyond what the forecast asks for (a warm pool that absorbs a
    /// step before any relay could start). Default 0.
    pub warm_edges: u32,
    /// Oversized fleet: when the audience with headroom fills at most this fraction of the
    /// edges and is not growing (below the flash-crowd growth threshold), scale-down skips
    /// the wait after a scale-up and the per-step bound (the smoothing window still holds).
    /// 0 turns it off. Default 0.5.
    pub collapse_utilization: f64,
    /// Scale-down hysteresis: a region scales down only to edges that would still serve the
    /// forecast plus this many times the samples' spread (the median absolute residual around
    /// the window's line, `Estimate::spread`). Counting noise moves the fitted slope, and the
    /// slope times the horizon moves the forecast across an edge boundary now and then;
    /// without the band the edge it asks for goes after the stabilisation window and comes
    /// back. Scale-up is unchanged. 0 turns it off. Default 30.
    pub scale_down_noise_band: f64,
    /// Quality as a second signal: the edges' measured load.
    pub quality: QualitySettings,
}

impl Default for ScalingSettings {
    fn default() -> Self {
        Self {
            lead_time_seconds: 60.0,
            metric_delay_seconds: 30.0,
            headroom: 0.2,
            scale_down_stabilization_seconds: 300.0,
            scale_down_smoothing_seconds: 60.0,
            max_scale_down_fraction: 0.25,
            scale_down_step_seconds: 60.0,
            estimation_window_seconds: 60.0,
            flash_crowd: FlashCrowdSettings::default(),
            schedule: Vec::new(),
            schedule_grace_seconds: 900.0,
            warm_edges: 0,
            collapse_utilization: 0.5,
            scale_down_noise_band: 30.0,
            quality: QualitySettings::default(),
        }
    }
}

fn check(ok: bool, field: &'static str, why: &'static str) -> Result<(), PlanError> {
    if ok {
        Ok(())
    } else {
        Err(PlanError::InvalidSetting { field, why })
    }
}

impl TreeSettings {
    /// These settings with a region's own edge range and edge size, when it has them.
    pub fn for_region(&self, bounds: Option<&EdgeBounds>) -> TreeSettings {
        match bounds {
            Some(b) => TreeSettings {
                min_edges: b.min_edges,
                max_edges: b.max_edges,
                viewers_per_edge: b.viewers_per_edge,
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    /// Rejects settings the planner cannot honour, naming the field.
    pub fn validate(&self) -> Result<(), PlanError> {
        check(self.fanout >= 2, "tree.fanout", "must be at least 2")?;
        check(
            self.viewers_per_edge >= 1,
            "tree.viewersPerEdge",
            "must be at least 1",
        )?;
        check(self.min_edges >= 1, "tree.minEdges", "must be at least 1")?;
        check(
            self.max_edges >= self.min_edges,
            "tree.maxEdges",
            "must be at least minEdges",
        )
    }
}

impl ScalingSettings {
    /// Rejects settings the planner cannot honour, naming the field.
    pub fn validate(&self) -> Result<(), PlanError> {
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        check(
            finite_nonneg(self.lead_time_seconds),
            "scaling.leadTimeSeconds",
            "must be a finite number >= 0",
        )?;
        check(
            finite_nonneg(self.metric_delay_seconds),
            "scaling.metricDelaySeconds",
            "must be a finite number >= 0",
        )?;
        check(
            finite_nonneg(self.headroom),
            "scaling.headroom",
            "must be a finite number >= 0",
        )?;
        check(
            finite_nonneg(self.scale_down_stabilization_seconds),
            "scaling.scaleDownStabilizationSeconds",
            "must be a finite number >= 0",
        )?;
        check(
            finite_nonneg(self.scale_down_smoothing_seconds),
            "scaling.scaleDownSmoothingSeconds",
            "must be a finite number >= 0",
        )?;
        check(
            self.max_scale_down_fraction > 0.0 && self.max_scale_down_fraction <= 1.0,
            "scaling.maxScaleDownFraction",
            "must be in (0, 1]",
        )?;
        check(
            finite_nonneg(self.scale_down_step_seconds),
            "scaling.scaleDownStepSeconds",
            "must be a finite number >= 0",
        )?;
        check(
            self.estimation_window_seconds.is_finite() && self.estimation_window_seconds > 0.0,
            "scaling.estimationWindowSeconds",
            "must be a finite number > 0",
        )?;
        check(
            finite_nonneg(self.schedule_grace_seconds),
            "scaling.scheduleGraceSeconds",
            "must be a finite number >= 0",
        )?;
        check(
            (0.0..=1.0).contains(&self.collapse_utilization),
            "scaling.collapseUtilization",
            "must be in [0, 1]",
        )?;
        check(
            finite_nonneg(self.scale_down_noise_band),
            "scaling.scaleDownNoiseBand",
            "must be a finite number >= 0",
        )?;
        let q = &self.quality;
        check(
            q.load_at_viewers_per_edge > 0.0 && q.load_at_viewers_per_edge <= 1.0,
            "scaling.quality.loadAtViewersPerEdge",
            "must be in (0, 1]",
        )?;
        check(
            (0.0..=1.0).contains(&q.tolerance),
            "scaling.quality.tolerance",
            "must be in [0, 1]",
        )?;
        check(
            q.hot_load > 0.0 && q.hot_load <= 1.0,
            "scaling.quality.hotLoad",
            "must be in (0, 1]",
        )?;
        for event in &self.schedule {
            check(
                event.start_s.is_finite(),
                "scaling.schedule[].start",
                "must be a finite time",
            )?;
            check(
                event.duration_seconds.is_none_or(finite_nonneg),
                "scaling.schedule[].durationMinutes",
                "must be a finite number >= 0",
            )?;
        }
        let fc = &self.flash_crowd;
        check(
            finite_nonneg(fc.min_growth_per_minute),
            "scaling.flashCrowd.minGrowthPerMinute",
            "must be a finite number >= 0",
        )?;
        check(
            finite_nonneg(fc.relative_growth_per_minute),
            "scaling.flashCrowd.relativeGrowthPerMinute",
            "must be a finite number >= 0",
        )?;
        check(
            fc.scale_up_factor.is_finite() && fc.scale_up_factor >= 1.0,
            "scaling.flashCrowd.scaleUpFactor",
            "must be a finite number >= 1",
        )?;
        check(
            fc.lead_time_factor.is_finite() && fc.lead_time_factor >= 1.0,
            "scaling.flashCrowd.leadTimeFactor",
            "must be a finite number >= 1",
        )?;
        check(
            finite_nonneg(fc.exit_after_seconds),
            "scaling.flashCrowd.exitAfterSeconds",
            "must be a finite number >= 0",
        )?;
        check(
            finite_nonneg(fc.onset_factor),
            "scaling.flashCrowd.onsetFactor",
            "must be a finite number >= 0",
        )
    }
}
