//! How long this cluster takes from the operator asking for more edges to those edges being
//! Ready: the planner's `relay_ready_seconds`, which sets how far ahead it must forecast.
//! A pod's own creation -> Ready time misses what happens before the pod exists (the
//! Deployment and ReplicaSet controllers, admission, quota) and before the operator sees it
//! Ready (the watch, the next reconcile); on a busy control plane that is seconds, and a
//! planner that does not count it has capacity Ready late by as much. So each raise of a
//! region's edge count is timed from the reconcile that asked for it to the first reconcile
//! that sees that many edges Ready. Pure.

use std::collections::{BTreeMap, VecDeque};

/// Measured raises kept; the estimate is their median, so one slow start (a first image
/// pull, a node added) does not set the horizon alone.
const KEEP: usize = 9;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadyTimer {
    regions: BTreeMap<String, RegionTimer>,
    /// Measured seconds, oldest first.
    samples: VecDeque<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct RegionTimer {
    /// The edge count last asked for.
    asked: u32,
    /// Raises not yet Ready: (asked at, edge count).
    pending: Vec<(f64, u32)>,
}

impl ReadyTimer {
    /// One reconcile of `region` at `now_s`: `existing` edges were asked for before it (the
    /// Deployment's replicas), `ready` of them are Ready, and it asks for `desired`.
    pub fn record(&mut self, region: &str, now_s: f64, existing: u32, ready: u32, desired: u32) {
        let r = self.regions.entry(region.to_string()).or_default();
        let samples = &mut self.samples;
        r.pending.retain(|&(asked_at, count)| {
            if ready >= count {
                samples.push_back((now_s - asked_at).max(0.0));
                false
            } else {
                // A plan that went back below the count before it was Ready says nothing
                // about how long Ready takes.
                count <= desired
            }
        });
        while self.samples.len() > KEEP {
            self.samples.pop_front();
        }
        // Only a raise beyond what exists and is Ready starts a clock: after an operator
        // restart the Deployment already holds the count, and during a scale-down draining
        // edges are still Ready.
        if desired > r.asked.max(existing) && desired > ready {
            r.pending.push((now_s, desired));
        }
        r.asked = desired;
    }

    /// Forgets regions no longer in the spec.
    pub fn retain_regions(&mut self, names: &[&str]) {
        self.regions
            .retain(|name, _| names.contains(&name.as_str()));
    }

    /// Median measured asked-for -> Ready seconds; `None` until a raise has come Ready.
    pub fn seconds(&self) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = self.samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        Some(sorted[sorted.len() / 2])
    }
}

/// The planner's relay-ready time: the longer of the measured asked-for -> Ready time and
/// the pods' own creation -> Ready median (the latter alone until a raise was timed).
pub fn relay_ready_seconds(timer: &ReadyTimer, pods_creation_to_ready: Option<f64>) -> Option<f64> {
    timer
        .seconds()
        .into_iter()
        .chain(pods_creation_to_ready)
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raise_is_timed_from_the_asking_reconcile_to_the_one_that_sees_it_ready() {
        let mut t = ReadyTimer::default();
        // A new Stream: nothing exists, one edge asked for at 0, Ready seen at 42.
        t.record("eu", 0.0, 0, 0, 1);
        t.record("eu", 20.0, 1, 0, 1);
        assert_eq!(t.seconds(), None);
        t.record("eu", 42.0, 1, 1, 1);
        assert_eq!(t.seconds(), Some(42.0));
        // 1 -> 3 at 100, 3 -> 5 at 110; 3 Ready at 170, 5 at 200.
        t.record("eu", 100.0, 1, 1, 3);
        t.record("eu", 110.0, 3, 1, 5);
        t.record("eu", 170.0, 5, 3, 5);
        t.record("eu", 200.0, 5, 5, 5);
        // Samples 42, 70, 90: the median.
        assert_eq!(t.seconds(), Some(70.0));
    }

    #[test]
    fn what_already_exists_or_is_ready_starts_no_clock() {
        let mut t = ReadyTimer::default();
        // An operator restart: the Deployment holds 4, 4 are Ready.
        t.record("eu", 0.0, 4, 4, 4);
        t.record("eu", 1.0, 4, 4, 4);
        assert_eq!(t.seconds(), None);
        // A scale-down to 2 while 4 are still Ready (draining), then back to 3: already Ready.
        t.record("eu", 10.0, 4, 4, 2);
        t.record("eu", 11.0, 2, 4, 3);
        t.record("eu", 12.0, 3, 3, 3);
        assert_eq!(t.seconds(), None);
    }

    #[test]
    fn a_raise_taken_back_before_it_was_ready_is_not_measured() {
        let mut t = ReadyTimer::default();
        t.record("eu", 0.0, 2, 2, 6);
        t.record("eu", 30.0, 6, 2, 3);
        t.record("eu", 60.0, 3, 3, 3);
        // The raise to 6 was dropped; 3 was never asked for as a raise.
        assert_eq!(t.seconds(), None);
        t.record("eu", 70.0, 3, 3, 4);
        t.record("eu", 100.0, 4, 6, 4);
        assert_eq!(t.seconds(), Some(30.0));
    }

    #[test]
    fn regions_are_timed_apart_and_only_the_newest_raises_count() {
        let mut t = ReadyTimer::default();
        t.record("eu", 0.0, 1, 1, 2);
        t.record("us", 5.0, 1, 1, 2);
        t.record("eu", 10.0, 2, 2, 2);
        t.record("us", 10.0, 2, 1, 2);
        assert_eq!(t.seconds(), Some(10.0));
        t.record("us", 25.0, 2, 2, 2);
        // Samples 10 (eu) and 20 (us): the upper median.
        assert_eq!(t.seconds(), Some(20.0));
        for i in 0..20u32 {
            let at = 100.0 + f64::from(i) * 10.0;
            t.record("eu", at, 2 + i, 2 + i, 3 + i);
            t.record("eu", at + 5.0, 3 + i, 3 + i, 3 + i);
        }
        assert_eq!(t.seconds(), Some(5.0));
        t.retain_regions(&["us"]);
        assert!(!t.regions.contains_key("eu"));
    }

    #[test]
    fn the_planner_gets_the_longer_of_the_two_measures() {
        let mut t = ReadyTimer::default();
        assert_eq!(relay_ready_seconds(&t, None), None);
        assert_eq!(relay_ready_seconds(&t, Some(30.0)), Some(30.0));
        t.record("eu", 0.0, 1, 1, 2);
        t.record("eu", 45.0, 2, 2, 2);
        assert_eq!(relay_ready_seconds(&t, Some(30.0)), Some(45.0));
        assert_eq!(relay_ready_seconds(&t, Some(60.0)), Some(60.0));
        assert_eq!(relay_ready_seconds(&t, None), Some(45.0));
    }
}
