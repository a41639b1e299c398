//! A fixed-size log-linear histogram of microsecond values (about 3% resolution),
//! cheap enough to update for every frame of every viewer and to merge per second.

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS; // 32 sub-buckets per power of two
const BUCKETS: usize = 64 * SUB;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
    min: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Histogram(n={}, max={})", self.total, self.max)
    }
}

fn index(v: u64) -> usize {
    let bits = 64 - v.leading_zeros();
    if bits <= SUB_BITS + 1 {
        v as usize
    } else {
        let shift = bits - SUB_BITS - 1;
        shift as usize * SUB + (v >> shift) as usize
    }
}

/// The middle of bucket `i`.
fn value_of(i: usize) -> u64 {
    if i < 2 * SUB {
        return i as u64;
    }
    let shift = (i - SUB) / SUB;
    let mantissa = (i - shift * SUB) as u64;
    (mantissa << shift) + (1u64 << shift) / 2
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
            min: u64::MAX,
        }
    }

    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[index(v).min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
        self.min = self.min.min(v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    /// The value at quantile `q` (0..=1), clamped to the exact min and max seen.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        if q <= 0.0 {
            return Some(self.min);
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(value_of(i).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
    }

    pub fn clear(&mut self) {
        if self.total > 0 {
            self.counts.fill(0);
        }
        self.total = 0;
        self.max = 0;
        self.min = u64::MAX;
    }
}

/// Exact quantile of a sorted slice (nearest rank).
pub fn sorted_quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_accurate() {
        let mut last = 0;
        for v in 0..100_000u64 {
            let i = index(v);
            assert!(i == last || i == last + 1, "gap at {v}");
            last = i;
            let mid = value_of(i);
            assert!(
                (mid as f64 - v as f64).abs() <= (v as f64 * 0.032).max(1.0),
                "{v} -> {mid}"
            );
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_within_three_percent() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 100);
        }
        for (q, exact) in [(0.5, 500_000.0), (0.99, 990_000.0), (1.0, 1_000_000.0)] {
            let got = h.quantile(q).expect("values") as f64;
            assert!((got - exact).abs() / exact < 0.03, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile(0.0), Some(100));
        let mut other = Histogram::new();
        other.record(5_000_000);
        h.merge(&other);
        assert_eq!(h.max(), Some(5_000_000));
        assert_eq!(h.count(), 10_001);
        h.clear();
        assert_eq!(h.quantile(0.5), None);
    }

    #[test]
    fn sorted_quantile_uses_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(sorted_quantile(&v, 0.5), Some(2.0));
        assert_eq!(sorted_quantile(&v, 0.99), Some(4.0));
        assert_eq!(sorted_quantile(&[], 0.5), None);
    }
}
