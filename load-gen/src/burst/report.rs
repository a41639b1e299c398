//! What a burst measured: how many connections joined, why the others failed, and the
//! distribution of each step's time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::connection::Joined;

/// Percentiles of one step over the joined connections, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Nearest-rank percentiles; `None` for no values.
    pub fn of(values: &[Duration]) -> Option<Self> {
        let mut ms: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = (q * ms.len() as f64).ceil() as usize;
            ms[rank.clamp(1, ms.len()) - 1]
        };
        (!ms.is_empty()).then(|| Summary {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct BurstReport {
    /// `--url` with publish keys hidden.
    pub url: String,
    pub kind: &'static str,
    pub tls: bool,
    pub connections: u64,
    /// Connections launched evenly over this many seconds (0: all at once).
    pub launch_seconds: f64,
    pub joined: u64,
    /// Failure reason -> connections.
    pub errors: BTreeMap<String, u64>,
    /// From the first launch to the last join.
    pub wall_ms: f64,
    pub tcp_ms: Option<Summary>,
    pub tls_ms: Option<Summary>,
    /// Connection start -> first video tag (viewers) or publish accepted (publishers).
    pub join_ms: Option<Summary>,
}

impl BurstReport {
    pub fn new(
        url: String,
        kind: &'static str,
        tls: bool,
        launch: Duration,
        results: &[Result<Joined, String>],
        wall: Duration,
    ) -> Self {
        let joined: Vec<&Joined> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let mut errors = BTreeMap::new();
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            *errors.entry(e.clone()).or_insert(0) += 1;
        }
        let step = |f: fn(&Joined) -> Duration| {
            Summary::of(&joined.iter().map(|j| f(j)).collect::<Vec<_>>())
        };
        BurstReport {
            url,
            kind,
            tls,
            connections: results.len() as u64,
            launch_seconds: launch.as_secs_f64(),
            joined: joined.len() as u64,
            errors,
            wall_ms: wall.as_secs_f64() * 1e3,
            tcp_ms: step(|j| j.tcp),
            tls_ms: if tls { step(|j| j.tls) } else { None },
            join_ms: step(|j| j.join),
        }
    }

    /// A few lines for the terminal.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} x {} ({}) over {:.1} s: {} joined, {} failed, last join after {:.0} ms\n",
            self.connections,
            self.kind,
            self.url,
            self.launch_seconds,
            self.joined,
            self.connections - self.joined,
            self.wall_ms
        );
        for (name, s) in [
            ("tcp connect", self.tcp_ms),
            ("tls handshake", self.tls_ms),
            ("join", self.join_ms),
        ] {
            if let Some(s) = s {
                out += &format!(
                    "  {name:<14} p50 {:>8.1} ms  p90 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms\n",
                    s.p50, s.p90, s.p99, s.max
                );
            }
        }
        for (why, n) in &self.errors {
            out += &format!("  failed x{n}: {why}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        let s = Summary::of(&values).expect("values");
        assert_eq!((s.p50, s.p90, s.p99, s.max), (50.0, 90.0, 99.0, 100.0));
        let one = Summary::of(&[ms(7)]).expect("one");
        assert_eq!((one.p50, one.max), (7.0, 7.0));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn failures_are_grouped_and_steps_summarised_over_joins_only() {
        let j = |join| Joined {
            tcp: ms(1),
            tls: ms(4),
            join: ms(join),
        };
        let results = vec![
            Ok(j(10)),
            Err("HTTP 404".to_string()),
            Ok(j(30)),
            Err("HTTP 404".to_string()),
            Err("connect: refused".to_string()),
        ];
        let r = BurstReport::new(
            "https://h/a.flv".into(),
            "https-flv viewer",
            true,
            ms(500),
            &results,
            ms(40),
        );
        assert_eq!((r.connections, r.joined), (5, 2));
        assert_eq!(r.errors.get("HTTP 404"), Some(&2));
        assert_eq!(r.join_ms.map(|s| s.max), Some(30.0));
        assert_eq!(r.tls_ms.map(|s| s.p50), Some(4.0));
        let text = r.text();
        assert!(text.contains("2 joined, 3 failed"), "{text}");
        assert!(text.contains("failed x2: HTTP 404"), "{text}");
        let plain = BurstReport::new(
            "http://h/a.flv".into(),
            "http-flv viewer",
            false,
            ms(0),
            &results,
            ms(40),
        );
        assert_eq!(plain.tls_ms, None);
    }
}
