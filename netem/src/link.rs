//! What a link does to a chunk of bytes: when a chunk that reaches a link at a given instant
//! leaves its far end. Pure (time and randomness come in as arguments), so the emulation's
//! arithmetic is tested without sockets or clocks.

use std::time::{Duration, Instant};

use crate::topology::LinkParams;

/// A link's state at run time: its parameters plus stalls, partitions and the transmit
/// queue of each direction.
#[derive(Debug, Clone)]
pub struct LinkState {
    pub params: LinkParams,
    /// Bytes reaching the link before this instant wait for it (a stall holds, never drops:
    /// TCP would retransmit what a dark link lost).
    pub stalled_until: Option<Instant>,
    /// Partitioned: nothing crosses until the partition ends.
    pub down: bool,
    /// When each direction's transmitter is free again (a shared FIFO for the rate cap):
    /// index 0 is a→b, 1 is b→a.
    next_free: [Option<Instant>; 2],
    /// Incremented by every reset; a connection whose path crosses the link and that saw an
    /// older value resets itself.
    pub resets: u64,
}

impl LinkState {
    pub fn new(params: LinkParams) -> Self {
        Self {
            params,
            stalled_until: None,
            down: false,
            next_free: [None; 2],
            resets: 0,
        }
    }

    /// When a chunk of `len` bytes reaching the link at `at` (going a→b when `forward`)
    /// comes out at the far end, or None while the link is partitioned. `unit` in [0, 1)
    /// draws the jitter. Reserves the transmitter when the link has a rate cap.
    pub fn pass(&mut self, forward: bool, at: Instant, len: usize, unit: f64) -> Option<Instant> {
        if self.down {
            return None;
        }
        let mut t = at;
        if let Some(until) = self.stalled_until {
            t = t.max(until);
        }
        if let Some(rate) = self.params.rate {
            let slot = &mut self.next_free[usize::from(!forward)];
            let start = slot.map_or(t, |free| free.max(t));
            let send = Duration::from_secs_f64(len as f64 * 8.0 / rate.bits_per_second as f64);
            *slot = Some(start + send);
            t = start + send;
        }
        Some(t + self.delay_sample(unit))
    }

    /// delay ± jitter, uniform, from `unit` in [0, 1).
    fn delay_sample(&self, unit: f64) -> Duration {
        let LinkParams { delay, jitter, .. } = self.params;
        if jitter.is_zero() {
            return delay;
        }
        let offset = jitter.as_secs_f64() * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
    }
}

/// A small fast generator for jitter draws (xorshift64*): jitter needs spread, not secrecy.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Rate;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delay_only() {
        let mut l = LinkState::new(LinkParams {
            delay: ms(80),
            ..Default::default()
        });
        let t0 = Instant::now();
        assert_eq!(l.pass(true, t0, 1000, 0.3), Some(t0 + ms(80)));
        // Back to back chunks are not serialized without a rate: the link has no queue.
        assert_eq!(l.pass(true, t0, 1_000_000, 0.3), Some(t0 + ms(80)));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut l = LinkState::new(LinkParams {
            delay: ms(30),
            jitter: ms(10),
            ..Default::default()
        });
        let t0 = Instant::now();
        let mut rng = Jitter::new(7);
        let (mut lo, mut hi) = (ms(1000), ms(0));
        for _ in 0..10_000 {
            let d = l.pass(true, t0, 100, rng.unit()).unwrap() - t0;
            lo = lo.min(d);
            hi = hi.max(d);
        }
        assert!(lo >= ms(20) && lo < ms(21), "{lo:?}");
        assert!(hi <= ms(40) && hi > ms(39), "{hi:?}");
    }

    #[test]
    fn rate_queues_per_direction() {
        let mut l = LinkState::new(LinkParams {
            delay: ms(10),
            rate: Some(Rate {
                bits_per_second: 8_000_000,
            }),
            ..Default::default()
        });
        let t0 = Instant::now();
        // 1 MB/s: 10 kB takes 10 ms to send.
        assert_eq!(l.pass(true, t0, 10_000, 0.0), Some(t0 + ms(20)));
        assert_eq!(l.pass(true, t0, 10_000, 0.0), Some(t0 + ms(30)));
        // The other direction has its own transmitter.
        assert_eq!(l.pass(false, t0, 10_000, 0.0), Some(t0 + ms(20)));
        // An idle transmitter starts at once.
        assert_eq!(l.pass(true, t0 + ms(500), 10_000, 0.0), Some(t0 + ms(520)));
    }

    #[test]
    fn stall_holds_and_partition_stops() {
        let mut l = LinkState::new(LinkParams {
            delay: ms(80),
            ..Default::default()
        });
        let t0 = Instant::now();
        l.stalled_until = Some(t0 + ms(2000));
        assert_eq!(l.pass(true, t0 + ms(5), 10, 0.5), Some(t0 + ms(2080)));
        assert_eq!(l.pass(true, t0 + ms(2500), 10, 0.5), Some(t0 + ms(2580)));
        l.down = true;
        assert_eq!(l.pass(true, t0, 10, 0.5), None);
    }

    #[test]
    fn jitter_generator_is_uniform_enough() {
        let mut r = Jitter::new(1);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 10.0) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (9_000..11_000).contains(&b)),
            "{buckets:?}"
        );
    }
}
