//! Results: per-policy figures, surges and time to capacity, the table and the JSON.

use serde::Serialize;

use super::demand::Demand;
use super::engine::Outcome;

/// Growth that marks a surge on the true demand: the Facebook-Live flash-crowd rate
/// (≥10k in 20 min = 500 viewers/min) and at least 5% of the audience per minute, measured
/// over 60 s (the planner's flash-crowd defaults, applied to the truth).
const SURGE_MIN_PER_MIN: f64 = 500.0;
const SURGE_RELATIVE_PER_MIN: f64 = 0.05;
/// A surge ends after this long below the thresholds.
const SURGE_CALM_S: usize = 120;
/// Shortfall this long after the end of the growth still counts towards catching up.
const CATCH_UP_GRACE_S: usize = 300;

/// A period of surge-like growth in the total demand.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Surge {
    pub start_s: u64,
    pub end_s: u64,
    pub start_viewers: f64,
    pub peak_viewers: f64,
}

/// Finds the surges in the total demand.
pub fn find_surges(demand: &Demand) -> Vec<(usize, usize)> {
    let total: Vec<f64> = (0..demand.len()).map(|i| demand.total(i)).collect();
    let mut out = Vec::new();
    let mut open: Option<(usize, usize)> = None; // (start, last hot)
    for i in 60..total.len() {
        let growth = total[i] - total[i - 60];
        let hot = growth >= SURGE_MIN_PER_MIN && growth >= SURGE_RELATIVE_PER_MIN * total[i - 60];
        open = match open {
            None if hot => Some((i - 60, i)),
            Some((start, _)) if hot => Some((start, i)),
            Some((start, last)) if i - last > SURGE_CALM_S => {
                out.push((start, last));
                None
            }
            other => other,
        };
    }
    if let Some((start, last)) = open {
        out.push((start, last));
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct SurgeResult {
    pub start_s: u64,
    /// Seconds from the surge's start until Ready capacity covered demand for good
    /// (0 = never short).
    pub time_to_capacity_s: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    pub name: String,
    pub underprovisioned_viewer_seconds: f64,
    /// Under-provisioned viewer-seconds / the reactive policy's (`None` when reactive is
    /// never short: there is no reaction delay to beat).
    pub shortfall_vs_reactive: Option<f64>,
    pub peak_shortfall: f64,
    pub relay_seconds: f64,
    pub cost_vs_oracle: f64,
    pub scale_events: u64,
    pub peak_edges: u32,
    pub surges: Vec<SurgeResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub trace: String,
    pub header: String,
    pub broadcast: String,
    pub regions: Vec<String>,
    pub duration_s: u64,
    pub peak_viewers: f64,
    pub ready_seconds: u64,
    pub viewers_per_edge: u64,
    /// What an edge really holds, as a fraction of `viewers_per_edge`.
    pub true_capacity_factor: f64,
    /// The yardsticks the ratios are taken against (run even when not selected).
    pub oracle_relay_seconds: f64,
    pub reactive_underprovisioned_viewer_seconds: f64,
    pub surges: Vec<Surge>,
    pub policies: Vec<PolicyReport>,
}

/// `value / reference` to three decimals; `None` when the reference is zero.
pub fn ratio(value: f64, reference: f64) -> Option<f64> {
    (reference > 0.0).then(|| (value / reference * 1000.0).round() / 1000.0)
}

pub fn policy_report(
    outcome: &Outcome,
    oracle_relay_seconds: f64,
    reactive_shortfall: f64,
    surges: &[(usize, usize)],
) -> PolicyReport {
    let surge_results = surges
        .iter()
        .map(|&(start, end)| {
            let until = (end + CATCH_UP_GRACE_S).min(outcome.shortfall.len().saturating_sub(1));
            let last_short = (start..=until).rev().find(|&i| outcome.shortfall[i] > 0.0);
            SurgeResult {
                start_s: start as u64,
                time_to_capacity_s: last_short.map_or(0, |i| (i + 1 - start) as u64),
            }
        })
        .collect();
    PolicyReport {
        name: outcome.name.to_owned(),
        underprovisioned_viewer_seconds: outcome.underprovisioned_viewer_seconds.round(),
        shortfall_vs_reactive: ratio(
            outcome.underprovisioned_viewer_seconds.round(),
            reactive_shortfall.round(),
        ),
        peak_shortfall: outcome.peak_shortfall.round(),
        relay_seconds: outcome.relay_seconds,
        cost_vs_oracle: ratio(outcome.relay_seconds, oracle_relay_seconds).unwrap_or(0.0),
        scale_events: outcome.scale_events,
        peak_edges: outcome.peak_edges,
        surges: surge_results,
    }
}

pub fn surge_summaries(demand: &Demand, surges: &[(usize, usize)]) -> Vec<Surge> {
    surges
        .iter()
        .map(|&(start, end)| Surge {
            start_s: start as u64,
            end_s: end as u64,
            start_viewers: demand.total(start).round(),
            peak_viewers: (start..=end)
                .map(|i| demand.total(i))
                .fold(0.0, f64::max)
                .round(),
        })
        .collect()
}

pub(super) fn count(v: f64) -> String {
    crate::trace::generate::surge_count(v)
}

/// `0.125x`, or `-` when there is no ratio.
pub(super) fn times(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}x"))
}

/// The table printed on stdout.
pub fn table(report: &Report) -> String {
    let mut out = format!(
        "trace {} (broadcast {}, regions {}, {} s, peak {} viewers); ready time {} s, {} viewers per edge\n",
        report.trace,
        report.broadcast,
        report.regions.join(","),
        report.duration_s,
        count(report.peak_viewers),
        report.ready_seconds,
        count(report.viewers_per_edge as f64),
    );
    if report.true_capacity_factor != 1.0 {
        out.push_str(&format!(
            "edges really hold {} viewers ({}x the configured edge size)\n",
            count(report.viewers_per_edge as f64 * report.true_capacity_factor),
            report.true_capacity_factor
        ));
    }
    out.push_str(&format!(
        "yardsticks: reactive (newest sample, no headroom) under-provisioned {} viewer-s; \
         oracle {} relay-s\n",
        count(report.reactive_underprovisioned_viewer_seconds),
        count(report.oracle_relay_seconds),
    ));
    for (i, s) in report.surges.iter().enumerate() {
        out.push_str(&format!(
            "surge {}: t={}..{} s, {} -> {} viewers\n",
            i + 1,
            s.start_s,
            s.end_s,
            count(s.start_viewers),
            count(s.peak_viewers)
        ));
    }
    out.push_str(&format!(
        "{:<9} {:>22} {:>18} {:>15} {:>13} {:>15} {:>12} {:>10}  {}\n",
        "policy",
        "under-prov. viewer-s",
        "short vs reactive",
        "peak shortfall",
        "relay-s",
        "cost vs oracle",
        "scale events",
        "peak edges",
        "time to capacity per surge (s)"
    ));
    for p in &report.policies {
        let ttc = p
            .surges
            .iter()
            .map(|s| s.time_to_capacity_s.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!(
            "{:<9} {:>22} {:>18} {:>15} {:>13} {:>14.3}x {:>12} {:>10}  {}\n",
            p.name,
            count(p.underprovisioned_viewer_seconds),
            times(p.shortfall_vs_reactive),
            count(p.peak_shortfall),
            count(p.relay_seconds),
            p.cost_vs_oracle,
            p.scale_events,
            p.peak_edges,
            if ttc.is_empty() { "-".into() } else { ttc }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(total: Vec<f64>) -> Demand {
        Demand {
            broadcast_id: "b".into(),
            regions: vec!["*".into()],
            start_s: 0,
            viewers: vec![total],
        }
    }

    fn outcome(shortfall: Vec<f64>) -> Outcome {
        Outcome {
            name: "p",
            underprovisioned_viewer_seconds: shortfall.iter().sum(),
            peak_shortfall: shortfall.iter().copied().fold(0.0, f64::max),
            relay_seconds: 10.0,
            scale_events: 0,
            capacity: vec![0.0; shortfall.len()],
            shortfall,
            peak_edges: 1,
        }
    }

    /// 1,000 steady viewers, then +100/s from t=300 to t=400 (6,000/min), then steady.
    fn ramp() -> Vec<f64> {
        (0..1200)
            .map(|t| match t {
                0..300 => 1000.0,
                300..400 => 1000.0 + 100.0 * (t - 300) as f64,
                _ => 11_000.0,
            })
            .collect()
    }

    #[test]
    fn a_ramp_is_one_surge_starting_a_window_before_it_is_detected() {
        let surges = find_surges(&demand(ramp()));
        assert_eq!(surges.len(), 1, "{surges:?}");
        let (start, end) = surges[0];
        // Growth over the last 60 s first reaches 500 viewers (and 5%) at t=305, so the surge
        // is dated from that window's start.
        assert_eq!(start, 245);
        // The last second whose 60 s window still grew by >= 500 viewers and >= 5%: at t=454
        // the window from t=394 (10,400 viewers) grew by 600 >= 520; at t=455, 500 < 525.
        assert_eq!(end, 454);
        let summary = surge_summaries(&demand(ramp()), &surges);
        assert_eq!(summary[0].start_viewers, 1000.0);
        assert_eq!(summary[0].peak_viewers, 11_000.0);
    }

    #[test]
    fn slow_growth_and_small_audiences_are_not_surges() {
        // +400/min on 10k viewers: under 500/min.
        let slow: Vec<f64> = (0..900)
            .map(|t| 10_000.0 + 400.0 * t as f64 / 60.0)
            .collect();
        assert!(find_surges(&demand(slow)).is_empty());
        // +600/min on 20k viewers: 3%/min, under the 5% relative threshold.
        let relative: Vec<f64> = (0..900)
            .map(|t| 20_000.0 + 600.0 * t as f64 / 60.0)
            .collect();
        assert!(find_surges(&demand(relative)).is_empty());
    }

    #[test]
    fn two_ramps_far_apart_are_two_surges() {
        let mut total = ramp();
        total
            .extend((0..600).map(|t| 11_000.0 + if t < 100 { 100.0 * t as f64 } else { 10_000.0 }));
        let surges = find_surges(&demand(total));
        assert_eq!(surges.len(), 2, "{surges:?}");
        assert!(surges[1].0 > surges[0].1 + SURGE_CALM_S);
    }

    #[test]
    fn time_to_capacity_is_measured_to_the_last_short_second() {
        let surges = vec![(100, 200)];
        let mut shortfall = vec![0.0; 1000];
        assert_eq!(
            policy_report(&outcome(shortfall.clone()), 10.0, 1.0, &surges).surges[0]
                .time_to_capacity_s,
            0,
            "never short"
        );
        // Short from t=150 to t=179 and again at t=260 (inside the grace period).
        for s in &mut shortfall[150..180] {
            *s = 5.0;
        }
        shortfall[260] = 1.0;
        let r = policy_report(&outcome(shortfall.clone()), 20.0, 302.0, &surges);
        assert_eq!(r.surges[0].time_to_capacity_s, 161);
        assert_eq!(r.cost_vs_oracle, 0.5);
        // 151 under-provisioned viewer-seconds against reactive's 302.
        assert_eq!(r.shortfall_vs_reactive, Some(0.5));
        // A shortfall after the grace period belongs to no surge.
        shortfall[260] = 0.0;
        shortfall[200 + CATCH_UP_GRACE_S + 1] = 1.0;
        let r = policy_report(&outcome(shortfall), 10.0, 0.0, &surges);
        assert_eq!(r.surges[0].time_to_capacity_s, 80);
        assert_eq!(
            r.shortfall_vs_reactive, None,
            "reactive never short: no ratio"
        );
    }

    #[test]
    fn ratios_round_to_three_decimals_and_need_a_reference() {
        assert_eq!(ratio(1.0, 3.0), Some(0.333));
        assert_eq!(ratio(0.0, 5.0), Some(0.0));
        assert_eq!(ratio(5.0, 0.0), None);
        assert_eq!(times(Some(0.25)), "0.250x");
        assert_eq!(times(None), "-");
    }
}
