//! The Periscope QoE study's player, as a pure model (no IO, no clocks): a pre-buffer P,
//! frames played in order in real time, a stall when the next frame has not arrived by
//! its play time (then P is buffered again), frames arriving after their slot discarded —
//! but for the next frame in order arriving while the previous one is, by the estimated frame
//! length, still on screen (timestamps stepping 33, 34, 33 ms): it plays at once, late.
//! Fed per frame with its arrival time, media timestamp and broadcaster's publish time,
//! all in ms on the session's clock (0 = the viewer's request), it yields the join time
//! (request to first played frame), stalls, and each played frame's buffering delay
//! (play minus arrival) and playback latency (play minus publish).

/// One frame leaving the buffer for the screen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Played {
    /// Time the frame waited in the buffer (play time minus arrival), ms.
    pub buffer_ms: f64,
    /// Broadcaster's clock to play time, ms (frames with a publish time only).
    pub latency_ms: Option<f64>,
}

/// What one frame's arrival did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Arrival {
    /// Playback began with this frame's arrival: request to first played frame, ms.
    pub joined_ms: Option<f64>,
    /// The buffer had run dry before this frame came (a stall began).
    pub stalled: bool,
    /// The frame came after its play slot and was dropped.
    pub discarded: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Filling the pre-buffer; `since_ms` counts as stalled unless this is the start-up.
    Buffering { since_ms: f64, initial: bool },
    /// Media time `media0_ms` was on screen at wall time `wall0_ms`.
    Playing { wall0_ms: f64, media0_ms: f64 },
}

/// Timestamp steps beyond this (relay rebase, wrap) continue the media clock by one frame.
const MAX_STEP_MS: f64 = 5000.0;

#[derive(Debug, Clone)]
pub struct Player {
    prebuffer_ms: f64,
    state: State,
    /// Continuous media clock: newest frame so far, last frame and its raw timestamp.
    media_ms: f64,
    last_media_ms: f64,
    last_ts: Option<u32>,
    frame_ms: f64,
    /// First media time not yet covered by a received frame.
    buffered_to_ms: f64,
    /// Where the buffer started filling (media time of its oldest queued frame).
    fill_from_ms: f64,
    /// Frames waiting for playback to (re)start: (media, arrival, publish) ms.
    queued: Vec<(f64, f64, Option<f64>)>,
    pub joined_ms: Option<f64>,
    pub played_ms: f64,
    pub stalled_ms: f64,
    pub stalls: u32,
    pub discarded: u64,
}

impl Player {
    pub fn new(prebuffer_seconds: f64) -> Self {
        Self {
            prebuffer_ms: prebuffer_seconds * 1000.0,
            state: State::Buffering {
                since_ms: 0.0,
                initial: true,
            },
            media_ms: 0.0,
            last_media_ms: 0.0,
            last_ts: None,
            frame_ms: 0.0,
            buffered_to_ms: 0.0,
            fill_from_ms: 0.0,
            queued: Vec::new(),
            joined_ms: None,
            played_ms: 0.0,
            stalled_ms: 0.0,
            stalls: 0,
            discarded: 0,
        }
    }

