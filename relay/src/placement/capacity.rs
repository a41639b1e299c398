//! How much room a relay has: the smaller of its viewer limit and its egress budget divided by
//! what each viewer costs — the stream's measured ingest bitrate, never less than a floor, so a
//! stream that just started (or stalled for a moment) does not look free. Pure.

/// Bitrate assumed for a stream measured lower, unless the relay is told otherwise.
pub const DEFAULT_BITRATE_FLOOR_KBPS: u64 = 500;

/// The limits a relay was started with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityLimits {
    /// Most viewers, whatever their bitrate (`--max-viewers`).
    pub max_viewers: usize,
    /// Egress budget in kbit/s (`--max-egress-mbps` × 1000); `None`: only the count limits.
    pub max_egress_kbps: Option<u64>,
    /// Bitrate assumed for a stream that measures lower (`--bitrate-floor-kbps`).
    pub bitrate_floor_kbps: u64,
}

/// One stream this relay serves: its viewers and its measured ingest bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLoad {
    pub viewers: usize,
    pub ingest_kbps: u64,
}

/// How full the relay is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Room {
    pub viewers: usize,
    /// Viewers the relay holds at its current mix of streams when full.
    pub capacity: usize,
    /// 0 (idle) .. 1 (full); above 1 only if limits were lowered under a running crowd.
    pub load: f64,
}

impl CapacityLimits {
    /// A viewer count only (no egress budget).
    pub fn viewers_only(max_viewers: usize) -> Self {
        CapacityLimits {
            max_viewers,
            max_egress_kbps: None,
            bitrate_floor_kbps: DEFAULT_BITRATE_FLOOR_KBPS,
        }
    }

    /// What one viewer of a stream costs in egress.
    pub fn viewer_kbps(&self, ingest_kbps: u64) -> u64 {
        ingest_kbps.max(self.bitrate_floor_kbps).max(1)
    }

    pub fn room(&self, streams: &[StreamLoad]) -> Room {
        let viewers: usize = streams.iter().map(|s| s.viewers).sum();
        let egress_kbps = self.egress_kbps(streams);
        let by_count = fraction(viewers as f64, self.max_viewers as f64);
        let by_egress = self
            .max_egress_kbps
            .map_or(0.0, |budget| fraction(egress_kbps as f64, budget as f64));
        // Each viewer costs what the current viewers cost on average; with none, the dearest
        // stream decides (the next viewer may want it).
        let per_viewer_kbps = if viewers > 0 {
            (egress_kbps / viewers as u64).max(1)
        } else {
            streams
                .iter()
                .map(|s| self.viewer_kbps(s.ingest_kbps))
                .max()
                .unwrap_or_else(|| self.viewer_kbps(0))
        };
        let by_budget = self
            .max_egress_kbps
            .map_or(usize::MAX, |budget| (budget / per_viewer_kbps) as usize);
        Room {
            viewers,
            capacity: self.max_viewers.min(by_budget),
            load: by_count.max(by_egress),
        }
    }

    /// Whether one more viewer of a stream at `ingest_kbps` fits under both limits.
    pub fn admits(&self, streams: &[StreamLoad], ingest_kbps: u64) -> bool {
        let viewers: usize = streams.iter().map(|s| s.viewers).sum();
        if viewers >= self.max_viewers {
            return false;
        }
        match self.max_egress_kbps {
            None => true,
            Some(budget) => self.egress_kbps(streams) + self.viewer_kbps(ingest_kbps) <= budget,
        }
    }

    fn egress_kbps(&self, streams: &[StreamLoad]) -> u64 {
        streams
            .iter()
            .map(|s| s.viewers as u64 * self.viewer_kbps(s.ingest_kbps))
            .sum()
    }
}

/// `part / whole`, with an empty whole counting as full.
fn fraction(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 { 1.0 } else { part / whole }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_viewers: usize, egress_mbps: Option<u64>) -> CapacityLimits {
        CapacityLimits {
            max_viewers,
            max_egress_kbps: egress_mbps.map(|m| m * 1000),
            bitrate_floor_kbps: 500,
        }
    }

    fn stream(viewers: usize, ingest_kbps: u64) -> StreamLoad {
        StreamLoad {
            viewers,
            ingest_kbps,
        }
    }

    #[test]
    fn without_a_budget_the_viewer_count_decides() {
        let room = limits(100, None).room(&[stream(25, 2500)]);
        assert_eq!(room.capacity, 100);
        assert!((room.load - 0.25).abs() < 1e-9);
    }

    #[test]
    fn bitrate_sets_capacity_under_an_egress_budget() {
        // 1 Gbit/s at 2.5 Mbit/s per viewer: 400 viewers, although 2,000 are allowed.
        let l = limits(2000, Some(1000));
        let room = l.room(&[stream(100, 2500)]);
        assert_eq!(room.capacity, 400);
        assert!((room.load - 0.25).abs() < 1e-9);
        assert!(l.admits(&[stream(399, 2500)], 2500));
        assert!(!l.admits(&[stream(400, 2500)], 2500));
    }

    #[test]
    fn a_stream_that_just_started_costs_the_floor() {
        let l = limits(2000, Some(100));
        // Measured 0 kbps (no full window yet): each viewer counts as 500 kbit/s.
        let room = l.room(&[stream(0, 0)]);
        assert_eq!(room.capacity, 200);
        assert_eq!(room.load, 0.0);
        assert!(!l.admits(&[stream(200, 0)], 0));
    }

    #[test]
    fn the_viewer_limit_still_holds_for_light_streams() {
        let l = limits(40, Some(10_000));
        assert_eq!(l.room(&[stream(10, 600)]).capacity, 40);
        assert!(!l.admits(&[stream(40, 600)], 600));
        assert!((l.room(&[stream(36, 600)]).load - 0.9).abs() < 1e-9);
    }

    #[test]
    fn zero_limits_count_as_full_not_as_a_division_by_zero() {
        let l = limits(0, Some(0));
        let room = l.room(&[]);
        assert_eq!(room.capacity, 0);
        assert_eq!(room.load, 1.0);
        assert!(!l.admits(&[], 600));
    }

    #[test]
    fn mixed_streams_average_their_cost() {
        let l = limits(10_000, Some(1000));
        // 100 × 2,000 + 100 × 500 = 250 Mbit/s for 200 viewers: 1,250 kbit/s each → 800.
        let room = l.room(&[stream(100, 2000), stream(100, 300)]);
        assert_eq!(room.capacity, 800);
        assert!((room.load - 0.25).abs() < 1e-9);
    }
}
