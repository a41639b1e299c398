//! `surge-load trace gen`: calibrated synthetic traces.
//!
//! Each shape gives a target audience curve `N*(t)` (see [`shapes`]). Viewers arrive as a
//! Poisson process with rate `dN*/dt + N*/600` and each viewer stays for an exponential
//! session with a 10-minute mean (LiveJack's model), simulated at 1 s per region, so the
//! audience follows the curve with the noise and lag that real arrivals and departures give.
//! Rows are written every `step` seconds with the arrivals and departures of the interval.
//! For the crowd families ([`crowds`]) viewers also leave as fast as the curve falls
//! (departure rate per viewer `max(1/600, −(dN*/dt) / N*)`), so an audience that ends
//! leaves within minutes instead of over 10-minute sessions.

pub mod crowds;
mod rng;
pub mod shapes;

use crate::trace::{Trace, TraceRow};
use rng::Rng;
pub use shapes::{Check, Shape, ShapeSpec, spec};

/// Mean viewer session, seconds (exponential sessions, LiveJack).
pub const MEAN_SESSION_S: f64 = 600.0;

/// What the calibration check measured on the generated trace.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// One line for the header and the terminal.
    pub summary: String,
    /// Whether the trace shows the published figure.
    pub passed: bool,
}

/// Generates the trace for `shape`. `step_s` overrides the shape's row interval.
pub fn generate(shape: Shape, seed: u64, step_s: Option<u64>) -> (Trace, CheckResult) {
    let spec = spec(shape, seed);
    let step = step_s.unwrap_or(spec.step_s).max(1);
    let mut rng = Rng::new(seed);
    let leave = 1.0 - (-1.0 / MEAN_SESSION_S).exp();
    let rows_per_region = spec.duration_s / step + 1;
    let mut per_region: Vec<Vec<TraceRow>> = Vec::with_capacity(spec.regions.len());
    for region in spec.regions {
        let target = |t: f64| region.share * spec.target(t - region.delay_s);
        let mut rows = Vec::with_capacity(rows_per_region as usize);
        let mut viewers = target(0.0).round() as u64;
        rows.push(TraceRow {
            broadcast_id: spec.broadcast_id.into(),
            t_s: 0,
            region: region.name.into(),
            viewers,
            arrivals: Some(viewers),
            departures: Some(0),
        });
        let (mut arrived, mut departed) = (0, 0);
        for t in 1..=spec.duration_s {
            let tf = t as f64;
            let growth = target(tf + 0.5) - target(tf - 0.5);
            let rate = (growth + target(tf) / MEAN_SESSION_S).max(0.0);
            let arrivals = rng.poisson(rate);
            let leave = if spec.exits_follow_curve {
                leave_following(growth, target(tf))
            } else {
                leave
            };
            let departures = rng.binomial(viewers, leave);
            viewers = viewers + arrivals - departures;
            arrived += arrivals;
            departed += departures;
            if t % step == 0 {
                rows.push(TraceRow {
                    broadcast_id: spec.broadcast_id.into(),
                    t_s: t,
                    region: region.name.into(),
                    viewers,
                    arrivals: Some(arrived),
                    departures: Some(departed),
                });
                (arrived, departed) = (0, 0);
            }
        }
        per_region.push(rows);
    }
    // Interleave: all regions at a time, then the next time.
    let mut rows = Vec::with_capacity(per_region.iter().map(Vec::len).sum());
    for i in 0..per_region.first().map_or(0, Vec::len) {
        for region_rows in &per_region {
            rows.push(region_rows[i].clone());
        }
    }
    let mut trace = Trace {
        header: String::new(),
        rows,
    };
    let check = check_all(&spec, &trace);
    let splits = spec
        .regions
        .iter()
        .map(|r| format!("{}:{:.2}", r.name, r.share))
        .collect::<Vec<_>>()
        .join(" ");
    let params = if spec.params.is_empty() {
        String::new()
    } else {
        format!(" this seed: {};", spec.params)
    };
    let exits = if spec.exits_follow_curve {
        " (and as fast as the curve falls)"
    } else {
        ""
    };
    trace.header = format!(
        " livetrace v1; shape={}; seed={seed}; step_s={step}; calibrated to: {};{params} \
         sessions exponential, mean {MEAN_SESSION_S:.0} s{exits}; regions {splits}; check: {}",
        spec.shape.name(),
        spec.calibration,
        check.summary
    );
    (trace, check)
}

