//! Robust level and growth from a window of viewer samples (Theil–Sen regression).
//!
//! Why Theil–Sen and not Holt's linear trend: the operator hands us a window of samples
//! every reconcile anyway, the samples arrive at irregular times with gaps (a relay's stats
//! missing, a slow scrape), and single samples can be badly wrong (a relay restarting drops
//! its viewers from the sum for one scrape). The median of pairwise slopes ignores up to
//! ~29% arbitrary outliers, needs no smoothing constants tied to the sampling interval,
//! handles gaps with no special case, and keeps no state that a bad sample could poison
//! for minutes afterwards. See docs/PLANNER.md for the comparison.

use crate::input::ViewerSample;

/// A robust level and trend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Viewers at `t_ref_s`.
    pub level: f64,
    /// Viewers per second.
    pub slope_per_s: f64,
    /// Time of the newest sample used.
    pub t_ref_s: f64,
    /// The newest sample's raw count.
    pub latest: f64,
    /// Samples used.
    pub samples: usize,
    /// Growth is speeding up: the newest half of the window grows faster than the whole.
    pub accelerating: bool,
    /// How far the samples stray from the window's line: the median absolute residual of
    /// the whole-window fit, in viewers (counting noise, mostly).
    pub spread: f64,
    /// The slope of the newest half's fit alone (viewers per second), when it was fitted (at
    /// least 3 samples and fewer than the whole window's).
    pub newest_half_slope_per_s: Option<f64>,
}

impl Estimate {
    /// Viewers expected at time `t_s` (never below 0).
    pub fn at(&self, t_s: f64) -> f64 {
        (self.level + self.slope_per_s * (t_s - self.t_ref_s)).max(0.0)
    }
}

/// Cleans samples: drops non-finite times, sorts by time, keeps the last of duplicates.
pub fn clean(samples: &[ViewerSample]) -> Vec<(f64, f64)> {
    let mut points: Vec<(usize, f64, f64)> = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| s.t_s.is_finite())
        .map(|(i, s)| (i, s.t_s, s.viewers as f64))
        .collect();
    // Stable order: by time, then by input position so the last duplicate wins.
    points.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for (_, t, v) in points {
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 = v,
            _ => out.push((t, v)),
        }
    }
    out
}

