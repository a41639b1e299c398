//! The ring of recent frames: the current GOP (what a new viewer starts from) plus the one
//! before it (room for viewers a little behind), capped in bytes. Pure; no IO, no locking.

use std::collections::VecDeque;
use std::sync::Arc;

use super::frame::Frame;

pub struct GopCache {
    frames: VecDeque<Arc<Frame>>,
    /// Cumulative RTMP byte offset at the end of each frame in `frames` (same indexing).
    ends: VecDeque<u64>,
    next_seq: u64,
    total_bytes: u64,
    held_bytes: usize,
    max_bytes: usize,
    last_keyframe: Option<u64>,
}

impl GopCache {
    pub fn new(max_bytes: usize) -> Self {
        GopCache {
            frames: VecDeque::new(),
            ends: VecDeque::new(),
            next_seq: 0,
            total_bytes: 0,
            held_bytes: 0,
            max_bytes,
            last_keyframe: None,
        }
    }

    /// Seq the next pushed frame will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Oldest seq still held (== `next_seq` when empty).
    pub fn first_seq(&self) -> u64 {
        self.frames.front().map_or(self.next_seq, |f| f.seq)
    }

    /// Seq of the newest keyframe still held.
    pub fn last_keyframe(&self) -> Option<u64> {
        self.last_keyframe
    }

    /// Where a new viewer starts: the newest keyframe, or the live edge without one.
    pub fn gop_start(&self) -> u64 {
        self.last_keyframe.unwrap_or(self.next_seq)
    }

    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Milliseconds covered by the current GOP (newest keyframe to newest frame).
    pub fn gop_duration_ms(&self) -> u32 {
        let (Some(k), Some(last)) = (self.last_keyframe, self.frames.back()) else {
            return 0;
        };
        self.get(k)
            .map_or(0, |kf| last.timestamp.wrapping_sub(kf.timestamp))
            .min(i32::MAX as u32)
    }

    pub fn get(&self, seq: u64) -> Option<&Arc<Frame>> {
        let first = self.first_seq();
        if seq < first {
            return None;
        }
        self.frames.get((seq - first) as usize)
    }

    /// Builds a frame with the next seq via `make` and appends it.
    pub fn push_with(&mut self, make: impl FnOnce(u64) -> Frame) -> Arc<Frame> {
        let frame = Arc::new(make(self.next_seq));
        self.next_seq += 1;
        if frame.keyframe {
            // Keep the previous GOP (for viewers slightly behind) and drop anything older.
            if let Some(prev) = self.last_keyframe {
                while self.first_seq() < prev {
                    self.pop_front();
                }
            }
            self.last_keyframe = Some(frame.seq);
        }
        self.total_bytes += frame.rtmp.len() as u64;
        self.held_bytes += frame.held_bytes();
        self.frames.push_back(frame.clone());
        self.ends.push_back(self.total_bytes);
        while self.held_bytes > self.max_bytes && self.frames.len() > 1 {
            self.pop_front();
        }
        frame
    }

    fn pop_front(&mut self) {
        if let Some(f) = self.frames.pop_front() {
            self.ends.pop_front();
            self.held_bytes -= f.held_bytes();
            if self.last_keyframe == Some(f.seq) {
                self.last_keyframe = None;
            }
        }
    }

    /// RTMP bytes from `seq` (inclusive) to the newest frame.
    pub fn backlog_bytes(&self, seq: u64) -> u64 {
        let first = self.first_seq();
        if seq >= self.next_seq {
            return 0;
        }
        if seq <= first {
            let before_first = self
                .ends
                .front()
                .zip(self.frames.front())
                .map_or(self.total_bytes, |(end, f)| end - f.rtmp.len() as u64);
            return self.total_bytes - before_first;
        }
        let idx = (seq - first) as usize;
        self.total_bytes - self.ends[idx - 1]
    }

    /// Calls `take` for frames from `seq` onwards, stopping after `max_frames` or once
    /// `max_bytes` RTMP bytes are handed out. Returns the seq after the last frame taken.
    pub fn collect_from(
        &self,
        seq: u64,
        max_frames: usize,
        max_bytes: usize,
        mut take: impl FnMut(&Arc<Frame>),
    ) -> u64 {
        let first = self.first_seq();
        let mut next = seq.max(first);
        let mut bytes = 0usize;
        let start = ((next - first) as usize).min(self.frames.len());
        for f in self.frames.range(start..).take(max_frames) {
            if bytes >= max_bytes {
                break;
            }
            bytes += f.rtmp.len();
            take(f);
            next += 1;
        }
        next
    }

    /// Forgets everything (end of a publishing session); seqs keep increasing.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.ends.clear();
        self.held_bytes = 0;
        self.last_keyframe = None;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::MediaKind;
    use bytes::Bytes;

    pub fn frame(seq: u64, keyframe: bool, size: usize) -> Frame {
        Frame {
            seq,
            kind: MediaKind::Video,
            timestamp: seq as u32 * 40,
            keyframe,
            rtmp: Bytes::from(vec![0u8; size]),
            flv: Bytes::new(),
            flv_chunk: Bytes::new(),
            arrived: std::time::Instant::now(),
        }
    }

    #[test]
    fn keeps_current_and_previous_gop() {
        let mut c = GopCache::new(usize::MAX);
        for i in 0..30 {
            c.push_with(|s| frame(s, i % 10 == 0, 10));
        }
        assert_eq!(c.gop_start(), 20);
        assert_eq!(c.first_seq(), 10);
        assert_eq!(c.len(), 20);
        assert_eq!(c.gop_duration_ms(), 9 * 40);
        assert_eq!(c.backlog_bytes(10), 200);
        assert_eq!(c.backlog_bytes(25), 50);
        assert_eq!(c.backlog_bytes(30), 0);
        assert_eq!(c.backlog_bytes(0), 200);
    }

    #[test]
    fn byte_cap_bounds_memory_and_can_evict_keyframe() {
        let mut c = GopCache::new(100);
        c.push_with(|s| frame(s, true, 10));
        for _ in 0..20 {
            c.push_with(|s| frame(s, false, 10));
        }
        assert!(c.held_bytes() <= 100);
        assert_eq!(c.last_keyframe(), None);
        assert_eq!(c.gop_start(), c.next_seq());
    }

    #[test]
    fn collect_respects_limits() {
        let mut c = GopCache::new(usize::MAX);
        for i in 0..10 {
            c.push_with(|s| frame(s, i == 0, 100));
        }
        let mut out = Vec::new();
        assert_eq!(c.collect_from(2, 3, usize::MAX, |f| out.push(f.seq)), 5);
        assert_eq!(out, vec![2, 3, 4]);
        assert_eq!(c.collect_from(0, 100, 250, |_| {}), 3);
    }
}
