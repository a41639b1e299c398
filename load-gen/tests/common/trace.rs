//! What a trace file asks of a replay, read from the CSV by the test itself (not by the
//! load generator's own reader or scheduler), so a replay that opens the wrong number of
//! viewers cannot agree with itself.

use std::path::Path;

/// The `*` (total) rows of a trace's first broadcast, scaled the way `--max-viewers`
/// scales the trace: by `max / peak` when the peak total is above `max`.
#[derive(Debug, Clone)]
pub struct TraceExpectation {
    /// (trace seconds, scaled total viewers), sorted by time.
    points: Vec<(f64, f64)>,
    pub scale: f64,
    /// Scaled peak total.
    pub peak: f64,
    /// Scaled sessions: the viewers at the first row plus every later arrival.
    pub sessions: f64,
}

impl TraceExpectation {
    /// Reads `broadcast_id,t_s,region,viewers,arrivals,departures` rows; the test traces
    /// carry explicit `*` total rows with arrivals (the README's format).
    pub fn read(path: &Path, max_viewers: Option<u64>) -> Self {
        let text = std::fs::read_to_string(path).expect("trace file");
        let mut broadcast: Option<String> = None;
        let mut rows: Vec<(f64, f64, f64)> = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.starts_with("broadcast_id,") || line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            assert!(f.len() >= 5, "trace row without arrivals: {line}");
            let id = broadcast.get_or_insert_with(|| f[0].to_owned());
            if f[0] != id || f[2] != "*" {
                continue;
            }
            let num = |s: &str| -> f64 { s.parse().unwrap_or_else(|_| panic!("number: {line}")) };
            rows.push((num(f[1]), num(f[3]), num(f[4])));
        }
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(rows.len() >= 2, "{}: no `*` total rows", path.display());
        let peak_total = rows.iter().map(|r| r.1).fold(0.0, f64::max);
        let scale = match max_viewers {
            Some(m) if peak_total > m as f64 => m as f64 / peak_total,
            _ => 1.0,
        };
        let sessions = rows[0].1 + rows[1..].iter().map(|r| r.2).sum::<f64>();
        Self {
            points: rows.iter().map(|r| (r.0, r.1 * scale)).collect(),
            scale,
            peak: peak_total * scale,
            sessions: sessions * scale,
        }
    }

    /// Scaled total viewers at trace time `t` (linear between rows, as documented).
    pub fn viewers_at(&self, t: f64) -> f64 {
        let (first, last) = (self.points[0], self.points[self.points.len() - 1]);
        if t <= first.0 {
            return first.1;
        }
        if t >= last.0 {
            return last.1;
        }
        let i = self.points.partition_point(|p| p.0 <= t);
        let (a, b) = (self.points[i - 1], self.points[i]);
        a.1 + (b.1 - a.1) * (t - a.0) / (b.0 - a.0)
    }

    /// Least and most scaled total viewers over trace times `from..=to` (linear between
    /// rows, so the extremes are at the ends or at rows in between).
    pub fn range(&self, from: f64, to: f64) -> (f64, f64) {
        let inside = self.points.iter().filter(|p| p.0 > from && p.0 < to);
        [self.viewers_at(from), self.viewers_at(to)]
            .into_iter()
            .chain(inside.map(|p| p.1))
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
    }

    /// Trace seconds from the first row to the last.
    pub fn span_seconds(&self) -> f64 {
        self.points[self.points.len() - 1].0 - self.points[0].0
    }

    /// Scaled viewer-seconds of trace time (the area under the total).
    pub fn viewer_seconds(&self) -> f64 {
        self.points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum()
    }
}
