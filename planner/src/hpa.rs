//! The Kubernetes HorizontalPodAutoscaler (autoscaling/v2) as documented, one per region's
//! edge Deployment, on a per-pod viewers metric: the reactive baseline Surge is compared
//! with. Pure; the simulator's `hpa` policy and `surge-operator local --policy hpa` both run
//! [`HpaRegion::sync`].
//!
//! - a sync every 15 s (`--horizontal-pod-autoscaler-sync-period`);
//! - the metric is 30 s old when it is read (scrape + adapter delay; the caller picks it,
//!   e.g. with [`metric_at`]);
//! - `desired = ceil(current × metric / target)`, with `target = viewersPerEdge × target
//!   utilisation`, no change within the 0.1 tolerance;
//! - for a scale-up, pods not yet Ready count as using nothing (the documented conservative
//!   treatment of unready pods), which damps the step;
//! - scale-up at most max(100%, 4 pods) per sync (the default `scaleUp` policies);
//! - scale-down takes the highest recommendation of the last 300 s (the default
//!   `stabilizationWindowSeconds`), then at most 100% per sync.

use std::collections::{BTreeMap, VecDeque};

use crate::input::ViewerSample;

/// The HPA's knobs, at their Kubernetes defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSettings {
    pub sync_seconds: f64,
    /// Age of the metric at a sync.
    pub metric_age_seconds: f64,
    pub tolerance: f64,
    pub scale_down_stabilization_seconds: f64,
    /// Scale-up limit per sync: at most `current × (1 + percent / 100)` ...
    pub scale_up_percent: f64,
    /// ... or `current + pods`, whichever is larger.
    pub scale_up_pods: u32,
    /// The per-pod target is `viewersPerEdge × target_utilization`.
    pub target_utilization: f64,
}

impl Default for HpaSettings {
    fn default() -> Self {
        Self {
            sync_seconds: 15.0,
            metric_age_seconds: 30.0,
            tolerance: 0.1,
            scale_down_stabilization_seconds: 300.0,
            scale_up_percent: 100.0,
            scale_up_pods: 4,
            target_utilization: 1.0,
        }
    }
}

/// What one region's HPA reads at a sync.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HpaInput {
    /// Replicas asked for (Ready or not).
    pub current: u32,
    /// Replicas Ready (the pods that report the metric).
    pub ready: u32,
    /// The region's viewers as the metric shows them (`None`: no metric yet).
    pub usage: Option<f64>,
    pub viewers_per_edge: f64,
    pub min_edges: u32,
    pub max_edges: u32,
}

/// One region's HPA memory: the recommendations within the scale-down window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HpaRegion {
    recommendations: VecDeque<(f64, u32)>,
}

impl HpaRegion {
    /// The replicas the HPA sets at a sync at `now_s`.
    pub fn sync(&mut self, now_s: f64, input: &HpaInput, s: &HpaSettings) -> u32 {
        let current = input.current;
        let Some(usage) = input.usage else {
            return current;
        };
        if input.ready == 0 {
            return current; // no metrics from any pod: the HPA skips
        }
        let target = input.viewers_per_edge * s.target_utilization;
        let ratio = usage / (f64::from(input.ready) * target);
        let mut recommendation = current;
        if ratio > 1.0 + s.tolerance {
            // Unready pods count as 0: recompute over every pod.
            let ratio_all = usage / (f64::from(current) * target);
            if ratio_all > 1.0 + s.tolerance {
                recommendation = ceil_u32(f64::from(current) * ratio_all);
            }
        } else if ratio < 1.0 - s.tolerance {
            recommendation = ceil_u32(f64::from(input.ready) * ratio);
        }
        let recommendation = recommendation.clamp(input.min_edges, input.max_edges.max(1));
        let window = &mut self.recommendations;
        window.push_back((now_s, recommendation));
        while window
            .front()
            .is_some_and(|&(t, _)| t + s.scale_down_stabilization_seconds < now_s)
        {
            window.pop_front();
        }
        if recommendation > current {
            let by_percent = ceil_u32(f64::from(current) * (1.0 + s.scale_up_percent / 100.0));
            let limit = by_percent.max(current.saturating_add(s.scale_up_pods));
            recommendation.min(limit)
        } else {
            let stabilized = window.iter().map(|&(_, n)| n).max().unwrap_or(current);
            stabilized.min(current)
        }
    }
}

/// Every region's HPA and when they last synced (they sync together).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HpaState {
    pub last_sync_s: Option<f64>,
    pub regions: BTreeMap<String, HpaRegion>,
}

impl HpaState {
    /// Whether a sync is due at `now_s` (the first call always is).
    pub fn due(&self, now_s: f64, s: &HpaSettings) -> bool {
        self.last_sync_s
            .is_none_or(|t| now_s - t >= s.sync_seconds - 1e-6)
    }
}

