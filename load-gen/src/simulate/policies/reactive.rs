//! `reactive`: the best a policy that only reacts can do, the yardstick for shortfall. It
//! sees every sample exactly as surge does (one per region every [`SYNC_S`] s,
//! [`METRIC_AGE_S`] s old) and asks for exactly the edges the newest sample needs: no
//! headroom, no step limits, no stabilisation. Each change is Ready after the ready time like
//! every other policy's, so on a step it is short for the sample's age plus the ready time
//! (plus up to one interval until the next sample) and never longer.

use super::super::engine::{Policy, View};
use super::surge::{METRIC_AGE_S, SYNC_S};

#[derive(Debug, Default)]
pub struct Reactive;

impl Policy for Reactive {
    fn name(&self) -> &'static str {
        "reactive"
    }

    fn decide(&mut self, view: &View) -> Option<Vec<u32>> {
        if !view.step.is_multiple_of(SYNC_S) {
            return None;
        }
        let desired = view
            .fleets
            .iter()
            .enumerate()
            .map(|(r, fleet)| match view.observed(r, METRIC_AGE_S) {
                Some(viewers) => view.settings.edges_for(viewers),
                // No sample yet: keep the start fleet.
                None => fleet.requested,
            })
            .collect();
        Some(desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::demand::Demand;
    use crate::simulate::engine::{Outcome, SimSettings, simulate};

    fn run(viewers: Vec<f64>, ready_s: u64) -> Outcome {
        let demand = Demand {
            broadcast_id: "b".into(),
            regions: vec!["r".into()],
            start_s: 0,
            viewers: vec![viewers],
        };
        let settings = SimSettings {
            ready_s,
            viewers_per_edge: 100,
            min_edges: 1,
            max_edges: 1000,
            true_capacity_factor: 1.0,
        };
        simulate(&mut Reactive, &demand, &settings)
    }

    #[test]
    fn a_step_is_followed_exactly_sample_age_plus_ready_time_late() {
        for ready in [0, 30, 60, 120] {
            // 100 viewers, then 5,000 from t=100 (a sample instant).
            let mut v = vec![100.0; 100];
            v.extend(vec![5_000.0; 400]);
            let out = run(v, ready);
            let late = METRIC_AGE_S + ready as usize;
            let covered = out.shortfall.iter().rposition(|&s| s > 0.0).unwrap() + 1;
            assert_eq!(
                covered,
                100 + late,
                "ready {ready}: {:?}",
                &out.shortfall[95..]
            );
            assert_eq!(
                out.underprovisioned_viewer_seconds,
                4_900.0 * late as f64,
                "ready {ready}"
            );
            assert_eq!(out.capacity[100 + late], 5_000.0);
            assert_eq!(out.scale_events, 1);
        }
    }

    #[test]
    fn a_step_between_samples_waits_for_the_next_one() {
        // The step lands 2 s after a sample: the next sample (t=105) shows it at t=110.
        let mut v = vec![100.0; 103];
        v.extend(vec![5_000.0; 300]);
        let out = run(v, 30);
        let covered = out.shortfall.iter().rposition(|&s| s > 0.0).unwrap() + 1;
        assert_eq!(covered, 105 + METRIC_AGE_S + 30);
    }

    #[test]
    fn never_holds_headroom() {
        // A noisy rise and fall: after every decision the edges asked for are exactly what the
        // newest sample needs, never one more.
        let v: Vec<f64> = (0..2_000)
            .map(|t| {
                let t = t as f64;
                3_000.0 + 2_500.0 * (t / 300.0).sin() + 37.0 * (t * 1.7).cos()
            })
            .collect();
        let out = run(v.clone(), 0);
        for step in (METRIC_AGE_S..v.len()).step_by(SYNC_S) {
            let wanted = (v[step - METRIC_AGE_S] / 100.0).ceil().max(1.0) * 100.0;
            assert_eq!(out.capacity[step], wanted, "t={step}");
        }
        // With the ready time the capacity only lags: never above the highest need of the
        // last sample age + ready time + one interval.
        let out = run(v.clone(), 30);
        let lag = METRIC_AGE_S + 30 + SYNC_S;
        for (t, &cap) in out.capacity.iter().enumerate().skip(lag) {
            let most = v[t - lag..=t]
                .iter()
                .map(|x| (x / 100.0).ceil() * 100.0)
                .fold(0.0, f64::max);
            assert!(cap <= most, "t={t}: {cap} > {most}");
        }
    }
}
