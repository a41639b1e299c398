//! A player buffer model: playback starts once `prebuffer` seconds of media are
//! buffered, runs in real time, stalls when the buffer runs dry and resumes when it
//! holds `prebuffer` again (the Periscope study's P). Stall ratio = stalled time /
//! (played + stalled) time, after the initial start-up.

#[derive(Debug, Clone, Copy)]
enum State {
    NoMedia,
    /// Waiting for the buffer to fill; `initial` is start-up (not a stall).
    Buffering {
        since_ms: f64,
        at_media_ms: f64,
        initial: bool,
    },
    Playing {
        wall0_ms: f64,
        media0_ms: f64,
    },
}

#[derive(Debug, Clone)]
pub struct PlayerBuffer {
    prebuffer_ms: f64,
    state: State,
    /// End of buffered media on the continuous media clock.
    buffered_to_ms: f64,
    media_ms: f64,
    last_ts: Option<u32>,
    frame_ms: f64,
    pub played_ms: f64,
    pub stalled_ms: f64,
    pub stalls: u32,
}

impl PlayerBuffer {
    pub fn new(prebuffer_seconds: f64) -> Self {
        Self {
            prebuffer_ms: prebuffer_seconds * 1000.0,
            state: State::NoMedia,
            buffered_to_ms: 0.0,
            media_ms: 0.0,
            last_ts: None,
            frame_ms: 0.0,
            played_ms: 0.0,
            stalled_ms: 0.0,
            stalls: 0,
        }
    }

    /// Whether playback has begun (start-up complete).
    pub fn started(&self) -> bool {
        matches!(
            self.state,
            State::Playing { .. } | State::Buffering { initial: false, .. }
        )
    }

    /// A frame with media timestamp `ts` arrived at wall time `now_ms`. Returns true
    /// when the buffer had run dry before it (a stall began).
    pub fn on_frame(&mut self, now_ms: f64, ts: u32) -> bool {
        // A continuous media clock: timestamp jumps (relay rebase, wrap) count as one frame.
        if let Some(last) = self.last_ts {
            let delta = ts.wrapping_sub(last) as i32 as f64;
            if delta > 0.0 && delta < 5000.0 {
                self.media_ms += delta;
                if delta < 200.0 {
                    self.frame_ms = delta;
                }
            } else {
                self.media_ms += self.frame_ms;
            }
        }
        self.last_ts = Some(ts);
        let mut stalled = false;
        if let State::Playing {
            wall0_ms,
            media0_ms,
        } = self.state
        {
            let position = media0_ms + (now_ms - wall0_ms);
            if position > self.buffered_to_ms {
                let dry_at = wall0_ms + (self.buffered_to_ms - media0_ms);
                self.played_ms += dry_at - wall0_ms;
                self.stalls += 1;
                stalled = true;
                self.state = State::Buffering {
                    since_ms: dry_at,
                    at_media_ms: self.buffered_to_ms,
                    initial: false,
                };
            }
        }
        self.buffered_to_ms = self.buffered_to_ms.max(self.media_ms + self.frame_ms);
        match self.state {
            State::NoMedia => {
                self.state = State::Buffering {
                    since_ms: now_ms,
                    at_media_ms: self.media_ms,
                    initial: true,
                };
                self.try_resume(now_ms);
            }
            State::Buffering { .. } => self.try_resume(now_ms),
            State::Playing { .. } => {}
        }
        stalled
    }

    fn try_resume(&mut self, now_ms: f64) {
        if let State::Buffering {
            since_ms,
            at_media_ms,
            initial,
        } = self.state
            && self.buffered_to_ms - at_media_ms >= self.prebuffer_ms
        {
            if !initial {
                self.stalled_ms += now_ms - since_ms;
            }
            self.state = State::Playing {
                wall0_ms: now_ms,
                media0_ms: at_media_ms,
            };
        }
    }

    /// The session ended at `now_ms`: account for the time since the last event.
    pub fn finish(&mut self, now_ms: f64) {
        match self.state {
            State::Playing {
                wall0_ms,
                media0_ms,
            } => {
                let position = media0_ms + (now_ms - wall0_ms);
                if position > self.buffered_to_ms {
                    let dry_at = wall0_ms + (self.buffered_to_ms - media0_ms);
                    self.played_ms += dry_at - wall0_ms;
                    self.stalled_ms += now_ms - dry_at;
                    self.stalls += 1;
                } else {
                    self.played_ms += now_ms - wall0_ms;
                }
            }
            State::Buffering {
                since_ms,
                initial: false,
                ..
            } => self.stalled_ms += now_ms - since_ms,
            _ => {}
        }
        self.state = State::NoMedia;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames every 33 ms of media, arriving at the given wall times.
    fn run(prebuffer: f64, arrivals: &[f64], end: f64) -> PlayerBuffer {
        let mut p = PlayerBuffer::new(prebuffer);
        for (i, &t) in arrivals.iter().enumerate() {
            p.on_frame(t, (i as u32) * 33);
        }
        p.finish(end);
        p
    }

    #[test]
    fn steady_stream_never_stalls() {
        let arrivals: Vec<f64> = (0..300).map(|i| i as f64 * 33.0).collect();
        let p = run(0.5, &arrivals, 299.0 * 33.0);
        assert_eq!(p.stalls, 0);
        assert_eq!(p.stalled_ms, 0.0);
        // Playback starts once 0.5 s is buffered (about 15 frames in).
        assert!(
            (p.played_ms - (299.0 * 33.0 - 15.0 * 33.0)).abs() < 40.0,
            "{}",
            p.played_ms
        );
    }

    #[test]
    fn a_gap_longer_than_the_buffer_stalls_until_refilled() {
        // 2 s of steady frames, then nothing for 3 s, then a burst (catch-up), then steady.
        let mut arrivals: Vec<f64> = (0..60).map(|i| i as f64 * 33.0).collect();
        let gap_end = 60.0 * 33.0 + 3000.0;
        arrivals.extend((60..150).map(|i| gap_end + (i - 60) as f64 * 33.0));
        let small = run(0.5, &arrivals, gap_end + 90.0 * 33.0);
        assert_eq!(small.stalls, 1);
        // The buffer held ~0.5 s, so the stall lasted ~2.5 s plus refilling 0.5 s.
        assert!(
            (small.stalled_ms - 3000.0).abs() < 100.0,
            "{}",
            small.stalled_ms
        );
        // A 4 s pre-buffer rides out the gap: start-up takes longer but never stalls.
        let big = run(4.0, &arrivals, gap_end + 90.0 * 33.0);
        assert_eq!(big.stalls, 0);
        assert!(big.stalled_ms == 0.0);
        assert!(big.played_ms > 0.0);
    }

    #[test]
    fn ending_while_dry_counts_the_tail_and_timestamp_jumps_are_continuous() {
        let mut p = PlayerBuffer::new(0.1);
        for i in 0..10u32 {
            p.on_frame(i as f64 * 33.0, 1_000_000 + i * 33);
        }
        // Relay rebased timestamps to 0: no stall, media clock continues.
        for i in 10..20u32 {
            p.on_frame(i as f64 * 33.0, (i - 10) * 33);
        }
        assert_eq!(p.stalls, 0);
        p.finish(20.0 * 33.0 + 1000.0);
        assert_eq!(p.stalls, 1);
        assert!(
            p.stalled_ms > 900.0 && p.stalled_ms < 1000.0,
            "{}",
            p.stalled_ms
        );
    }
}