    /// A frame with media timestamp `ts` (ms) arrived at `now_ms`, published at
    /// `publish_ms` (same clock) when known; `play` gets every frame that starts playing.
    pub fn on_frame(
        &mut self,
        now_ms: f64,
        ts: u32,
        publish_ms: Option<f64>,
        play: &mut impl FnMut(Played),
    ) -> Arrival {
        let mut out = Arrival::default();
        let media = match self.last_ts {
            None => {
                self.fill_from_ms = 0.0;
                0.0
            }
            Some(last) => {
                let step = ts.wrapping_sub(last) as i32 as f64;
                if step.abs() < MAX_STEP_MS {
                    if step > 0.0 && step < 200.0 {
                        self.frame_ms = step;
                    }
                    self.last_media_ms + step
                } else {
                    self.media_ms + self.frame_ms
                }
            }
        };
        // The next frame in order (newer than any so far), not one overtaken by others.
        let next_in_order = self.last_ts.is_none() || media > self.media_ms;
        self.last_ts = Some(ts);
        self.last_media_ms = media;
        self.media_ms = self.media_ms.max(media);
        if let State::Playing {
            wall0_ms,
            media0_ms,
        } = self.state
        {
            let position = media0_ms + (now_ms - wall0_ms);
            if position > self.buffered_to_ms {
                // Ran dry at the end of what had arrived: a stall until P is buffered again.
                let dry_at = wall0_ms + (self.buffered_to_ms - media0_ms);
                self.played_ms += dry_at - wall0_ms;
                self.stalls += 1;
                out.stalled = true;
                self.state = State::Buffering {
                    since_ms: dry_at,
                    initial: false,
                };
                self.fill_from_ms = self.buffered_to_ms;
            }
        }
        match self.state {
            State::Playing {
                wall0_ms,
                media0_ms,
            } => {
                let position = media0_ms + (now_ms - wall0_ms);
                if media < position && next_in_order {
                    // Its slot passed while the previous frame was still, by the estimate of
                    // frame length, on screen (33 ms after a 34 ms step): a real player shows
                    // it now, late, with the picture held meanwhile — no stall, no discard.
                    let late = position - media;
                    self.played_ms += late;
                    self.state = State::Playing {
                        wall0_ms: wall0_ms + late,
                        media0_ms,
                    };
                    play(played(now_ms, now_ms, publish_ms));
                } else if media < position {
                    out.discarded = true;
                    self.discarded += 1;
                } else {
                    let at = wall0_ms + (media - media0_ms);
                    play(played(at, now_ms, publish_ms));
                }
            }
            State::Buffering { since_ms, initial } => {
                if media < self.fill_from_ms {
                    // Older than what was on screen when the stall began.
                    out.discarded = true;
                    self.discarded += 1;
                } else {
                    self.queued.push((media, now_ms, publish_ms));
                }
                self.buffered_to_ms = self.buffered_to_ms.max(media + self.frame_ms);
                if self.buffered_to_ms - self.fill_from_ms >= self.prebuffer_ms {
                    if initial {
                        self.joined_ms = Some(now_ms);
                        out.joined_ms = Some(now_ms);
                    } else {
                        self.stalled_ms += now_ms - since_ms;
                    }
                    let media0 = self.fill_from_ms;
                    self.state = State::Playing {
                        wall0_ms: now_ms,
                        media0_ms: media0,
                    };
                    for (m, arrived, publish) in self.queued.drain(..) {
                        play(played(now_ms + (m - media0), arrived, publish));
                    }
                }
                return out;
            }
        }
        self.buffered_to_ms = self.buffered_to_ms.max(media + self.frame_ms);
        out
    }

    /// The session ended at `now_ms`: close the open play or stall period.
    pub fn finish(&mut self, now_ms: f64) {
        match self.state {
            State::Playing {
                wall0_ms,
                media0_ms,
            } => {
                let dry_at = wall0_ms + (self.buffered_to_ms - media0_ms);
                if dry_at < now_ms {
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
            } => self.stalled_ms += (now_ms - since_ms).max(0.0),
            State::Buffering { initial: true, .. } => {}
        }
        self.state = State::Buffering {
            since_ms: now_ms,
            initial: true,
        };
        self.queued.clear();
    }
}

fn played(at_ms: f64, arrived_ms: f64, publish_ms: Option<f64>) -> Played {
    Played {
        buffer_ms: at_ms - arrived_ms,
        latency_ms: publish_ms.map(|p| at_ms - p),
    }
}

/// Running mean and variance (Welford) of a session's frame inter-arrival times.
#[derive(Debug, Clone, Default)]
pub struct Jitter {
    last_ms: Option<f64>,
    n: u64,
    mean: f64,
    m2: f64,
}

impl Jitter {
    pub fn on_arrival(&mut self, now_ms: f64) {
        if let Some(last) = self.last_ms {
            let x = now_ms - last;
            self.n += 1;
            let d = x - self.mean;
            self.mean += d / self.n as f64;
            self.m2 += d * (x - self.mean);
        }
        self.last_ms = Some(now_ms);
    }

