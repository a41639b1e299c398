//! Viewers of a relay that stops being counted are still watching: an edge that crashed,
//! hung or lost its node, an edge drained by a scale-down (terminating pods are not
//! scraped), and an origin or reflector that died with overflow viewers on it all send their
//! viewers back through the region's locator to the other relays within seconds. Counted as gone, the region's viewers would dip by that edge's audience
//! and jump back as they reconnect, and the planner would read the dip as a falling audience
//! (removing the idle replacement edge first) and the jump as a flash crowd (scaling up, then
//! down again, draining loaded edges: more dips). So when a relay counted with viewers at the
//! last reconcile is not counted now, the count of each region it served is held at that
//! region's count before the loss for [`HOLD_SECONDS`] of planner time: the reconnecting viewers fill it back up, and a real
//! fall shows once the hold ends. Pure.

use std::collections::BTreeMap;

/// How long a region's count is held after an edge is lost: viewers reconnect within a few
/// seconds (a retry and a locator redirect), this leaves room for a loaded control plane and
/// for a sped-up clock (`--speed 20`: 3 s of wall time).
pub const HOLD_SECONDS: f64 = 60.0;

/// One relay as this reconcile saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct RelaySeen<'a> {
    pub name: &'a str,
    /// The viewers it serves by their region when it was counted
    /// ([`crate::region_viewers::served_by_relay`]); `None` when not (unreachable, not
    /// running, terminating).
    pub served: Option<&'a BTreeMap<String, u64>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LostViewers {
    /// Counted relays at the last reconcile: name -> the regions it served viewers of.
    last: BTreeMap<String, Vec<String>>,
    /// Each region's count as answered at the last reconcile (its own demand: overflow viewers
    /// of other regions that an edge held are theirs, not its region's).
    last_counts: BTreeMap<String, u64>,
    /// Per region: the count held (the region's count before the loss) and until when.
    floors: BTreeMap<String, (u64, f64)>,
}

impl LostViewers {
    /// Notes this reconcile's relays and region counts (as answered) at `now_s`: a relay of
    /// the last reconcile that served viewers and is not counted now holds the count of every
    /// region it served — an edge's own, and those whose overflow viewers it held (an origin
    /// or reflector killed with overflow viewers on it loses them too).
    pub fn observe(
        &mut self,
        now_s: f64,
        relays: &[RelaySeen<'_>],
        counts: &BTreeMap<String, Option<u64>>,
    ) {
        let counted: std::collections::BTreeSet<&str> = relays
            .iter()
            .filter(|r| r.served.is_some())
            .map(|r| r.name)
            .collect();
        let mut held: Vec<(String, u64)> = Vec::new();
        for (name, regions) in &self.last {
            if counted.contains(name.as_str()) {
                continue;
            }
            for region in regions {
                if let Some(&count) = self.last_counts.get(region) {
                    held.push((region.clone(), count));
                }
            }
        }
        self.floors.retain(|_, (_, until)| *until > now_s);
        for (region, count) in held {
            let floor = self.floors.get(&region).map_or(0, |(f, _)| *f);
            self.floors
                .insert(region, (floor.max(count), now_s + HOLD_SECONDS));
        }
        self.last = relays
            .iter()
            .filter_map(|r| {
                let regions: Vec<String> = r
                    .served?
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(region, _)| region.clone())
                    .collect();
                Some((r.name.to_string(), regions))
            })
            .collect();
        self.last_counts = counts
            .iter()
            .filter_map(|(region, n)| Some((region.clone(), (*n)?)))
            .collect();
    }

