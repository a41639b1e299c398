//! Retrying an upstream that answers but does not have the stream (yet).
//!
//! An upstream that completes the TCP connect, the RTMP handshake and the `connect`, then
//! answers `play` with `NetStream.Play.StreamNotFound`, is alive: what is missing is the
//! stream, which comes back the moment a publisher (re)publishes there. That is exactly what
//! happens after an origin is replaced: for the 1-2 s between the replacement starting and the
//! publisher's reconnect every attempt is told "not found", and counting those as failures grew
//! the exponential backoff to 4-8 s just as the stream returned (docs/RELIABILITY.md, "The
//! origin dies"). So such answers are retried on a short jittered interval that does not grow
//! the failure count, for a bounded time only: after [`AbsentRetryPolicy::fast_for`] of absence
//! they count as failures again and the ordinary backoff (up to 10 s) takes over, so a stream
//! that is gone for good does not keep a live upstream answering several plays a second.
//! With several upstreams the short delay also applies next to one that answered so (a dead
//! second upstream in the rotation would otherwise grow the backoff before each return to it).
//!
//! Cost of the fast window with the defaults: at most one attempt every 250-500 ms (2.7 a second
//! on average) per puller for 10 s, about 27 attempts, each a TCP connect, a 3 KB handshake each
//! way and three commands, refused before any media is read; against the ordinary backoff's 5
//! attempts in the same 10 s.
//! After the window: the same schedule as before this policy existed.

use std::time::Duration;

use tokio::time::Instant;

/// How an upstream that answered without the stream is retried.
#[derive(Clone, Debug, PartialEq)]
pub struct AbsentRetryPolicy {
    /// Longest delay between two attempts while the stream has been absent for less than
    /// `fast_for`.
    pub interval: Duration,
    /// Fraction (0..=1) of `interval` that is randomised (the delay is spread over
    /// `[interval * (1 - jitter), interval]`), so edges that lost the same origin do not
    /// knock on its replacement in lockstep.
    pub jitter: f64,
    /// How long after the first "not found" the short interval applies; afterwards such
    /// answers count as failures and back off like any other.
    pub fast_for: Duration,
}

impl Default for AbsentRetryPolicy {
    fn default() -> Self {
        AbsentRetryPolicy {
            interval: Duration::from_millis(500),
            jitter: 0.5,
            fast_for: Duration::from_secs(10),
        }
    }
}

impl AbsentRetryPolicy {
    /// The delay before the next attempt after an upstream said it lacks the stream, when the
    /// stream has been absent for `absent_for`: `Some` within the fast window, `None` when
    /// the attempt should count as an ordinary failure. `random` is any value in 0..1.
    pub fn delay(&self, absent_for: Duration, random: f64) -> Option<Duration> {
        if absent_for >= self.fast_for || self.interval.is_zero() {
            return None;
        }
        let jitter = self.jitter.clamp(0.0, 1.0);
        let base = self.interval.as_secs_f64();
        Some(Duration::from_secs_f64(
            base * (1.0 - jitter * random.clamp(0.0, 1.0)),
        ))
    }
}

/// How one attempt on an upstream went, as far as the absence of the stream is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Playback started (whatever happened later).
    Played,
    /// The upstream answered `play` with "stream not found".
    StreamAbsent,
    /// Anything else that ended the attempt before playback: refused, timed out, hung,
    /// closed, refused for lack of room.
    Unreachable,
}

/// Since when the stream has been absent, and which upstreams said so: from the first "not
/// found" after the last attempt that played. Unreachable attempts in between neither start nor
/// end the absence, so alternating between a dead upstream and one without the stream cannot
/// restart the fast window.
#[derive(Clone, Debug, Default)]
pub struct AbsenceClock {
    since: Option<Instant>,
    /// Upstreams (indices) that answered "not found" during this absence.
    answered: Vec<usize>,
}

impl AbsenceClock {
    /// Records how the attempt on `upstream` that ended at `now` went.
    pub fn record(&mut self, upstream: usize, outcome: AttemptOutcome, now: Instant) {
        match outcome {
            AttemptOutcome::Played => {
                self.since = None;
                self.answered.clear();
            }
            AttemptOutcome::Unreachable => {}
            AttemptOutcome::StreamAbsent => {
                self.since.get_or_insert(now);
                if !self.answered.contains(&upstream) {
                    self.answered.push(upstream);
                }
            }
        }
    }

    /// Whether `upstream` answered "not found" during this absence.
    pub fn answered(&self, upstream: usize) -> bool {
        self.answered.contains(&upstream)
    }

    /// Whether the stream has been absent for less than the policy's fast window.
    pub fn fast_window_open(&self, policy: &AbsentRetryPolicy, now: Instant) -> bool {
        self.since.is_some_and(|since| {
            policy
                .delay(now.saturating_duration_since(since), 0.0)
                .is_some()
        })
    }

