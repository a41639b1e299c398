//! Keeps outgoing timestamps monotonic when the source of a stream changes.
//!
//! A relay that fails over to another upstream (or sees its publisher restart) receives a
//! timeline that may start anywhere: at 0, or hours ahead. Viewers must never see time go
//! backwards, nor jump far ahead (players would stall for the difference). The rebaser maps
//! every new timeline so that its first media frame lands just after the last timestamp already
//! delivered; within one timeline, offsets are preserved exactly.

use crate::media::MediaKind;

/// Default spacing between the last delivered timestamp and the first one of a new timeline.
pub const DEFAULT_REBASE_GAP_MS: u32 = 20;
/// A backward step larger than this inside one track means the source restarted its clock.
pub const DEFAULT_RESET_THRESHOLD_MS: u32 = 1_000;

#[derive(Clone, Debug)]
pub struct TimestampRebaser {
    gap_ms: u32,
    reset_threshold_ms: u32,
    /// `out = in + offset` for the current timeline; `None` until its first media frame.
    offset: Option<i64>,
    /// Highest timestamp delivered so far, over all kinds.
    last_out: Option<u32>,
    last_out_by_kind: [Option<u32>; 3],
    /// Last input timestamp per kind in the current timeline (for reset detection).
    last_in_by_kind: [Option<u32>; 3],
}

impl Default for TimestampRebaser {
    fn default() -> Self {
        Self::new(DEFAULT_REBASE_GAP_MS, DEFAULT_RESET_THRESHOLD_MS)
    }
}

fn slot(kind: MediaKind) -> usize {
    match kind {
        MediaKind::Audio => 0,
        MediaKind::Video => 1,
        MediaKind::Data => 2,
    }
}

fn to_u32(v: i64) -> u32 {
    v.clamp(0, u32::MAX as i64) as u32
}

impl TimestampRebaser {
    pub fn new(gap_ms: u32, reset_threshold_ms: u32) -> Self {
        TimestampRebaser {
            gap_ms,
            reset_threshold_ms,
            offset: None,
            last_out: None,
            last_out_by_kind: [None; 3],
            last_in_by_kind: [None; 3],
        }
    }

    /// A new timeline starts (new upstream connection, or the publisher came back).
    pub fn new_timeline(&mut self) {
        self.offset = None;
        self.last_in_by_kind = [None; 3];
    }

    /// Last timestamp handed out, if any.
    pub fn last_delivered(&self) -> Option<u32> {
        self.last_out
    }

    /// Maps one incoming timestamp. `is_config` marks sequence headers and metadata: they do
    /// not anchor a timeline (servers often send them stamped 0 before frames stamped hours in).
    pub fn map(&mut self, kind: MediaKind, ts: u32, is_config: bool) -> u32 {
        let is_config = is_config || kind == MediaKind::Data;
        let k = slot(kind);

        if self.offset.is_none() {
            match self.last_out {
                // The very first timeline keeps the source's own timestamps.
                None => self.offset = Some(0),
                Some(last) if is_config => {
                    // Not anchored yet: stamp headers at the current position.
                    let out = last.max(self.last_out_by_kind[k].unwrap_or(0));
                    self.record(k, out);
                    return out;
                }
                Some(last) => self.anchor(last, ts),
            }
        } else if !is_config
            && let Some(prev) = self.last_in_by_kind[k]
            && (ts as u64) + (self.reset_threshold_ms as u64) < prev as u64
        {
            // The source's clock went back: start a new timeline here.
            self.last_in_by_kind = [None; 3];
            let last = self.last_out.unwrap_or(0);
            self.anchor(last, ts);
        }

        let offset = self.offset.unwrap_or(0);
        let mapped = to_u32(ts as i64 + offset);
        let floor = self.last_out_by_kind[k].unwrap_or(0);
        let out = mapped.max(floor);
        if !is_config {
            self.last_in_by_kind[k] = Some(ts);
        }
        self.record(k, out);
        out
    }

