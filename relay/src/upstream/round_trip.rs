//! The round trip to an upstream, for how long a ping may go unanswered before the upstream
//! is declared hung.
//!
//! The handshake's round trip alone is a poor guide: a connection set up through a stalled
//! link measures the stall (seconds), and the hung-upstream timeout, which allows twice the
//! round trip so a far upstream is not taken for a hung one, kept that allowance for the
//! connection's life (a partition after a stall was found 4.7 s in instead of 0.9 s,
//! docs/RELIABILITY.md). So the relay also pings its upstream once a second while playing
//! (18 bytes each way) and uses the largest of the last [`SAMPLES`] round trips: an old stall
//! is forgotten within a few seconds, a path that is really slow keeps several slow samples.

use std::collections::VecDeque;
use std::time::Duration;

/// How many recent round trips the estimate looks at.
pub const SAMPLES: usize = 3;

/// Recent round trips to one upstream (the handshake's first, then ping answers).
#[derive(Clone, Debug)]
pub struct RoundTrip {
    recent: VecDeque<Duration>,
}

impl RoundTrip {
    /// Starts from the handshake's round trip.
    pub fn new(handshake: Duration) -> Self {
        let mut recent = VecDeque::with_capacity(SAMPLES);
        recent.push_back(handshake);
        RoundTrip { recent }
    }

    /// A ping was answered `took` after it was sent.
    pub fn sample(&mut self, took: Duration) {
        if self.recent.len() == SAMPLES {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
    }

    /// The round trip to allow for: the largest recent one.
    pub fn estimate(&self) -> Duration {
        self.recent.iter().copied().max().unwrap_or_default()
    }
}

/// How long after it was sent a ping stamped `stamp_ms` (milliseconds since the connection's
/// ping epoch) was answered, at `now_ms` on the same clock; `None` for a stamp from the future
/// (not one of ours).
pub fn answer_delay(stamp_ms: u32, now_ms: u32) -> Option<Duration> {
    now_ms
        .checked_sub(stamp_ms)
        .map(|ms| Duration::from_millis(u64::from(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_slow_handshake_is_forgotten_after_three_quick_answers() {
        let mut rt = RoundTrip::new(ms(2_000));
        assert_eq!(rt.estimate(), ms(2_000));
        rt.sample(ms(1));
        rt.sample(ms(2));
        assert_eq!(rt.estimate(), ms(2_000), "still within the last three");
        rt.sample(ms(1));
        assert_eq!(rt.estimate(), ms(2));
    }

    #[test]
    fn a_far_upstream_keeps_its_allowance_despite_one_quick_answer() {
        let mut rt = RoundTrip::new(ms(300));
        for took in [310, 290, 40, 305] {
            rt.sample(ms(took));
        }
        assert_eq!(rt.estimate(), ms(305));
        rt.sample(ms(20));
        assert_eq!(rt.estimate(), ms(305));
    }

    #[test]
    fn answer_delay_is_measured_on_the_stamp_clock() {
        assert_eq!(answer_delay(1_000, 1_250), Some(ms(250)));
        assert_eq!(answer_delay(1_000, 1_000), Some(ms(0)));
        assert_eq!(answer_delay(1_300, 1_250), None);
    }
}
