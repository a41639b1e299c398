//! Quality as a second signal: what the edges' own load says about how many viewers an edge
//! really holds, next to what `viewersPerEdge` assumes.
//!
//! A relay reports its load: its viewers over what it holds at its streams' current bitrates
//! (`--max-viewers`, `--max-egress-mbps`). An edge that serves `viewersPerEdge` viewers is
//! expected at [`QualitySettings::load_at_viewers_per_edge`] (0.5 with the operator's
//! `--max-viewers` = 2 × viewersPerEdge). So the edges' viewers and loads give the edge size
//! they really have: `loadAtViewersPerEdge × viewers / Σ load`. When that is below
//! `viewersPerEdge` (a mis-set edge size, a heavier bitrate than the Stream says, a smaller
//! egress budget) the region is sized with it instead, so a wrong `viewersPerEdge` does not
//! starve viewers. The measured size is a property of the relays, not of how many there are:
//! adding edges does not change it, so the rule cannot talk itself out of the edges it asked
//! for. Edges that run hot (mean load at `hotLoad`) are never scaled down; being hot raises
//! nothing by itself, so there is no hot/cool boundary to flap on.

use crate::input::EdgeLoad;
use crate::settings::QualitySettings;

/// What the quality rule concludes for one region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Viewers one edge is sized for: `viewersPerEdge`, or the measured edge size when that is
    /// lower by more than `tolerance`.
    pub viewers_per_edge: u64,
    /// The edge size the loads imply, when measured.
    pub measured_viewers_per_edge: Option<f64>,
    /// Mean load of the edges that reported one.
    pub mean_load: Option<f64>,
    /// The edges' mean load reached the hot threshold.
    pub hot: bool,
    /// Scale-down never goes below this: fewer edges would carry the same load above the hot
    /// threshold on average.
    pub keep_edges: u32,
}

impl Quality {
    /// The rule off, or nothing measured: the configured edge size, no floor.
    pub fn unmeasured(viewers_per_edge: u64) -> Self {
        Quality {
            viewers_per_edge,
            measured_viewers_per_edge: None,
            mean_load: None,
            hot: false,
            keep_edges: 0,
        }
    }

    /// Whether the measured load lowered the edge size.
    pub fn resized(&self, configured: u64) -> bool {
        self.viewers_per_edge < configured
    }
}

/// The quality rule for a region whose edges are sized for `viewers_per_edge` viewers, whose
/// edges reported `load`, planned with `headroom`.
pub fn assess(
    load: Option<&EdgeLoad>,
    viewers_per_edge: u64,
    headroom: f64,
    settings: &QualitySettings,
) -> Quality {
    let configured = viewers_per_edge.max(1);
    let Some(load) = load
        .filter(|l| settings.enabled && l.edges > 0 && l.load_sum.is_finite() && l.load_sum > 0.0)
    else {
        return Quality::unmeasured(configured);
    };
    let mean = load.load_sum / f64::from(load.edges);
    // An edge at its sizing target is not hot, whatever the threshold: with an egress budget
    // that derives viewersPerEdge, that target is a full relay (load 1).
    let hot_load = settings.hot_load.max(settings.load_at_viewers_per_edge);
    let hot = mean >= hot_load;
    let keep_edges = ceil_u32(load.load_sum / hot_load);
    let measured = (load.viewers > 0)
        .then(|| settings.load_at_viewers_per_edge * load.viewers as f64 / load.load_sum);
    // A small shortfall against viewersPerEdge (a bitrate a little above the nominal) is the
    // headroom's job; the tolerance never exceeds it, so the true capacity still covers the
    // audience. Beyond it the measured size counts as it is, with the full headroom on top.
    let allowance = 1.0 + settings.tolerance.min(headroom.max(0.0));
    let sized = measured.map_or(configured, |m| {
        // Rounded to a thousandth of a viewer first: a load computed as viewers / capacity
        // by the relay gives the configured size back up to float error.
        let m = ((m * 1000.0).round() / 1000.0).floor();
        if m.is_finite() && m * allowance < configured as f64 {
            (m as u64).max(1)
        } else {
            configured
        }
    });
    Quality {
        viewers_per_edge: sized,
        measured_viewers_per_edge: measured,
        mean_load: Some(mean),
        hot,
        keep_edges,
    }
}