    fn anchor(&mut self, last: u32, ts: u32) {
        let target = last as i64 + self.gap_ms as i64;
        self.offset = Some(target - ts as i64);
    }

    fn record(&mut self, k: usize, out: u32) {
        self.last_out_by_kind[k] = Some(out);
        self.last_out = Some(self.last_out.map_or(out, |l| l.max(out)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MediaKind::*;

    #[test]
    fn first_timeline_is_untouched() {
        let mut r = TimestampRebaser::default();
        assert_eq!(r.map(Data, 0, true), 0);
        assert_eq!(r.map(Video, 0, true), 0);
        assert_eq!(r.map(Video, 5_000, false), 5_000);
        assert_eq!(r.map(Audio, 4_990, false), 4_990);
        assert_eq!(r.map(Video, 5_033, false), 5_033);
    }

    #[test]
    fn failover_continues_after_last_delivered() {
        let mut r = TimestampRebaser::default();
        for ts in (0..=3_000).step_by(40) {
            r.map(Video, ts, false);
        }
        assert_eq!(r.last_delivered(), Some(3_000));
        r.new_timeline();
        // New upstream: headers stamped 0, then its GOP cache from 90_000.
        assert_eq!(r.map(Data, 0, true), 3_000);
        assert_eq!(r.map(Video, 0, true), 3_000);
        assert_eq!(r.map(Audio, 0, true), 3_000);
        assert_eq!(r.map(Video, 90_000, false), 3_020);
        assert_eq!(r.map(Audio, 90_010, false), 3_030);
        assert_eq!(r.map(Video, 90_040, false), 3_060);
    }

    #[test]
    fn new_timeline_behind_is_moved_forward() {
        let mut r = TimestampRebaser::default();
        r.map(Video, 100_000, false);
        r.new_timeline();
        assert_eq!(r.map(Video, 5, false), 100_020);
        assert_eq!(r.map(Video, 45, false), 100_060);
    }

    #[test]
    fn interleaved_kinds_never_go_back_per_kind() {
        let mut r = TimestampRebaser::default();
        r.map(Video, 1_000, false);
        r.map(Audio, 1_010, false);
        r.new_timeline();
        // Audio of the new timeline starts slightly before its video.
        assert_eq!(r.map(Video, 500, false), 1_030);
        let a = r.map(Audio, 480, false);
        assert_eq!(a, 1_010); // 480 + 530 = 1010, equal to the last audio: allowed
        assert!(r.map(Audio, 500, false) >= a);
    }

    #[test]
    fn clock_reset_inside_a_timeline_is_rebased() {
        let mut r = TimestampRebaser::default();
        r.map(Video, 60_000, false);
        r.map(Audio, 60_010, false);
        // Publisher restarted on the same connection: its clock starts at 0 again.
        assert_eq!(r.map(Video, 0, false), 60_030);
        // The other track follows the new offset instead of re-anchoring again.
        assert_eq!(r.map(Audio, 5, false), 60_035);
        assert_eq!(r.map(Video, 40, false), 60_070);
    }

    #[test]
    fn small_backward_steps_are_clamped_not_rebased() {
        let mut r = TimestampRebaser::default();
        r.map(Video, 1_000, false);
        assert_eq!(r.map(Video, 990, false), 1_000);
        assert_eq!(r.map(Video, 1_040, false), 1_040);
    }

    #[test]
    fn config_messages_never_go_back() {
        let mut r = TimestampRebaser::default();
        r.map(Video, 10_000, false);
        // A sequence header re-sent stamped 0 mid-stream.
        assert_eq!(r.map(Video, 0, true), 10_000);
        assert_eq!(r.map(Video, 10_040, false), 10_040);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let mut r = TimestampRebaser::default();
        r.map(Video, u32::MAX - 5, false);
        r.new_timeline();
        assert_eq!(r.map(Video, 0, false), u32::MAX);
    }
}
