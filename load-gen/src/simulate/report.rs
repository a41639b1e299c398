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
    pub surges: Vec<Surge>,
    pub policies: Vec<PolicyReport>,
}

pub fn policy_report(
    outcome: &Outcome,
    oracle_relay_seconds: f64,
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
        peak_shortfall: outcome.peak_shortfall.round(),
        relay_seconds: outcome.relay_seconds,
        cost_vs_oracle: if oracle_relay_seconds > 0.0 {
            (outcome.relay_seconds / oracle_relay_seconds * 1000.0).round() / 1000.0
        } else {
            0.0
        },
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

fn count(v: f64) -> String {
    crate::trace::generate::surge_count(v)
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
        "{:<9} {:>22} {:>15} {:>13} {:>15} {:>12} {:>10}  {}\n",
        "policy",
        "under-prov. viewer-s",
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
            "{:<9} {:>22} {:>15} {:>13} {:>14.3}x {:>12} {:>10}  {}\n",
            p.name,
            count(p.underprovisioned_viewer_seconds),
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
