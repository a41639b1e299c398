//! A viewer's position in a stream: the only per-viewer state the hub keeps. Pure.

use std::sync::Arc;

use super::frame::Frame;
use super::gop_cache::GopCache;

/// How much a viewer may take at once, and how far behind it may fall.
#[derive(Debug, Clone, Copy)]
pub struct CursorLimits {
    /// Pending RTMP bytes beyond which the viewer skips to the newest keyframe.
    pub max_backlog_bytes: u64,
    pub batch_frames: usize,
    pub batch_bytes: usize,
}

impl Default for CursorLimits {
    fn default() -> Self {
        CursorLimits {
            max_backlog_bytes: 8 << 20,
            batch_frames: 128,
            batch_bytes: 512 << 10,
        }
    }
}

#[derive(Debug)]
pub struct ViewerCursor {
    next: Option<u64>,
    /// Seq the last batch started from (after any skip).
    last_from: u64,
    pub dropped: u64,
}

impl Default for ViewerCursor {
    fn default() -> Self {
        Self::new()
    }
}

impl ViewerCursor {
    /// A cursor that starts at the GOP cache on its first take.
    pub fn new() -> Self {
        ViewerCursor {
            next: None,
            last_from: 0,
            dropped: 0,
        }
    }

    /// A cursor that starts at `seq` (the GOP start when the viewer arrived).
    pub fn starting_at(seq: u64) -> Self {
        ViewerCursor {
            next: Some(seq),
            last_from: seq,
            dropped: 0,
        }
    }

    /// Seq the last batch started from (after any skip).
    pub fn last_from(&self) -> u64 {
        self.last_from
    }

    pub fn position(&self) -> Option<u64> {
        self.next
    }

    /// Hands the next batch to `take`. Returns how many frames were skipped by this call.
    pub fn take(
        &mut self,
        cache: &GopCache,
        limits: &CursorLimits,
        take: impl FnMut(&Arc<Frame>),
    ) -> u64 {
        let mut next = self.next.unwrap_or_else(|| cache.gop_start());
        let mut skipped = 0;
        let fell_out = next < cache.first_seq();
        if fell_out || cache.backlog_bytes(next) > limits.max_backlog_bytes {
            // Skip to the newest keyframe ahead; without one, to the oldest frame held.
            let target = match cache.last_keyframe() {
                Some(k) if k > next => k,
                _ if fell_out => cache.first_seq(),
                _ => next,
            };
            skipped = target - next;
            next = target;
        }
        self.dropped += skipped;
        self.last_from = next;
        self.next = Some(cache.collect_from(next, limits.batch_frames, limits.batch_bytes, take));
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::gop_cache::tests::frame;

    fn take_all(
        cur: &mut ViewerCursor,
        c: &GopCache,
        limits: &CursorLimits,
        out: &mut Vec<Arc<Frame>>,
    ) -> u64 {
        cur.take(c, limits, |f| out.push(f.clone()))
    }

    fn cache_with(n: u64, gop: u64, size: usize) -> GopCache {
        let mut c = GopCache::new(usize::MAX);
        for i in 0..n {
            c.push_with(|s| frame(s, i % gop == 0, size));
        }
        c
    }

    #[test]
    fn new_viewer_starts_at_gop() {
        let c = cache_with(25, 10, 10);
        let mut cur = ViewerCursor::new();
        let mut out = Vec::new();
        take_all(&mut cur, &c, &CursorLimits::default(), &mut out);
        assert_eq!(out.first().map(|f| f.seq), Some(20));
        assert!(out[0].keyframe);
        assert_eq!(cur.position(), Some(25));
        assert_eq!(cur.dropped, 0);
    }

    #[test]
    fn behind_viewer_skips_to_newest_keyframe() {
        let mut c = cache_with(5, 10, 100);
        let mut cur = ViewerCursor::new();
        let mut out = Vec::new();
        take_all(&mut cur, &c, &CursorLimits::default(), &mut out);
        for i in 5..25 {
            c.push_with(|s| frame(s, i % 10 == 0, 100));
        }
        let limits = CursorLimits {
            max_backlog_bytes: 1000,
            ..CursorLimits::default()
        };
        out.clear();
        let skipped = take_all(&mut cur, &c, &limits, &mut out);
        assert_eq!(skipped, 15);
        assert_eq!(out[0].seq, 20);
        assert_eq!(cur.dropped, 15);
    }

    #[test]
    fn viewer_that_fell_out_of_ring_resumes_at_keyframe() {
        let mut c = GopCache::new(usize::MAX);
        let mut cur = ViewerCursor::new();
        let mut out = Vec::new();
        c.push_with(|s| frame(s, true, 1));
        take_all(&mut cur, &c, &CursorLimits::default(), &mut out);
        for i in 1..40 {
            c.push_with(|s| frame(s, i % 10 == 0, 1));
        }
        out.clear();
        take_all(&mut cur, &c, &CursorLimits::default(), &mut out);
        assert_eq!(out[0].seq, 30);
        assert_eq!(cur.dropped, 29);
    }
}