    /// Standard deviation of inter-arrival, ms (needs two intervals).
    pub fn std_dev_ms(&self) -> Option<f64> {
        (self.n >= 2).then(|| (self.m2 / self.n as f64).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds frames (arrival ms, media ts ms) published at `publish(arrival, ts)`;
    /// returns the player, every played frame and what each arrival did.
    fn feed_with(
        p: f64,
        frames: &[(f64, u32)],
        publish: impl Fn(f64, u32) -> f64,
    ) -> (Player, Vec<Played>, Vec<Arrival>) {
        let mut player = Player::new(p);
        let mut out = Vec::new();
        let arrivals = frames
            .iter()
            .map(|&(at, ts)| player.on_frame(at, ts, Some(publish(at, ts)), &mut |x| out.push(x)))
            .collect();
        (player, out, arrivals)
    }

    /// Each frame published `delivery` ms before it arrives.
    fn feed(p: f64, frames: &[(f64, u32)], delivery: f64) -> (Player, Vec<Played>, Vec<Arrival>) {
        feed_with(p, frames, |at, _| at - delivery)
    }

    fn smooth(n: u32, from_ms: f64) -> Vec<(f64, u32)> {
        (0..n)
            .map(|i| (from_ms + i as f64 * 40.0, i * 40))
            .collect()
    }

    #[test]
    fn smooth_arrival_joins_after_the_prebuffer_and_never_stalls() {
        // First frame 300 ms after the request, 25 fps, 100 ms delivery latency.
        let frames = smooth(250, 300.0);
        let (mut player, played, arrivals) = feed(1.0, &frames, 100.0);
        // 1 s buffered once the 25th frame (media 960 + 40) is in: 300 + 24 * 40.
        assert_eq!(player.joined_ms, Some(1260.0));
        assert_eq!(arrivals[24].joined_ms, Some(1260.0));
        assert_eq!(arrivals.iter().filter(|a| a.joined_ms.is_some()).count(), 1);
        player.finish(300.0 + 250.0 * 40.0);
        assert_eq!(
            (player.stalls, player.stalled_ms, player.discarded),
            (0, 0.0, 0)
        );
        // Played from the join to the session's end (the buffer never ran dry).
        assert!((player.played_ms - (10_300.0 - 1260.0)).abs() < 1e-6);
        assert_eq!(played.len(), 250);
        // Every frame waits P - one frame in the buffer (it counts once fully arrived),
        // so playback latency = delivery + that wait.
        for p in &played {
            assert!((p.buffer_ms - 960.0).abs() < 1e-6, "{p:?}");
            assert!((p.latency_ms.expect("stamped") - 1060.0).abs() < 1e-6);
        }
    }

    #[test]
    fn a_gap_longer_than_the_buffer_is_one_stall_of_the_right_length() {
        // 4 s smooth, then nothing for 3 s (held back on the way), then smooth again;
        // every frame published 50 ms before its media time.
        let mut frames = smooth(100, 0.0);
        let resume = 99.0 * 40.0 + 3000.0;
        frames.extend((100..200u32).map(|i| (resume + (i - 100) as f64 * 40.0, i * 40)));
        let (mut player, played, arrivals) = feed_with(0.5, &frames, |_, ts| ts as f64 - 50.0);
        player.finish(resume + 100.0 * 40.0);
        assert_eq!(player.stalls, 1);
        assert_eq!(arrivals.iter().filter(|a| a.stalled).count(), 1);
        // Joined at 480 ms (frame 12 completes 0.5 s), played media 0..4000 until wall
        // 4480; the next frame came at 6960: stalled until 0.5 s more was buffered (frame
        // 112, 12 frames later).
        assert_eq!(player.joined_ms, Some(480.0));
        let dry_at = 480.0 + 4000.0;
        let refilled = resume + 12.0 * 40.0;
        assert!(
            (player.stalled_ms - (refilled - dry_at)).abs() < 1e-6,
            "{} vs {}",
            player.stalled_ms,
            refilled - dry_at
        );
        assert_eq!(played.len(), 200);
        // After the stall the player is further behind live: latency grew by the stall
        // (in-order playback never catches up).
        let before = played[50].latency_ms.expect("stamped");
        let after = played[150].latency_ms.expect("stamped");
        assert!((after - before - player.stalled_ms).abs() < 1e-6);
        // A pre-buffer longer than the gap rides it out.
        let (mut big, _, _) = feed_with(4.0, &frames, |_, ts| ts as f64 - 50.0);
        big.finish(resume + 100.0 * 40.0);
        assert_eq!((big.stalls, big.stalled_ms), (0, 0.0));
    }

    #[test]
    fn late_frames_are_discarded_not_played() {
        let mut frames = smooth(50, 0.0);
        // A frame of media 400 ms arriving at 3 s: its slot passed long ago.
        frames.push((1990.0, 400));
        frames.extend((50..60u32).map(|i| (2000.0 + (i - 50) as f64 * 40.0, i * 40)));
        let (player, played, arrivals) = feed(0.2, &frames, 10.0);
        assert_eq!(player.discarded, 1);
        assert!(arrivals[50].discarded);
        assert_eq!(played.len(), 60);
        assert_eq!(player.stalls, 0);
    }

    #[test]
    fn the_next_frame_a_fraction_of_a_frame_late_plays_late_not_discarded() {
        // 30 fps as encoders stamp it (33 and 34 ms steps), P = 0.1 s: media 0, 33, 66, 100
        // arrive by 30 ms, the player starts at 30 (100 + 34 ms buffered). Media 133's slot
        // is 163; it arrives at 163.5, while the 34 ms estimate still shows media 100 (to
        // 164). It plays then, 0.5 ms late, and the clock moves with it; the rest arrive
        // 5 ms before their (new) slots.
        let mut frames = vec![(0.0, 0), (10.0, 33), (20.0, 66), (30.0, 100), (163.5, 133)];
        frames.extend([166u32, 200, 233, 266, 300].map(|ts| (30.5 + f64::from(ts) - 5.0, ts)));
        let (mut player, played, arrivals) = feed(0.1, &frames, 0.0);
        assert_eq!(player.joined_ms, Some(30.0));
        assert!(
            !arrivals[4].discarded && !arrivals[4].stalled,
            "{:?}",
            arrivals[4]
        );
        assert_eq!((player.discarded, player.stalls), (0, 0));
        assert_eq!(played.len(), frames.len());
        // Media 133 waited no time in the buffer; the next ones wait their 5 ms.
        assert!(played[4].buffer_ms.abs() < 1e-9, "{:?}", played[4]);
        assert!((played[5].buffer_ms - 5.0).abs() < 1e-9, "{:?}", played[5]);
        // Played time still adds up: from the start at 30 to media 300 + 33 on screen.
        player.finish(30.5 + 333.0);
        assert_eq!(player.stalls, 0);
        assert!(
            (player.played_ms - 333.5).abs() < 1e-6,
            "{}",
            player.played_ms
        );
    }

    #[test]
    fn ending_while_dry_counts_the_tail_as_a_stall() {
        let (mut player, _, _) = feed(0.2, &smooth(10, 0.0), 0.0);
        // Buffered to media 400, playing since 160 from media 0: dry at 560.
        player.finish(1560.0);
        assert_eq!(player.stalls, 1);
        assert!((player.stalled_ms - 1000.0).abs() < 1e-6);
        assert!((player.played_ms - 400.0).abs() < 1e-6);
    }

    #[test]
    fn ending_while_rebuffering_counts_the_stall_up_to_the_end() {
        // 1 s smooth, then one frame after a 2 s gap (a stall begins), then the end
        // before P is buffered again.
        let mut frames = smooth(25, 0.0);
        frames.push((3000.0, 25 * 40));
        let (mut player, _, arrivals) = feed(0.2, &frames, 0.0);
        assert!(arrivals[25].stalled);
        // Joined at 160 (frame 4 completes 0.2 s), buffered to media 1000: dry at 1160.
        assert_eq!(player.joined_ms, Some(160.0));
        player.finish(3500.0);
        assert_eq!(player.stalls, 1);
        assert!((player.stalled_ms - (3500.0 - 1160.0)).abs() < 1e-6);
        assert!((player.played_ms - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn timestamp_jumps_keep_the_media_clock_continuous() {
        // 33 ms frames; after 10 the relay rebases timestamps from 1 000 000 to just below
        // u32::MAX (a jump: it counts as one frame), and 3 frames later they wrap past
        // u32::MAX (a 33 ms step like the others): no stall, nothing discarded.
        let mut frames: Vec<(f64, u32)> = (0..10u32)
            .map(|i| (i as f64 * 33.0, 1_000_000 + i * 33))
            .collect();
        let near_wrap = u32::MAX - 100;
        frames
            .extend((10..30u32).map(|i| (i as f64 * 33.0, near_wrap.wrapping_add((i - 10) * 33))));
        assert!(frames[14].1 < frames[13].1, "the timestamps wrap");
        let (mut player, played, _) = feed(0.1, &frames, 0.0);
        assert_eq!((player.stalls, player.discarded), (0, 0));
        assert_eq!(played.len(), 30);
        // Joined at 99 (frame 3 completes 0.1 s of media); media 0..990 in all.
        assert_eq!(player.joined_ms, Some(99.0));
        // Ending 1 s after the last frame: the tail beyond the buffer is one stall.
        player.finish(30.0 * 33.0 + 1000.0);
        assert_eq!(player.stalls, 1);
        let dry_at = 99.0 + 30.0 * 33.0;
        assert!(
            (player.stalled_ms - (30.0 * 33.0 + 1000.0 - dry_at)).abs() < 1e-6,
            "{}",
            player.stalled_ms
        );
    }

    #[test]
    fn jitter_is_the_std_dev_of_inter_arrival() {
        let mut j = Jitter::default();
        for t in [0.0, 40.0, 80.0, 120.0] {
            j.on_arrival(t);
        }
        assert_eq!(j.std_dev_ms(), Some(0.0));
        let mut j = Jitter::default();
        for t in [0.0, 20.0, 80.0, 100.0, 160.0] {
            j.on_arrival(t);
        }
        // Intervals 20, 60, 20, 60: mean 40, std-dev 20.
        assert!((j.std_dev_ms().expect("4 intervals") - 20.0).abs() < 1e-9);
    }
}
