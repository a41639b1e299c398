//! `surge-load trace gen`: calibrated synthetic traces.
//!
//! Each shape gives a target audience curve `N*(t)` (see [`shapes`]). Viewers arrive as a
//! Poisson process with rate `dN*/dt + N*/600` and each viewer stays for an exponential
//! session with a 10-minute mean (LiveJack's model), simulated at 1 s per region, so the
//! audience follows the curve with the noise and lag that real arrivals and departures give.
//! Rows are written every `step` seconds with the arrivals and departures of the interval.

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
    let spec = spec(shape);
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
    let check = check(&spec, &trace);
    let splits = spec
        .regions
        .iter()
        .map(|r| format!("{}:{:.2}", r.name, r.share))
        .collect::<Vec<_>>()
        .join(" ");
    trace.header = format!(
        " livetrace v1; shape={}; seed={seed}; step_s={step}; calibrated to: {}; \
         sessions exponential, mean {MEAN_SESSION_S:.0} s; regions {splits}; check: {}",
        spec.shape.name(),
        spec.calibration,
        check.summary
    );
    (trace, check)
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

fn check(spec: &ShapeSpec, trace: &Trace) -> CheckResult {
    let series = total(trace);
    let peak = series.iter().map(|s| s.1).fold(0.0, f64::max);
    let n = |v: f64| surge_count(v);
    match spec.check {
        Check::GainWithin { window_s, gain } => {
            let got = max_gain_within(&series, window_s);
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
        for shape in Shape::ALL {
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
    }
}