fn ceil_u32(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= u32::MAX as f64 {
        u32::MAX
    } else {
        x.ceil() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(edges: u32, viewers: u64, load_sum: f64) -> EdgeLoad {
        EdgeLoad {
            edges,
            viewers,
            load_sum,
        }
    }

    #[test]
    fn loads_that_match_the_edge_size_keep_it() {
        let s = QualitySettings::default();
        // 4 edges, 6,000 viewers, each at 1,500 / 4,000.
        let q = assess(Some(&load(4, 6_000, 1.5)), 2_000, 0.2, &s);
        assert_eq!(q.viewers_per_edge, 2_000);
        assert_eq!(q.measured_viewers_per_edge, Some(2_000.0));
        assert_eq!(q.mean_load, Some(0.375));
        assert!(!q.hot);
        assert_eq!(q.keep_edges, 2, "1.5 / 0.8 = 1.9");
    }

    #[test]
    fn twice_the_load_halves_the_edge_size_hot_or_not() {
        let s = QualitySettings::default();
        // Relays hold half: each of 4 edges at 1,500 viewers reports 0.75.
        let q = assess(Some(&load(4, 6_000, 3.0)), 2_000, 0.2, &s);
        assert!(!q.hot);
        assert_eq!(q.measured_viewers_per_edge, Some(1_000.0));
        assert_eq!(q.viewers_per_edge, 1_000, "beyond the 10% tolerance");
        assert_eq!(q.keep_edges, 4, "3.0 / 0.8 = 3.75");
        // At 0.85 they run hot: the same edge size, and none of the 4 may go.
        let q = assess(Some(&load(4, 6_800, 3.4)), 2_000, 0.2, &s);
        assert!(q.hot);
        assert_eq!(q.viewers_per_edge, 1_000);
        assert_eq!(q.keep_edges, 5, "3.4 / 0.8 = 4.25");
    }

    #[test]
    fn small_deviations_and_missing_measurements_change_nothing() {
        let s = QualitySettings::default();
        // 8% above the nominal bitrate: inside the tolerance; 12% is not.
        let q = assess(Some(&load(4, 6_000, 1.62)), 2_000, 0.2, &s);
        assert_eq!(q.viewers_per_edge, 2_000);
        let q = assess(Some(&load(4, 6_000, 1.68)), 2_000, 0.2, &s);
        assert_eq!(q.viewers_per_edge, 1_785);
        // The tolerance is at most the headroom.
        let q = assess(Some(&load(4, 6_000, 1.62)), 2_000, 0.0, &s);
        assert_eq!(q.viewers_per_edge, 1_851);
        for none in [None, Some(load(0, 0, 0.0)), Some(load(3, 0, 0.0))] {
            assert_eq!(
                assess(none.as_ref(), 2_000, 0.2, &s),
                Quality::unmeasured(2_000)
            );
        }
        let off = QualitySettings {
            enabled: false,
            ..s.clone()
        };
        assert_eq!(
            assess(Some(&load(4, 6_800, 3.4)), 2_000, 0.2, &off),
            Quality::unmeasured(2_000)
        );
        let nan = assess(Some(&load(4, 6_000, f64::NAN)), 2_000, 0.2, &s);
        assert_eq!(nan, Quality::unmeasured(2_000));
    }

    #[test]
    fn an_edge_sized_to_be_full_is_not_hot_at_its_size() {
        // viewersPerEdge derived from an egress budget: an edge at its size is at load 1.
        let s = QualitySettings {
            load_at_viewers_per_edge: 1.0,
            ..QualitySettings::default()
        };
        // 4 edges at 0.83 (sized with 20% headroom): neither hot nor resized.
        let q = assess(Some(&load(4, 6_640, 3.32)), 2_000, 0.2, &s);
        assert!(!q.hot);
        assert_eq!(q.viewers_per_edge, 2_000);
        assert_eq!(q.keep_edges, 4);
    }
}
