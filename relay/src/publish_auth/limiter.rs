//! Slows down repeated failed publishes from one address: the first few failures within a
//! window are answered at once, later ones after a delay that doubles up to a cap. Pure: the
//! caller passes the time and sleeps.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterSettings {
    /// Failures counted together from an address's first one.
    pub window: Duration,
    /// Failures within a window answered without delay.
    pub free: u32,
    /// Delay of the first failure past `free`; each further one doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Most addresses remembered (bounds memory under a spread-out attack).
    pub max_addresses: usize,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        LimiterSettings {
            window: Duration::from_secs(60),
            free: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_addresses: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

#[derive(Debug, Default)]
pub struct FailureLimiter {
    settings: LimiterSettings,
    by_address: HashMap<IpAddr, Failures>,
}

impl FailureLimiter {
    pub fn new(settings: LimiterSettings) -> Self {
        FailureLimiter {
            settings,
            by_address: HashMap::new(),
        }
    }

    /// Records a failure from `ip` at `now`; returns how long to wait before answering it.
    pub fn failure(&mut self, ip: IpAddr, now: Instant) -> Duration {
        let window = self.settings.window;
        let expired = |f: &Failures| now.saturating_duration_since(f.since) >= window;
        if !self.by_address.contains_key(&ip)
            && self.by_address.len() >= self.settings.max_addresses
        {
            self.by_address.retain(|_, f| !expired(f));
            if self.by_address.len() >= self.settings.max_addresses {
                // Still full: forget the oldest record rather than grow.
                if let Some(oldest) = self
                    .by_address
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(a, _)| *a)
                {
                    self.by_address.remove(&oldest);
                }
            }
        }
        let entry = self.by_address.entry(ip).or_insert(Failures {
            since: now,
            count: 0,
        });
        if expired(entry) {
            *entry = Failures {
                since: now,
                count: 0,
            };
        }
        entry.count = entry.count.saturating_add(1);
        let count = entry.count;
        self.delay_for(count)
    }

    /// A successful publish from `ip` forgets its failures.
    pub fn success(&mut self, ip: IpAddr) {
        self.by_address.remove(&ip);
    }

    fn delay_for(&self, count: u32) -> Duration {
        let s = &self.settings;
        if count <= s.free {
            return Duration::ZERO;
        }
        let doublings = (count - s.free - 1).min(16);
        s.base_delay.saturating_mul(1 << doublings).min(s.max_delay)
    }

    pub fn addresses(&self) -> usize {
        self.by_address.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn five_failures_a_minute_are_free_then_the_delay_doubles_up_to_the_cap() {
        let mut l = FailureLimiter::new(LimiterSettings::default());
        let t0 = Instant::now();
        let delays: Vec<_> = (0..12)
            .map(|i| l.failure(ip(1), t0 + ms(i * 100)))
            .collect();
        assert_eq!(&delays[..5], &[Duration::ZERO; 5]);
        assert_eq!(
            &delays[5..],
            &[
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(10_000),
                ms(10_000)
            ]
        );
        // Another address is not slowed down by the first one's failures.
        assert_eq!(l.failure(ip(2), t0), Duration::ZERO);
    }

    #[test]
    fn the_count_starts_again_after_the_window_and_after_a_success() {
        let mut l = FailureLimiter::new(LimiterSettings::default());
        let t0 = Instant::now();
        for _ in 0..6 {
            l.failure(ip(1), t0);
        }
        assert_eq!(
            l.failure(ip(1), t0 + Duration::from_secs(61)),
            Duration::ZERO
        );
        for _ in 0..6 {
            l.failure(ip(3), t0);
        }
        l.success(ip(3));
        assert_eq!(l.failure(ip(3), t0), Duration::ZERO);
    }

    #[test]
    fn memory_stays_bounded_under_many_addresses() {
        let mut l = FailureLimiter::new(LimiterSettings {
            max_addresses: 3,
            ..LimiterSettings::default()
        });
        let t0 = Instant::now();
        for i in 0..10u8 {
            l.failure(ip(i), t0 + ms(u64::from(i)));
        }
        assert_eq!(l.addresses(), 3);
        // The newest addresses are remembered.
        for _ in 0..5 {
            l.failure(ip(9), t0);
        }
        assert!(l.failure(ip(9), t0) > Duration::ZERO);
    }
}
