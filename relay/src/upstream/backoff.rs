//! Reconnect delay schedule: exponential, capped, with optional deterministic jitter.

use std::time::Duration;

/// How long to wait before reconnect attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffPolicy {
    /// Delay after the first failed attempt.
    pub initial: Duration,
    /// Multiplier between consecutive failures.
    pub factor: f64,
    /// Upper bound on any delay.
    pub max: Duration,
    /// Fraction (0..=1) of the delay that is randomised, so many edges that lost the same
    /// parent do not reconnect in lockstep.
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_millis(250),
            factor: 2.0,
            max: Duration::from_secs(10),
            jitter: 0.2,
        }
    }
}

impl BackoffPolicy {
    /// Delay before the next attempt after `failures` consecutive failed attempts
    /// (`failures == 0` means the previous connection was healthy: retry at once).
    /// `random` is any value in 0..1 (the caller supplies it so this stays pure).
    pub fn delay(&self, failures: u32, random: f64) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let max = self.max.as_secs_f64();
        let exp = self
            .factor
            .max(1.0)
            .powi(failures.saturating_sub(1).min(64) as i32);
        let base = (self.initial.as_secs_f64() * exp).min(max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        // Spread the delay over [base * (1 - jitter), base].
        let scaled = base * (1.0 - jitter * random.clamp(0.0, 1.0));
        Duration::from_secs_f64(scaled.clamp(0.0, max))
    }
}

/// A cheap pseudo-random number in 0..1 for jitter (not for anything security related).
pub fn jitter_sample() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> BackoffPolicy {
        BackoffPolicy {
            jitter: 0.0,
            ..BackoffPolicy::default()
        }
    }

    #[test]
    fn healthy_connection_retries_at_once() {
        assert_eq!(no_jitter().delay(0, 0.5), Duration::ZERO);
    }

    #[test]
    fn doubles_then_caps() {
        let p = no_jitter();
        let ms: Vec<u128> = (1..=8).map(|n| p.delay(n, 0.0).as_millis()).collect();
        assert_eq!(ms, vec![250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(p.delay(u32::MAX, 0.0), Duration::from_secs(10));
    }

    #[test]
    fn jitter_only_shortens_within_bounds() {
        let p = BackoffPolicy::default();
        for r in [0.0, 0.3, 0.999, 5.0, -1.0] {
            let d = p.delay(3, r);
            assert!(d <= Duration::from_millis(1000), "{d:?}");
            assert!(d >= Duration::from_millis(800), "{d:?}");
        }
    }

    #[test]
    fn sample_is_in_unit_interval() {
        for _ in 0..100 {
            let s = jitter_sample();
            assert!((0.0..1.0).contains(&s));
        }
    }
}