    /// The short delay before the next attempt, after one on `last` and before one on `next`
    /// at `now`, when either answered "not found" within the policy's fast window; `None`:
    /// the ordinary backoff applies. With a second upstream that is down, the rotation
    /// between the two keeps short delays, so the dead one's failures do not hold back the
    /// upstream that is about to get the stream.
    pub fn fast_delay(
        &self,
        policy: &AbsentRetryPolicy,
        last: usize,
        next: usize,
        now: Instant,
        random: f64,
    ) -> Option<Duration> {
        let since = self.since?;
        if !(self.answered.contains(&last) || self.answered.contains(&next)) {
            return None;
        }
        policy.delay(now.saturating_duration_since(since), random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_the_window_the_delay_is_short_and_bounded() {
        let p = AbsentRetryPolicy::default();
        for absent_ms in [0, 300, 5_000, 9_999] {
            for r in [0.0, 0.5, 0.999, 7.0, -3.0] {
                let d = p
                    .delay(Duration::from_millis(absent_ms), r)
                    .expect("fast window");
                assert!(
                    d >= Duration::from_millis(250) && d <= Duration::from_millis(500),
                    "{absent_ms} ms absent, random {r}: {d:?}"
                );
            }
        }
        // The jitter spreads the attempts.
        assert_ne!(p.delay(Duration::ZERO, 0.0), p.delay(Duration::ZERO, 0.9));
    }

    #[test]
    fn after_the_window_the_ordinary_backoff_takes_over() {
        let p = AbsentRetryPolicy::default();
        assert_eq!(p.delay(Duration::from_secs(10), 0.5), None);
        assert_eq!(p.delay(Duration::from_secs(3600), 0.5), None);
        let off = AbsentRetryPolicy {
            interval: Duration::ZERO,
            ..p
        };
        assert_eq!(off.delay(Duration::ZERO, 0.5), None);
    }

    #[test]
    fn at_most_forty_attempts_in_the_window() {
        // Worst case (every delay at its shortest): the fast window's cost per puller.
        let p = AbsentRetryPolicy::default();
        let (mut t, mut attempts) = (Duration::ZERO, 1);
        while let Some(d) = p.delay(t, 0.999_999) {
            t += d;
            attempts += 1;
        }
        assert!(attempts <= 41, "{attempts}");
    }

    #[test]
    fn absence_runs_from_the_first_not_found_until_a_play() {
        let p = AbsentRetryPolicy::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut c = AbsenceClock::default();
        c.record(0, AttemptOutcome::Unreachable, at(0));
        assert!(!c.fast_window_open(&p, at(0)));
        assert_eq!(c.fast_delay(&p, 0, 0, at(0), 0.0), None);
        c.record(0, AttemptOutcome::StreamAbsent, at(1_000));
        assert!(c.answered(0) && !c.answered(1));
        // Refused attempts in between do not restart the clock: the window closes 10 s after
        // the first "not found".
        c.record(0, AttemptOutcome::Unreachable, at(5_000));
        c.record(0, AttemptOutcome::StreamAbsent, at(8_000));
        assert!(c.fast_window_open(&p, at(10_999)));
        assert!(c.fast_delay(&p, 0, 0, at(10_999), 0.0).is_some());
        assert!(!c.fast_window_open(&p, at(11_000)));
        assert_eq!(c.fast_delay(&p, 0, 0, at(11_000), 0.0), None);
        // The stream played: the next absence starts afresh.
        c.record(0, AttemptOutcome::Played, at(12_000));
        assert!(!c.answered(0));
        assert_eq!(c.fast_delay(&p, 0, 0, at(12_000), 0.0), None);
        c.record(0, AttemptOutcome::StreamAbsent, at(20_000));
        assert_eq!(
            c.fast_delay(&p, 0, 0, at(29_000), 0.0),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn a_dead_second_upstream_does_not_slow_the_rotation() {
        // Upstream 0 answers without the stream, upstream 1 is down: short delays both after
        // 0 (before 1) and after 1 (before 0); none while only dead upstreams were seen.
        let p = AbsentRetryPolicy::default();
        let t0 = Instant::now();
        let mut c = AbsenceClock::default();
        c.record(1, AttemptOutcome::Unreachable, t0);
        assert_eq!(c.fast_delay(&p, 1, 0, t0, 0.0), None);
        c.record(0, AttemptOutcome::StreamAbsent, t0);
        let t1 = t0 + Duration::from_secs(2);
        assert!(c.fast_delay(&p, 0, 1, t1, 0.0).is_some());
        c.record(1, AttemptOutcome::Unreachable, t1);
        assert!(c.fast_delay(&p, 1, 0, t1, 0.0).is_some());
        // A third upstream never seen answering, between two dead ones: ordinary backoff.
        assert_eq!(c.fast_delay(&p, 1, 2, t1, 0.0), None);
    }
}