/// Per-second chance that a viewer leaves when the curve changes by `growth` viewers per
/// second at audience `target`. While the curve falls slower than sessions end, arrivals
/// (rate `growth + target/600`) make up the difference and sessions set the rate; once it
/// falls faster, arrivals stop and departures alone must make the fall: `-growth / target`.
fn leave_following(growth: f64, target: f64) -> f64 {
    let rate = if target > 0.0 {
        (1.0 / MEAN_SESSION_S).max(-growth / target)
    } else {
        1.0
    };
    (1.0 - (-rate).exp()).clamp(0.0, 1.0)
}

fn total(trace: &Trace) -> Vec<(u64, f64)> {
    let id = trace.broadcast_ids().into_iter().next().unwrap_or_default();
    trace
        .series(&id, crate::trace::TOTAL_REGION)
        .iter()
        .map(|s| (s.t_s, s.viewers as f64))
        .collect()
}

/// Largest gain within `window_s`: max over t of N(t) − min N over [t − window, t].
pub fn max_gain_within(series: &[(u64, f64)], window_s: u64) -> f64 {
    let mut best: f64 = 0.0;
    let mut start = 0;
    let mut lows: std::collections::VecDeque<usize> = Default::default();
    for (i, &(t, v)) in series.iter().enumerate() {
        while lows.back().is_some_and(|&j| series[j].1 >= v) {
            lows.pop_back();
        }
        lows.push_back(i);
        while series[start].0 + window_s < t {
            start += 1;
        }
        while lows.front().is_some_and(|&j| j < start) {
            lows.pop_front();
        }
        if let Some(&low) = lows.front() {
            best = best.max(v - series[low].1);
        }
    }
    best
}

/// Largest loss within `window_s`: max over t of N(t) − min N over [t, t + window] (the
/// gain of the series played backwards).
pub fn max_loss_within(series: &[(u64, f64)], window_s: u64) -> f64 {
    let last = series.last().map_or(0, |s| s.0);
    let reversed: Vec<(u64, f64)> = series.iter().rev().map(|&(t, v)| (last - t, v)).collect();
    max_gain_within(&reversed, window_s)
}

/// Separate gains of at least `gain` within `window_s`: after one is counted the next must
/// follow a fall of half a gain from the high since.
pub fn count_gains(series: &[(u64, f64)], window_s: u64, gain: f64) -> usize {
    let mut count = 0;
    let mut high: Option<f64> = None; // Some while the last counted gain has not fallen back
    let mut start = 0;
    let mut lows: std::collections::VecDeque<usize> = Default::default();
    for (i, &(t, v)) in series.iter().enumerate() {
        while lows.back().is_some_and(|&j| series[j].1 >= v) {
            lows.pop_back();
        }
        lows.push_back(i);
        while series[start].0 + window_s < t {
            start += 1;
        }
        while lows.front().is_some_and(|&j| j < start) {
            lows.pop_front();
        }
        match high {
            Some(h) if v <= h - gain / 2.0 => {
                high = None;
                // The fall starts a new window: older lows belong to the last gain.
                lows.clear();
                lows.push_back(i);
                start = i;
            }
            Some(h) => high = Some(h.max(v)),
            None => {
                if lows.front().is_some_and(|&low| v - series[low].1 >= gain) {
                    count += 1;
                    high = Some(v);
                }
            }
        }
    }
    count
}

