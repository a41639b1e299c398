//! Upstreams that sent frames failing verification are set aside for a while: not probed
//! to move back to, and skipped in the failover order while another upstream is left
//! (pure; unit-tested).

use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct Quarantine {
    until: Vec<Option<Instant>>,
    period: Duration,
}

impl Quarantine {
    pub fn new(n: usize, period: Duration) -> Self {
        Quarantine {
            until: vec![None; n],
            period,
        }
    }

    pub fn mark(&mut self, index: usize, now: Instant) {
        if let Some(slot) = self.until.get_mut(index) {
            *slot = Some(now + self.period);
        }
    }

    pub fn is_set_aside(&self, index: usize, now: Instant) -> bool {
        self.until
            .get(index)
            .copied()
            .flatten()
            .is_some_and(|t| now < t)
    }

    /// `next`, or the first upstream after it (in failover order) not set aside; `next` when
    /// every one is.
    pub fn next_allowed(&self, next: usize, now: Instant) -> usize {
        let n = self.until.len().max(1);
        (0..n)
            .map(|k| (next + k) % n)
            .find(|&i| !self.is_set_aside(i, now))
            .unwrap_or(next)
    }

    /// Indices below `end` not set aside (the preferred upstreams worth probing).
    pub fn allowed_before(&self, end: usize, now: Instant) -> Vec<usize> {
        (0..end).filter(|&i| !self.is_set_aside(i, now)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampering_upstream_is_skipped_until_its_period_ends() {
        let now = Instant::now();
        let mut q = Quarantine::new(3, Duration::from_secs(60));
        assert_eq!(q.next_allowed(0, now), 0);
        q.mark(0, now);
        assert_eq!(q.next_allowed(0, now), 1);
        assert_eq!(q.allowed_before(2, now), vec![1]);
        q.mark(1, now);
        q.mark(2, now);
        assert_eq!(q.next_allowed(1, now), 1, "all set aside: keep the order");
        let later = now + Duration::from_secs(61);
        assert_eq!(q.next_allowed(0, later), 0);
        assert_eq!(q.allowed_before(2, later), vec![0, 1]);
        q.mark(9, now); // out of range: ignored
    }
}
