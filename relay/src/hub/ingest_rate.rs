//! Ingest bitrate over a short sliding window. Pure apart from the caller-supplied clock.

use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct IngestRate {
    window_start: Instant,
    window_bytes: u64,
    last_bps: u64,
    total_bytes: u64,
}

impl IngestRate {
    pub fn new(now: Instant) -> Self {
        IngestRate {
            window_start: now,
            window_bytes: 0,
            last_bps: 0,
            total_bytes: 0,
        }
    }

    pub fn record(&mut self, now: Instant, bytes: usize) {
        self.roll(now);
        self.window_bytes += bytes as u64;
        self.total_bytes += bytes as u64;
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= WINDOW {
            self.last_bps = if elapsed >= WINDOW * 2 {
                0
            } else {
                bits_per_second(self.window_bytes, elapsed)
            };
            self.window_start = now;
            self.window_bytes = 0;
        }
    }

    /// Bits per second over the last complete window (0 after silence).
    pub fn bps(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= WINDOW * 2 {
            0
        } else if elapsed >= WINDOW {
            bits_per_second(self.window_bytes, elapsed)
        } else {
            self.last_bps
        }
    }

    /// Kilobits per second: [`Self::bps`] / 1000, rounded down.
    pub fn kbps(&self, now: Instant) -> u64 {
        self.bps(now) / 1000
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

/// `bytes` over `elapsed` (whole milliseconds, as the window is measured), in bit/s.
fn bits_per_second(bytes: u64, elapsed: Duration) -> u64 {
    bytes.saturating_mul(8000) / elapsed.as_millis().max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_kbps_and_decays() {
        let t0 = Instant::now();
        let mut r = IngestRate::new(t0);
        for i in 0..20 {
            r.record(t0 + Duration::from_millis(i * 100), 12_500);
        }
        r.record(t0 + Duration::from_millis(2000), 0);
        assert_eq!(r.kbps(t0 + Duration::from_millis(2100)), 1000);
        assert_eq!(r.bps(t0 + Duration::from_millis(2100)), 1_000_000);
        assert_eq!(r.kbps(t0 + Duration::from_secs(10)), 0);
        assert_eq!(r.total_bytes(), 250_000);
    }
}