fn median(values: &mut [f64]) -> f64 {
    debug_assert!(!values.is_empty());
    let n = values.len();
    let mid = n / 2;
    let (_, upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        upper
    } else {
        let lower = values[..mid]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// Theil–Sen fit over `points` (sorted by time, distinct times): the median pairwise slope,
/// and the median intercept at the last point's time.
fn theil_sen(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let (t_ref, latest) = *points.last()?;
    if points.len() == 1 {
        return Some((latest, 0.0));
    }
    let mut slopes = Vec::with_capacity(points.len() * (points.len() - 1) / 2);
    for (i, &(ti, vi)) in points.iter().enumerate() {
        for &(tj, vj) in &points[i + 1..] {
            slopes.push((vj - vi) / (tj - ti));
        }
    }
    let slope = median(&mut slopes);
    let mut levels: Vec<f64> = points
        .iter()
        .map(|&(t, v)| v + slope * (t_ref - t))
        .collect();
    Some((median(&mut levels), slope))
}

/// Estimates level and growth from the samples within `window_s` of the newest one.
///
/// Two Theil–Sen fits are made: over the whole window and over its newest half (when that
/// half has at least 3 samples). The larger level and the larger slope are kept: a crowd
/// that is accelerating shows first in the newest half, and under-provisioning costs
/// viewers while over-provisioning costs a little money, so ties go to capacity.
pub fn estimate(samples: &[ViewerSample], window_s: f64) -> Option<Estimate> {
    let points = clean(samples);
    let &(t_ref, latest) = points.last()?;
    let start = points.partition_point(|p| p.0 < t_ref - window_s);
    let window = &points[start..];
    let (mut level, mut slope) = theil_sen(window)?;
    let mut residuals: Vec<f64> = window
        .iter()
        .map(|&(t, v)| (v - level - slope * (t - t_ref)).abs())
        .collect();
    let spread = median(&mut residuals);
    let mut accelerating = false;
    let mut newest_half_slope_per_s = None;
    let half_start = points.partition_point(|p| p.0 < t_ref - window_s / 2.0);
    let half = &points[half_start..];
    if half.len() >= 3
        && half.len() < window.len()
        && let Some((l, s)) = theil_sen(half)
    {
        accelerating = s > slope && s > 0.0;
        newest_half_slope_per_s = Some(s);
        level = level.max(l);
        slope = slope.max(s);
    }
    Some(Estimate {
        level: level.max(0.0),
        slope_per_s: slope,
        t_ref_s: t_ref,
        latest,
        samples: window.len(),
        accelerating,
        spread,
        newest_half_slope_per_s,
    })
}

/// How fast the newest sample rose above every earlier sample of the window, in viewers per
/// second over the last sample interval (0 when it did not). A new high, so a count that
/// recovers from a dip (a relay restarting) is not a rise; a single double-counted sample
/// is, which is the price of not waiting for more samples at a crowd's onset.
pub fn newest_rise(samples: &[ViewerSample], window_s: f64) -> f64 {
    let points = clean(samples);
    let Some((&(t_ref, latest), earlier)) = points.split_last() else {
        return 0.0;
    };
    let start = earlier.partition_point(|p| p.0 < t_ref - window_s);
    let earlier = &earlier[start..];
    let (Some(&(t_prev, _)), Some(high)) =
        (earlier.last(), earlier.iter().map(|p| p.1).reduce(f64::max))
    else {
        return 0.0;
    };
    let dt = t_ref - t_prev;
    if dt <= 0.0 {
        return 0.0;
    }
    ((latest - high) / dt).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small deterministic generator for noise in tests.
    struct SplitMix(u64);
    impl SplitMix {
        fn next_f64(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn line(t0: u64, t1: u64, step: u64, level0: f64, per_min: f64) -> Vec<ViewerSample> {
        (t0..=t1)
            .step_by(step as usize)
            .map(|t| ViewerSample {
                t_s: t as f64,
                viewers: (level0 + per_min * (t - t0) as f64 / 60.0).round() as u64,
            })
            .collect()
    }

    #[test]
    fn exact_line_is_recovered() {
        let e = estimate(&line(0, 120, 5, 1000.0, 600.0), 120.0).unwrap();
        assert!((e.slope_per_s * 60.0 - 600.0).abs() < 1.0, "{e:?}");
        assert!((e.level - 2200.0).abs() < 1.0, "{e:?}");
        assert!(!e.accelerating, "a straight line does not accelerate");
    }

    #[test]
    fn noise_and_jitter_barely_move_the_estimate() {
        let mut rng = SplitMix(7);
        // ±5% counting noise on a 20k audience growing 3,000/min, sampled every 5 s with
        // ±2 s timing jitter.
        let samples: Vec<ViewerSample> = (0..=24)
            .map(|i| {
                let t = i as f64 * 5.0 + (rng.next_f64() - 0.5) * 4.0;
                let v = 20_000.0 + 50.0 * t;
                ViewerSample {
                    t_s: t,
                    viewers: (v * (1.0 + (rng.next_f64() - 0.5) * 0.1)) as u64,
                }
            })
            .collect();
        let e = estimate(&samples, 120.0).unwrap();
        let growth = e.slope_per_s * 60.0;
        assert!((2_000.0..4_500.0).contains(&growth), "growth {growth}");
        let truth = 20_000.0 + 50.0 * e.t_ref_s;
        assert!((e.level - truth).abs() < 0.05 * truth, "{e:?} vs {truth}");
    }

    #[test]
    fn a_new_high_is_a_rise_and_a_recovery_is_not() {
        let mut samples = line(0, 60, 5, 1_000.0, 0.0);
        assert_eq!(newest_rise(&samples, 60.0), 0.0);
        samples.push(ViewerSample {
            t_s: 65.0,
            viewers: 6_000,
        });
        assert_eq!(newest_rise(&samples, 60.0), 1_000.0);
        // A dip (a relay restarting) and the recovery: no new high.
        let mut dip = line(0, 60, 5, 1_000.0, 0.0);
        dip[11].viewers = 200;
        assert_eq!(newest_rise(&dip, 60.0), 0.0);
        assert_eq!(newest_rise(&[], 60.0), 0.0);
        assert_eq!(newest_rise(&samples[..1], 60.0), 0.0);
    }

    #[test]
    fn outliers_are_ignored() {
        let mut samples = line(0, 120, 5, 10_000.0, 0.0);
        // A relay restart drops its viewers from two scrapes; a double count spikes one.
        samples[10].viewers = 2_000;
        samples[20].viewers = 3_000;
        samples[15].viewers = 50_000;
        let e = estimate(&samples, 120.0).unwrap();
        assert!(e.slope_per_s.abs() * 60.0 < 50.0, "{e:?}");
        assert!((e.level - 10_000.0).abs() < 100.0, "{e:?}");
    }

    #[test]
    fn missing_samples_and_unsorted_input_are_fine() {
        let mut samples = line(0, 120, 5, 0.0, 1200.0);
        samples.retain(|s| !(30.0..80.0).contains(&s.t_s));
        samples.reverse();
        let e = estimate(&samples, 120.0).unwrap();
        assert!((e.slope_per_s * 60.0 - 1200.0).abs() < 5.0, "{e:?}");
        assert_eq!(e.t_ref_s, 120.0);
    }

    #[test]
    fn old_samples_outside_the_window_are_ignored() {
        let mut samples = line(0, 600, 5, 50_000.0, -5000.0);
        samples.extend(line(605, 720, 5, 1000.0, 0.0));
        let e = estimate(&samples, 120.0).unwrap();
        assert!(e.slope_per_s.abs() < 1.0, "{e:?}");
        assert!((e.level - 1000.0).abs() < 1.0);
    }

    #[test]
    fn duplicates_keep_the_last_and_single_samples_work() {
        let s = [
            ViewerSample {
                t_s: 10.0,
                viewers: 5,
            },
            ViewerSample {
                t_s: 10.0,
                viewers: 7,
            },
        ];
        let e = estimate(&s, 60.0).unwrap();
        assert_eq!(e.level, 7.0);
        assert_eq!(e.slope_per_s, 0.0);
        assert!(estimate(&[], 60.0).is_none());
    }

    #[test]
    fn acceleration_shows_in_the_newest_half() {
        // Flat for 90 s, then +10,000/min for the last 30 s.
        let mut samples = line(0, 90, 5, 1000.0, 0.0);
        samples.extend(line(95, 120, 5, 1000.0 + 10_000.0 / 12.0, 10_000.0));
        let e = estimate(&samples, 120.0).unwrap();
        assert!(e.slope_per_s * 60.0 >= 4_000.0, "{e:?}");
        assert!(e.accelerating);
        let full_only = theil_sen(&clean(&samples)).unwrap();
        assert!(
            full_only.1 * 60.0 < 1_000.0,
            "the whole window alone lags: {full_only:?}"
        );
    }
}
