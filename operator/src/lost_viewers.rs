//! Viewers of an edge that stops being counted are still watching: an edge that crashed,
//! hung or lost its node, and an edge drained by a scale-down (terminating pods are not
//! scraped), both send their viewers back through the region's locator to the other edges
//! within seconds. Counted as gone, the region's viewers would dip by that edge's audience
//! and jump back as they reconnect, and the planner would read the dip as a falling audience
//! (removing the idle replacement edge first) and the jump as a flash crowd (scaling up, then
//! down again, draining loaded edges: more dips). So when an edge counted with viewers at the
//! last reconcile is not counted now, the region's count is held at its total before the loss
//! for [`HOLD_SECONDS`] of planner time: the reconnecting viewers fill it back up, and a real
//! fall shows once the hold ends. Pure.

use std::collections::BTreeMap;

/// How long a region's count is held after an edge is lost: viewers reconnect within a few
/// seconds (a retry and a locator redirect), this leaves room for a loaded control plane and
/// for a sped-up clock (`--speed 20`: 3 s of wall time).
pub const HOLD_SECONDS: f64 = 60.0;

/// One edge as this reconcile saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeSeen<'a> {
    pub name: &'a str,
    pub region: &'a str,
    /// `Some(viewers)` when it was counted; `None` when not (unreachable, not running,
    /// terminating).
    pub viewers: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LostViewers {
    /// Counted edges at the last reconcile: name -> (region, viewers).
    last: BTreeMap<String, (String, u64)>,
    /// Per region: the count held (the region's total before the loss) and until when.
    floors: BTreeMap<String, (u64, f64)>,
}

impl LostViewers {
    /// Notes this reconcile's edges at `now_s`; an edge of the last reconcile with viewers
    /// that is not counted now holds its region's count.
    pub fn observe(&mut self, now_s: f64, edges: &[EdgeSeen<'_>]) {
        let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
        for (region, viewers) in self.last.values() {
            *totals.entry(region.as_str()).or_default() += viewers;
        }
        let counted: std::collections::BTreeSet<&str> = edges
            .iter()
            .filter(|e| e.viewers.is_some())
            .map(|e| e.name)
            .collect();
        let mut lost: Vec<(String, u64)> = Vec::new();
        for (name, (region, viewers)) in &self.last {
            if *viewers == 0 {
                continue;
            }
            if !counted.contains(name.as_str()) {
                let total = totals.get(region.as_str()).copied().unwrap_or(*viewers);
                lost.push((region.clone(), total));
            }
        }
        self.floors.retain(|_, (_, until)| *until > now_s);
        for (region, total) in lost {
            let floor = self.floors.get(&region).map_or(0, |(f, _)| *f);
            self.floors
                .insert(region, (floor.max(total), now_s + HOLD_SECONDS));
        }
        self.last = edges
            .iter()
            .filter_map(|e| Some((e.name.to_string(), (e.region.to_string(), e.viewers?))))
            .collect();
    }

    /// The region's viewers to plan with: `answered`, or the held count while a lost edge's
    /// viewers come back.
    pub fn viewers(&self, region: &str, now_s: f64, answered: Option<u64>) -> Option<u64> {
        match self.floors.get(region) {
            Some(&(floor, until)) if until > now_s => Some(answered.unwrap_or(0).max(floor)),
            _ => answered,
        }
    }

    /// Forgets regions no longer in the spec.
    pub fn retain_regions(&mut self, names: &[&str]) {
        self.floors.retain(|r, _| names.contains(&r.as_str()));
        self.last.retain(|_, (r, _)| names.contains(&r.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge<'a>(name: &'a str, viewers: Option<u64>) -> EdgeSeen<'a> {
        EdgeSeen {
            name,
            region: "eu",
            viewers,
        }
    }

    #[test]
    fn a_crashed_edge_holds_the_count_until_its_viewers_are_back_elsewhere() {
        let mut l = LostViewers::default();
        l.observe(
            0.0,
            &[
                edge("a", Some(160)),
                edge("b", Some(20)),
                edge("c", Some(5)),
            ],
        );
        assert_eq!(l.viewers("eu", 0.0, Some(185)), Some(185));
        // `a` is killed: gone from the list (local) ...
        l.observe(
            5.0,
            &[edge("b", Some(21)), edge("c", Some(5)), edge("a2", Some(0))],
        );
        assert_eq!(l.viewers("eu", 5.0, Some(26)), Some(185));
        // ... its viewers reconnect to b and c: no jump above the level before.
        l.observe(
            10.0,
            &[
                edge("b", Some(100)),
                edge("c", Some(84)),
                edge("a2", Some(0)),
            ],
        );
        assert_eq!(l.viewers("eu", 10.0, Some(184)), Some(185));
        // After the hold the answered count stands, a real fall included.
        assert_eq!(l.viewers("eu", 5.0 + HOLD_SECONDS, Some(150)), Some(150));
    }

    #[test]
    fn an_unreachable_edge_holds_like_a_gone_one_and_a_growing_audience_shows_through() {
        let mut l = LostViewers::default();
        l.observe(0.0, &[edge("a", Some(50)), edge("b", Some(50))]);
        l.observe(1.0, &[edge("a", None), edge("b", Some(50))]);
        assert_eq!(l.viewers("eu", 1.0, Some(50)), Some(100));
        assert_eq!(l.viewers("eu", 2.0, Some(180)), Some(180));
        // Another region is not held.
        assert_eq!(l.viewers("us", 1.0, Some(7)), Some(7));
        assert_eq!(l.viewers("us", 1.0, None), None);
    }

    #[test]
    fn a_drained_edge_holds_too_and_an_idle_one_holds_nothing() {
        let mut l = LostViewers::default();
        l.observe(
            0.0,
            &[edge("a", Some(40)), edge("b", Some(0)), edge("c", Some(60))],
        );
        // `b` (idle) crashes: nothing to hold.
        l.observe(1.0, &[edge("a", Some(40)), edge("c", Some(60))]);
        assert_eq!(l.viewers("eu", 1.0, Some(100)), Some(100));
        // `a` is drained by a scale-down (terminating: not counted); its viewers move to `c`.
        l.observe(2.0, &[edge("a", None), edge("c", Some(61))]);
        assert_eq!(l.viewers("eu", 2.0, Some(61)), Some(100));
        l.observe(3.0, &[edge("c", Some(99))]);
        assert_eq!(l.viewers("eu", 3.0, Some(99)), Some(100));
    }

    #[test]
    fn a_second_loss_during_a_hold_keeps_the_higher_count_and_extends_it() {
        let mut l = LostViewers::default();
        l.observe(0.0, &[edge("a", Some(100)), edge("b", Some(100))]);
        l.observe(10.0, &[edge("b", Some(100))]);
        assert_eq!(l.viewers("eu", 10.0, Some(100)), Some(200));
        l.observe(40.0, &[edge("b", Some(150)), edge("c", Some(50))]);
        l.observe(50.0, &[edge("c", Some(60))]);
        assert_eq!(
            l.viewers("eu", 50.0 + HOLD_SECONDS - 1.0, Some(60)),
            Some(200)
        );
        l.retain_regions(&["us"]);
        assert_eq!(l.viewers("eu", 51.0, Some(60)), Some(60));
    }
}