fn check_all(spec: &ShapeSpec, trace: &Trace) -> CheckResult {
    let series = total(trace);
    let results: Vec<CheckResult> = spec.checks.iter().map(|c| check(*c, &series)).collect();
    CheckResult {
        summary: results
            .iter()
            .map(|r| r.summary.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        passed: results.iter().all(|r| r.passed),
    }
}

fn check(wanted: Check, series: &[(u64, f64)]) -> CheckResult {
    let peak = series.iter().map(|s| s.1).fold(0.0, f64::max);
    let n = |v: f64| surge_count(v);
    match wanted {
        Check::GainWithin { window_s, gain } => {
            let got = max_gain_within(series, window_s);
            CheckResult {
                summary: format!(
                    "max gain within {window_s} s = {} viewers (target >= {}), peak {}",
                    n(got),
                    n(gain),
                    n(peak)
                ),
                passed: got >= gain,
            }
        }
        Check::PeakRatio { reference, ratio } => {
            let got = peak / reference;
            CheckResult {
                summary: format!(
                    "peak {} = {got:.2}x the normal daily peak {} (target {ratio}x)",
                    n(peak),
                    n(reference)
                ),
                passed: (got / ratio - 1.0).abs() < 0.05,
            }
        }
        Check::Peak { peak: wanted } => CheckResult {
            summary: format!("peak {} viewers (target ~{})", n(peak), n(wanted)),
            passed: (peak / wanted - 1.0).abs() < 0.25,
        },
        Check::LossWithin { window_s, fraction } => {
            let got = if peak > 0.0 {
                max_loss_within(series, window_s) / peak
            } else {
                0.0
            };
            CheckResult {
                summary: format!(
                    "max loss within {window_s} s = {:.0}% of the peak {} (target >= {:.0}%)",
                    got * 100.0,
                    n(peak),
                    fraction * 100.0
                ),
                passed: got >= fraction,
            }
        }
        Check::Repeats {
            window_s,
            gain,
            count,
        } => {
            let got = count_gains(series, window_s, gain);
            CheckResult {
                summary: format!(
                    "{got} separate gains of {} within {window_s} s (target >= {count}), peak {}",
                    n(gain),
                    n(peak)
                ),
                passed: got >= count,
            }
        }
    }
}

/// `12345.6` → `"12,346"`.
pub fn surge_count(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < -0.5 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::parse_trace;

    #[test]
    fn every_shape_meets_its_calibration_and_round_trips() {
        for shape in Shape::ALL.into_iter().chain(Shape::CROWDS) {
            let (trace, check) = generate(shape, 1, None);
            assert!(check.passed, "{shape:?}: {}", check.summary);
            let text = trace.to_csv();
            let back = parse_trace(&text).expect("generated traces parse");
            assert_eq!(back.rows.len(), trace.rows.len());
            assert!(back.header.contains("calibrated to:"), "{}", back.header);
            let shape_name = format!("shape={}", shape.name());
            assert!(back.header.contains(&shape_name), "{}", back.header);
        }
    }

    #[test]
    fn departures_follow_ten_minute_sessions() {
        // Steady 300 viewers: departures per second ≈ 300 / 600 = 0.5, so ≈ 2.5 per 5 s row.
        let (trace, _) = generate(Shape::Steady, 4, None);
        let rows = &trace.rows[2..];
        let departed: u64 = rows.iter().filter_map(|r| r.departures).sum();
        let seconds = 1_800.0;
        let per_s = departed as f64 / seconds;
        assert!((per_s - 0.5).abs() < 0.08, "{per_s} departures/s");
    }

    #[test]
    fn seeds_are_deterministic_and_matter() {
        let a = generate(Shape::Periscope, 7, None).0;
        let b = generate(Shape::Periscope, 7, None).0;
        let c = generate(Shape::Periscope, 8, None).0;
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn max_gain_uses_the_window() {
        let s = [(0, 0.0), (10, 5.0), (20, 3.0), (30, 20.0), (40, 0.0)];
        assert_eq!(max_gain_within(&s, 10), 17.0);
        assert_eq!(max_gain_within(&s, 30), 20.0);
        assert_eq!(max_loss_within(&s, 10), 20.0);
        assert_eq!(max_loss_within(&s, 5), 0.0);
        let slow = [(0, 10.0), (10, 8.0), (20, 6.0), (30, 4.0)];
        assert_eq!(max_loss_within(&slow, 10), 2.0);
        assert_eq!(max_loss_within(&slow, 30), 6.0);
    }

    #[test]
    fn gains_count_once_until_the_audience_falls_back() {
        let up_down = |t0: u64| {
            [
                (t0, 0.0),
                (t0 + 10, 10.0),
                (t0 + 20, 12.0),
                (t0 + 30, 11.0),
                (t0 + 40, 2.0),
            ]
        };
        let mut s: Vec<(u64, f64)> = up_down(0).to_vec();
        s.extend(up_down(50));
        assert_eq!(count_gains(&s, 20, 10.0), 2);
        // Rising on without falling back is one gain, however long.
        let ramp: Vec<(u64, f64)> = (0..20).map(|i| (i * 10, i as f64 * 10.0)).collect();
        assert_eq!(count_gains(&ramp, 10, 10.0), 1);
        assert_eq!(count_gains(&ramp, 10, 11.0), 0);
    }
}
