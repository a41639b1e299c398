//! Where a region's viewers landed: viewers refused (a locator or relay answered 503),
//! viewers placed by overflow (every edge of the region was full), and viewers per relay,
//! keyed by the address the viewer played from (`rtmp://HOST:PORT` or `http://HOST:PORT`,
//! so with `--protocol mix` one relay shows under both of its addresses). Pure counting: the
//! viewers call it, [`super::stats::Stats`] holds one per region.

use std::collections::BTreeMap;

use serde::Serialize;

/// How a viewer reached its relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The target was the relay itself (`--target REGION=HOST:RTMP_PORT[:HTTP_PORT]`).
    Direct,
    /// The locator chose an edge of the region (or served the viewer itself).
    Edge,
    /// The locator sent it along the overflow order.
    Overflow,
}

/// One relay over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RelayCount {
    /// Sessions sent to this relay.
    pub sessions: u64,
    /// Most viewers playing on it at once.
    pub peak_viewers: u64,
    /// Sessions that were playing on it when it went away (closed, reset, went silent).
    pub disconnects: u64,
    /// Viewers playing on it now.
    #[serde(skip)]
    pub viewers: u64,
}

/// Viewers playing per relay at one moment, and how evenly they are spread.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Viewers playing in the region.
    pub viewers: u64,
    /// Viewers playing per relay (relays without viewers left out).
    pub relays: BTreeMap<String, u64>,
    /// Most viewers on one relay.
    pub max: u64,
    /// Mean viewers over the relays that hold any.
    pub mean: f64,
}

impl Spread {
    pub fn of<'a>(relays: impl IntoIterator<Item = (&'a String, u64)>) -> Self {
        let relays: BTreeMap<String, u64> = relays
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.clone(), n))
            .collect();
        let viewers: u64 = relays.values().sum();
        let mean = if relays.is_empty() {
            0.0
        } else {
            viewers as f64 / relays.len() as f64
        };
        Self {
            viewers,
            max: relays.values().copied().max().unwrap_or(0),
            mean,
            relays,
        }
    }

    /// Max over mean: 1 when every relay holds as many viewers; `None` without viewers.
    pub fn max_over_mean(&self) -> Option<f64> {
        (self.mean > 0.0).then(|| self.max as f64 / self.mean)
    }
}

/// One region's placements: totals so far and the relays' viewers now.
#[derive(Debug, Clone, Default)]
pub struct RegionPlacement {
    pub refused: u64,
    pub overflow: u64,
    pub relays: BTreeMap<String, RelayCount>,
    /// The spread at the end of the second in which the region had the most viewers playing.
    pub at_peak: Spread,
}

/// One region in one timeline second: refusals and overflow placements so far, and the spread.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementPoint {
    pub refused: u64,
    pub overflow: u64,
    #[serde(flatten)]
    pub spread: Spread,
}

impl RegionPlacement {
    pub fn refused(&mut self) {
        self.refused += 1;
    }

    /// A session was sent to `relay`.
    pub fn placed(&mut self, relay: &str, how: Placement) {
        if how == Placement::Overflow {
            self.overflow += 1;
        }
        self.relay(relay).sessions += 1;
    }

    pub fn began_playing(&mut self, relay: &str) {
        let r = self.relay(relay);
        r.viewers += 1;
        r.peak_viewers = r.peak_viewers.max(r.viewers);
    }

    /// A session placed on `relay` ended, after it began playing or not.
    pub fn ended(&mut self, relay: &str, was_playing: bool) {
        if was_playing && let Some(r) = self.relays.get_mut(relay) {
            r.viewers = r.viewers.saturating_sub(1);
        }
    }

    /// A session playing on `relay` lost it.
    pub fn disconnected(&mut self, relay: &str) {
        self.relay(relay).disconnects += 1;
    }

    pub fn spread_now(&self) -> Spread {
        Spread::of(self.relays.iter().map(|(k, r)| (k, r.viewers)))
    }

    /// The second's point; remembers the spread at the region's busiest second.
    pub fn close_window(&mut self) -> PlacementPoint {
        let spread = self.spread_now();
        if spread.viewers > self.at_peak.viewers {
            self.at_peak = spread.clone();
        }
        PlacementPoint {
            refused: self.refused,
            overflow: self.overflow,
            spread,
        }
    }

    fn relay(&mut self, relay: &str) -> &mut RelayCount {
        if !self.relays.contains_key(relay) {
            self.relays.insert(relay.to_owned(), RelayCount::default());
        }
        self.relays.get_mut(relay).expect("just inserted")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "http://127.0.0.1:8001";
    const B: &str = "http://127.0.0.1:8002";
    const ORIGIN: &str = "http://127.0.0.1:8000";

    fn play(p: &mut RegionPlacement, relay: &str, how: Placement) {
        p.placed(relay, how);
        p.began_playing(relay);
    }

    #[test]
    fn counts_viewers_per_relay_overflow_and_refusals() {
        let mut p = RegionPlacement::default();
        for _ in 0..3 {
            play(&mut p, A, Placement::Edge);
        }
        play(&mut p, B, Placement::Edge);
        play(&mut p, ORIGIN, Placement::Overflow);
        play(&mut p, ORIGIN, Placement::Overflow);
        p.refused();
        // A session sent to B that never played: counted as sent, not as a viewer.
        p.placed(B, Placement::Edge);
        p.ended(B, false);
        let point = p.close_window();
        assert_eq!((point.refused, point.overflow), (1, 2));
        assert_eq!(point.spread.viewers, 6);
        assert_eq!(
            point.spread.relays,
            BTreeMap::from([(A.into(), 3), (B.into(), 1), (ORIGIN.into(), 2)])
        );
        assert_eq!(point.spread.max, 3);
        assert!((point.spread.mean - 2.0).abs() < 1e-9);
        assert_eq!(point.spread.max_over_mean(), Some(1.5));
        assert_eq!(p.relays[B].sessions, 2);
        assert_eq!(p.relays[A].peak_viewers, 3);
    }

    #[test]
    fn relays_without_viewers_leave_the_spread_but_keep_their_totals() {
        let mut p = RegionPlacement::default();
        play(&mut p, A, Placement::Direct);
        play(&mut p, A, Placement::Direct);
        play(&mut p, B, Placement::Edge);
        assert_eq!(p.overflow, 0, "direct and edge placements are not overflow");
        let busiest = p.close_window().spread;
        p.ended(A, true);
        p.ended(A, true);
        // Ending twice more (an aborted session) never goes below zero.
        p.ended(A, true);
        let later = p.close_window().spread;
        assert_eq!(later.relays, BTreeMap::from([(B.into(), 1)]));
        assert_eq!((later.max, later.mean), (1, 1.0));
        assert_eq!(p.at_peak, busiest, "the busiest second is kept");
        assert_eq!(p.relays[A].peak_viewers, 2);
        assert_eq!(p.relays[A].viewers, 0);
        // An unknown relay's end is ignored.
        p.ended("rtmp://elsewhere:1", true);
        assert!(!p.relays.contains_key("rtmp://elsewhere:1"));
    }

    #[test]
    fn no_viewers_no_spread() {
        let s = Spread::of(std::iter::empty());
        assert_eq!((s.viewers, s.max, s.mean), (0, 0, 0.0));
        assert_eq!(s.max_over_mean(), None);
    }
}
