//! Keeps outgoing timestamps monotonic when the source of a stream changes.
//!
//! A relay that fails over to another upstream (or sees its publisher restart) receives a
//! timeline that may start anywhere: at 0, or hours ahead. Viewers must never see time go
//! backwards, nor jump far ahead (players would stall for the difference). The rebaser maps
//! every new timeline so that its first media frame lands just after the last timestamp already
//! delivered; within one timeline, offsets are preserved exactly.
//!
//! Inside a Surge tree every relay keeps the publisher's timestamps, so after a failover the new
//! upstream usually replays (from its GOP cache) frames this relay already delivered, on the
//! same timeline. When the new upstream's first frame lies within `continuation_window_ms` of
//! where the old one stopped, the rebaser treats it as the same timeline: it keeps the offset
//! and drops the frames already delivered, so viewers see neither a replay nor a time shift.

use crate::media::MediaKind;

/// Default spacing between the last delivered timestamp and the first one of a new timeline.
pub const DEFAULT_REBASE_GAP_MS: u32 = 20;
/// A backward step larger than this inside one track means the source restarted its clock.
pub const DEFAULT_RESET_THRESHOLD_MS: u32 = 1_000;
/// A new upstream whose first frame is this close to where the old one stopped is taken to
/// carry the same timeline (same publisher, relayed with its own timestamps).
pub const DEFAULT_CONTINUATION_WINDOW_MS: u32 = 10_000;

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
    continuation_window_ms: u32,
    /// Offset and last inputs of the previous timeline, while a continuation is possible.
    previous: Option<(i64, [Option<u32>; 3])>,
    /// Continuing the previous timeline: per kind, input timestamps up to this were delivered.
    delivered_up_to: [Option<u32>; 3],
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
            continuation_window_ms: DEFAULT_CONTINUATION_WINDOW_MS,
            previous: None,
            delivered_up_to: [None; 3],
        }
    }

    /// Sets how close a new upstream's first frame must be to continue the old timeline
    /// (0 disables continuation: every new upstream is rebased).
    pub fn with_continuation_window(mut self, ms: u32) -> Self {
        self.continuation_window_ms = ms;
        self
    }

    /// A new upstream connection starts: it may continue the previous timeline (see module docs).
    pub fn new_timeline(&mut self) {
        if let Some(offset) = self.offset
            && self.last_in_by_kind.iter().any(Option::is_some)
        {
            self.previous = Some((offset, self.last_in_by_kind));
        }
        self.offset = None;
        self.last_in_by_kind = [None; 3];
        self.delivered_up_to = [None; 3];
    }

    /// The source restarted its clock (a new publisher): never a continuation.
    pub fn restart_timeline(&mut self) {
        self.new_timeline();
        self.previous = None;
    }

    /// Last timestamp handed out, if any.
    pub fn last_delivered(&self) -> Option<u32> {
        self.last_out
    }

    /// Maps one incoming timestamp; `None` means the message was already delivered (a
    /// continued timeline replaying it) and must be dropped. `is_config` marks sequence headers
    /// and metadata: they do not anchor a timeline (servers often send them stamped 0 before
    /// frames stamped hours in).
    pub fn map(&mut self, kind: MediaKind, ts: u32, is_config: bool) -> Option<u32> {
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
                    return Some(out);
                }
                Some(last) => match self.previous.take() {
                    Some((offset, prev_in)) if self.continues(ts, &prev_in) => {
                        self.offset = Some(offset);
                        self.delivered_up_to = prev_in;
                    }
                    _ => self.anchor(last, ts),
                },
            }
        }
        if !is_config && let Some(done) = self.delivered_up_to[k] {
            if ts <= done {
                return None;
            }
            self.delivered_up_to[k] = None;
        }
        if !is_config
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
        Some(out)
    }

    /// Whether a frame stamped `ts` on a new upstream is near where the previous one stopped.
    fn continues(&self, ts: u32, prev_in: &[Option<u32>; 3]) -> bool {
        self.continuation_window_ms > 0
            && prev_in
                .iter()
                .flatten()
                .any(|&p| (ts as i64 - p as i64).abs() <= self.continuation_window_ms as i64)
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
        let mut r = TimestampRebaser::default().with_continuation_window(0);
        assert_eq!(r.map(Data, 0, true), Some(0));
        assert_eq!(r.map(Video, 0, true), Some(0));
        assert_eq!(r.map(Video, 5_000, false), Some(5_000));
        assert_eq!(r.map(Audio, 4_990, false), Some(4_990));
        assert_eq!(r.map(Video, 5_033, false), Some(5_033));
    }

    #[test]
    fn failover_continues_after_last_delivered() {
        let mut r = TimestampRebaser::default().with_continuation_window(0);
        for ts in (0..=3_000).step_by(40) {
            r.map(Video, ts, false);
        }
        assert_eq!(r.last_delivered(), Some(3_000));
        r.new_timeline();
        // New upstream: headers stamped 0, then its GOP cache from 90_000.
        assert_eq!(r.map(Data, 0, true), Some(3_000));
        assert_eq!(r.map(Video, 0, true), Some(3_000));
        assert_eq!(r.map(Audio, 0, true), Some(3_000));
        assert_eq!(r.map(Video, 90_000, false), Some(3_020));
        assert_eq!(r.map(Audio, 90_010, false), Some(3_030));
        assert_eq!(r.map(Video, 90_040, false), Some(3_060));
    }

    #[test]
    fn new_timeline_behind_is_moved_forward() {
        let mut r = TimestampRebaser::default().with_continuation_window(0);
        r.map(Video, 100_000, false);
        r.new_timeline();
        assert_eq!(r.map(Video, 5, false), Some(100_020));
        assert_eq!(r.map(Video, 45, false), Some(100_060));
    }

    #[test]
    fn interleaved_kinds_never_go_back_per_kind() {
        let mut r = TimestampRebaser::default().with_continuation_window(0);
        r.map(Video, 1_000, false);
        r.map(Audio, 1_010, false);
        r.new_timeline();
        // Audio of the new timeline starts slightly before its video.
        assert_eq!(r.map(Video, 500, false), Some(1_030));
        let a = r.map(Audio, 480, false);
        assert_eq!(a, Some(1_010)); // 480 + 530 = 1010, equal to the last audio: allowed
        assert!(r.map(Audio, 500, false) >= a);
    }

    #[test]
    fn clock_reset_inside_a_timeline_is_rebased() {
        let mut r = TimestampRebaser::default().with_continuation_window(0);
        r.map(Video, 60_000, false);
        r.map(Audio, 60_010, false);
        // Publisher restarted on the same connection: its clock starts at 0 again.
        assert_eq!(r.map(Video, 0, false), Some(60_030));
        // The other track follows the new offset instead of re-anchoring again.
        assert_eq!(r.map(Audio, 5, false), Some(60_035));
        assert_eq!(r.map(Video, 40, false), Some(60_070));
    }

    #[test]
    fn small_backward_steps_are_clamped_not_rebased() {
        let mut r = TimestampRebaser::default().with_continuation_window(0);
        r.map(Video, 1_000, false);
        assert_eq!(r.map(Video, 990, false), Some(1_000));
        assert_eq!(r.map(Video, 1_040, false), Some(1_040));
    }

    #[test]
    fn config_messages_never_go_back() {
        let mut r = TimestampRebaser::default().with_continuation_window(0);
        r.map(Video, 10_000, false);
        // A sequence header re-sent stamped 0 mid-stream.
        assert_eq!(r.map(Video, 0, true), Some(10_000));
        assert_eq!(r.map(Video, 10_040, false), Some(10_040));
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let mut r = TimestampRebaser::default().with_continuation_window(0);
        r.map(Video, u32::MAX - 5, false);
        r.new_timeline();
        assert_eq!(r.map(Video, 0, false), Some(u32::MAX));
    }

    #[test]
    fn failover_on_the_same_timeline_drops_replayed_frames_and_keeps_time() {
        let mut r = TimestampRebaser::default();
        for ts in (60_000..=61_000).step_by(40) {
            r.map(Video, ts, false);
        }
        r.map(Audio, 61_010, false);
        r.new_timeline();
        // The new upstream's GOP cache starts at keyframe 60_800, before where we stopped.
        assert_eq!(r.map(Video, 0, true), Some(61_010)); // sequence header
        assert_eq!(r.map(Video, 60_800, false), None);
        assert_eq!(r.map(Audio, 60_990, false), None);
        assert_eq!(r.map(Video, 61_000, false), None);
        assert_eq!(r.map(Audio, 61_033, false), Some(61_033));
        assert_eq!(r.map(Video, 61_040, false), Some(61_040));
        // Once past the overlap nothing else is dropped.
        assert_eq!(r.map(Video, 61_040, false), Some(61_040));
    }

    #[test]
    fn continuation_survives_a_failed_attempt_in_between() {
        let mut r = TimestampRebaser::default();
        r.map(Video, 5_000, false);
        r.new_timeline(); // an upstream that delivered nothing
        r.new_timeline();
        assert_eq!(r.map(Video, 4_960, false), None);
        assert_eq!(r.map(Video, 5_040, false), Some(5_040));
    }

    #[test]
    fn far_away_timelines_and_publisher_restarts_are_rebased() {
        let mut r = TimestampRebaser::default();
        r.map(Video, 5_000, false);
        r.new_timeline();
        assert_eq!(r.map(Video, 50_000, false), Some(5_020));

        let mut r = TimestampRebaser::default();
        r.map(Video, 5_000, false);
        // A new publisher starts at 0, within the window: still a new clock.
        r.restart_timeline();
        assert_eq!(r.map(Video, 0, false), Some(5_020));
    }
}
