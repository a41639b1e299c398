//! A Prometheus histogram of durations whose observation is two relaxed atomic adds, for
//! samples taken on viewer write paths (prometheus_client's own histogram takes a mutex on
//! every observation, shared by every worker thread).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Bucket upper bounds (seconds) for a viewer's join time: 1 ms .. 10 s.
pub const PLAY_START_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bucket upper bounds (seconds) for a frame's time inside the relay: 0.5 ms .. 10 s.
pub const FRAME_DELAY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bucket upper bounds (seconds) for an upstream (re)connection: 5 ms .. 60 s (backoff
/// between failed attempts counts).
pub const UPSTREAM_CONNECT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Cheap to clone (shared counts).
#[derive(Clone, Debug)]
pub struct DurationHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    bounds_ns: Box<[u64]>,
    /// One per bound, then the +Inf bucket (not cumulative).
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl DurationHistogram {
    /// `bounds`: increasing upper bounds in seconds.
    pub fn new(bounds: &'static [f64]) -> Self {
        DurationHistogram {
            inner: Arc::new(Inner {
                bounds,
                bounds_ns: bounds.iter().map(|s| (s * 1e9).round() as u64).collect(),
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum_ns: AtomicU64::new(0),
            }),
        }
    }

    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self
            .inner
            .bounds_ns
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(self.inner.bounds_ns.len());
        self.inner.counts[i].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts with +Inf last). The count is the buckets'
    /// total, so the two always agree.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = self
            .inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.inner.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = DurationHistogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(1000)); // on the bound: that bucket
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(3));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 3.006).abs() < 1e-9, "{sum}");
        assert_eq!(buckets, vec![(0.001, 1), (0.01, 1), (f64::INFINITY, 1)]);
    }

    #[test]
    fn encodes_cumulative_buckets_with_unit() {
        let h = DurationHistogram::new(&[0.5]);
        h.observe(Duration::from_millis(100));
        h.observe(Duration::from_secs(1));
        let mut r = prometheus_client::registry::Registry::default();
        r.register_with_unit(
            "wait",
            "test",
            prometheus_client::registry::Unit::Seconds,
            h.clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).expect("encode");
        assert!(out.contains("# TYPE wait_seconds histogram"), "{out}");
        assert!(out.contains("wait_seconds_count 2\n"), "{out}");
        assert!(out.contains("wait_seconds_sum 1.1\n"), "{out}");
        assert!(out.contains("wait_seconds_bucket{le=\"0.5\"} 1\n"), "{out}");
        assert!(
            out.contains("wait_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{out}"
        );
    }
}