    /// The region's viewers to plan with: `answered`, or the held count while a lost relay's
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
        self.last_counts.retain(|r, _| names.contains(&r.as_str()));
        for regions in self.last.values_mut() {
            regions.retain(|r| names.contains(&r.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Seen = (&'static str, Option<BTreeMap<String, u64>>);

    /// An edge of region `eu` with its viewers, or not counted.
    fn edge(name: &'static str, viewers: Option<u64>) -> Seen {
        relay(name, viewers.map(|n| vec![("eu", n)]))
    }

    fn relay(name: &'static str, served: Option<Vec<(&str, u64)>>) -> Seen {
        let served = served.map(|s| s.into_iter().map(|(r, n)| (r.to_string(), n)).collect());
        (name, served)
    }

    /// One reconcile: the region counts are the sums of what the counted relays serve.
    fn step(l: &mut LostViewers, now_s: f64, seen: &[Seen]) {
        let mut counts: BTreeMap<String, Option<u64>> = BTreeMap::new();
        for (region, n) in seen.iter().filter_map(|(_, s)| s.as_ref()).flatten() {
            let c = counts.entry(region.clone()).or_default();
            *c = Some(c.unwrap_or(0) + n);
        }
        let relays: Vec<RelaySeen<'_>> = seen
            .iter()
            .map(|(name, served)| RelaySeen {
                name,
                served: served.as_ref(),
            })
            .collect();
        l.observe(now_s, &relays, &counts);
    }

    #[test]
    fn a_crashed_edge_holds_the_count_until_its_viewers_are_back_elsewhere() {
        let mut l = LostViewers::default();
        step(
            &mut l,
            0.0,
            &[
                edge("a", Some(160)),
                edge("b", Some(20)),
                edge("c", Some(5)),
            ],
        );
        assert_eq!(l.viewers("eu", 0.0, Some(185)), Some(185));
        // `a` is killed: gone from the list (local) ...
        step(
            &mut l,
            5.0,
            &[edge("b", Some(21)), edge("c", Some(5)), edge("a2", Some(0))],
        );
        assert_eq!(l.viewers("eu", 5.0, Some(26)), Some(185));
        // ... its viewers reconnect to b and c: no jump above the level before.
        step(
            &mut l,
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
        step(&mut l, 0.0, &[edge("a", Some(50)), edge("b", Some(50))]);
        step(&mut l, 1.0, &[edge("a", None), edge("b", Some(50))]);
        assert_eq!(l.viewers("eu", 1.0, Some(50)), Some(100));
        assert_eq!(l.viewers("eu", 2.0, Some(180)), Some(180));
        // Another region is not held.
        assert_eq!(l.viewers("us", 1.0, Some(7)), Some(7));
        assert_eq!(l.viewers("us", 1.0, None), None);
    }

    #[test]
    fn a_drained_edge_holds_too_and_an_idle_one_holds_nothing() {
        let mut l = LostViewers::default();
        step(
            &mut l,
            0.0,
            &[edge("a", Some(40)), edge("b", Some(0)), edge("c", Some(60))],
        );
        // `b` (idle) crashes: nothing to hold.
        step(&mut l, 1.0, &[edge("a", Some(40)), edge("c", Some(60))]);
        assert_eq!(l.viewers("eu", 1.0, Some(100)), Some(100));
        // `a` is drained by a scale-down (terminating: not counted); its viewers move to `c`.
        step(&mut l, 2.0, &[edge("a", None), edge("c", Some(61))]);
        assert_eq!(l.viewers("eu", 2.0, Some(61)), Some(100));
        step(&mut l, 3.0, &[edge("c", Some(99))]);
        assert_eq!(l.viewers("eu", 3.0, Some(99)), Some(100));
    }

    #[test]
    fn a_second_loss_during_a_hold_keeps_the_higher_count_and_extends_it() {
        let mut l = LostViewers::default();
        step(&mut l, 0.0, &[edge("a", Some(100)), edge("b", Some(100))]);
        step(&mut l, 10.0, &[edge("b", Some(100))]);
        assert_eq!(l.viewers("eu", 10.0, Some(100)), Some(200));
        step(&mut l, 40.0, &[edge("b", Some(150)), edge("c", Some(50))]);
        step(&mut l, 50.0, &[edge("c", Some(60))]);
        assert_eq!(
            l.viewers("eu", 50.0 + HOLD_SECONDS - 1.0, Some(60)),
            Some(200)
        );
        l.retain_regions(&["us"]);
        assert_eq!(l.viewers("eu", 51.0, Some(60)), Some(60));
    }

    #[test]
    fn a_lost_edge_holds_each_region_it_served_at_that_regions_own_count() {
        let mut l = LostViewers::default();
        // `a` (eu) holds 30 us viewers by overflow; eu's own count is 50 + 40, us's 30 + 20.
        let before = [
            relay("a", Some(vec![("eu", 50), ("us", 30)])),
            relay("b", Some(vec![("eu", 40)])),
            relay("u", Some(vec![("us", 20)])),
        ];
        step(&mut l, 0.0, &before);
        step(
            &mut l,
            1.0,
            &[
                relay("b", Some(vec![("eu", 40)])),
                relay("u", Some(vec![("us", 20)])),
            ],
        );
        assert_eq!(
            l.viewers("eu", 1.0, Some(40)),
            Some(90),
            "not 120: us's 30 are not eu's"
        );
        assert_eq!(l.viewers("us", 1.0, Some(20)), Some(50));
    }

    #[test]
    fn a_killed_origin_with_overflow_viewers_holds_their_regions() {
        let mut l = LostViewers::default();
        step(
            &mut l,
            0.0,
            &[
                relay("origin", Some(vec![("eu", 134), ("ap", 16)])),
                relay("eu-0", Some(vec![("eu", 60)])),
                relay("refl", Some(vec![])),
            ],
        );
        // The origin is killed: gone from the list; the idle reflector is unreachable.
        step(
            &mut l,
            2.0,
            &[relay("eu-0", Some(vec![("eu", 61)])), relay("refl", None)],
        );
        assert_eq!(l.viewers("eu", 2.0, Some(61)), Some(194));
        assert_eq!(l.viewers("ap", 2.0, None), Some(16));
        assert_eq!(
            l.viewers("us", 2.0, Some(3)),
            Some(3),
            "nothing of us was lost"
        );
    }
}