/// The metric as of `t_s`: the newest sample at or before it (`None` if there is none).
pub fn metric_at(samples: &[ViewerSample], t_s: f64) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s.t_s <= t_s)
        .max_by(|a, b| a.t_s.total_cmp(&b.t_s))
        .map(|s| s.viewers as f64)
}

fn ceil_u32(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x.ceil() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(current: u32, ready: u32, usage: f64) -> HpaInput {
        HpaInput {
            current,
            ready,
            usage: Some(usage),
            viewers_per_edge: 100.0,
            min_edges: 1,
            max_edges: 1000,
        }
    }

    #[test]
    fn scale_up_is_proportional_and_limited_to_double_or_plus_four() {
        let s = HpaSettings::default();
        let mut hpa = HpaRegion::default();
        // 3,000 viewers on 1 edge: 30 wanted, at most max(2, 1 + 4) = 5.
        assert_eq!(hpa.sync(0.0, &input(1, 1, 3_000.0), &s), 5);
        // On 10 edges: at most 20.
        assert_eq!(hpa.sync(15.0, &input(10, 10, 3_000.0), &s), 20);
        // On 20: 30, within the limit.
        assert_eq!(hpa.sync(30.0, &input(20, 20, 3_000.0), &s), 30);
    }

    #[test]
    fn unready_pods_count_as_idle_on_the_way_up() {
        let s = HpaSettings::default();
        let mut hpa = HpaRegion::default();
        // 5 asked for, 2 Ready with 560 viewers: 2.8 per Ready pod, but 1.12 over all 5,
        // so 6 (not 14).
        assert_eq!(hpa.sync(0.0, &input(5, 2, 560.0), &s), 6);
        // 520 over 5 is within the tolerance: no change.
        assert_eq!(hpa.sync(15.0, &input(5, 2, 520.0), &s), 5);
    }

    #[test]
    fn tolerance_and_missing_metrics_hold() {
        let s = HpaSettings::default();
        let mut hpa = HpaRegion::default();
        assert_eq!(hpa.sync(0.0, &input(10, 10, 1_090.0), &s), 10);
        assert_eq!(hpa.sync(15.0, &input(10, 10, 910.0), &s), 10);
        let none = HpaInput {
            usage: None,
            ..input(10, 10, 0.0)
        };
        assert_eq!(hpa.sync(30.0, &none, &s), 10);
        assert_eq!(
            hpa.sync(45.0, &input(10, 0, 5_000.0), &s),
            10,
            "no Ready pod"
        );
    }

    #[test]
    fn target_utilisation_lowers_the_per_pod_target() {
        let s = HpaSettings {
            target_utilization: 0.5,
            ..HpaSettings::default()
        };
        // 1,000 viewers at 50 per pod: 20 wanted, from 10 at most 20.
        let mut hpa = HpaRegion::default();
        assert_eq!(hpa.sync(0.0, &input(10, 10, 1_000.0), &s), 20);
    }

    #[test]
    fn scale_down_waits_for_the_window_then_goes_straight_down() {
        let s = HpaSettings::default();
        let mut hpa = HpaRegion::default();
        assert_eq!(hpa.sync(0.0, &input(20, 20, 2_000.0), &s), 20);
        let mut t = 15.0;
        while t <= 300.0 {
            assert_eq!(hpa.sync(t, &input(20, 20, 500.0), &s), 20, "at {t}");
            t += 15.0;
        }
        // The 20 recorded at t = 0 left the window: 5 (100% per sync allows it at once).
        assert_eq!(hpa.sync(315.0, &input(20, 20, 500.0), &s), 5);
    }

    #[test]
    fn bounds_clamp_the_recommendation() {
        let s = HpaSettings::default();
        let mut hpa = HpaRegion::default();
        let capped = HpaInput {
            max_edges: 3,
            ..input(2, 2, 2_000.0)
        };
        assert_eq!(hpa.sync(0.0, &capped, &s), 3);
        let floor = HpaInput {
            min_edges: 2,
            ..input(2, 2, 0.0)
        };
        assert_eq!(HpaRegion::default().sync(0.0, &floor, &s), 2);
    }

    #[test]
    fn syncs_are_due_every_period() {
        let s = HpaSettings::default();
        let mut state = HpaState::default();
        assert!(state.due(3.0, &s));
        state.last_sync_s = Some(3.0);
        assert!(!state.due(17.0, &s));
        assert!(state.due(18.0, &s));
    }

    #[test]
    fn the_metric_is_the_newest_sample_not_after_the_time() {
        let samples = [
            ViewerSample {
                t_s: 10.0,
                viewers: 1,
            },
            ViewerSample {
                t_s: 0.0,
                viewers: 0,
            },
            ViewerSample {
                t_s: 20.0,
                viewers: 2,
            },
        ];
        assert_eq!(metric_at(&samples, 15.0), Some(1.0));
        assert_eq!(metric_at(&samples, 20.0), Some(2.0));
        assert_eq!(metric_at(&samples, -1.0), None);
    }
}
