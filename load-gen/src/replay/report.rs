//! The JSON report: the keys users script against at the top level
//! (`viewers_peak`, `viewer_sessions`, `startup_ms`, `lag_ms`, `stall_ratio`, `errors`,
//! `timeline`), everything else under `details`.

use serde_json::{Value, json};

use super::histogram::sorted_quantile;
use super::stats::Stats;

/// What the run was (for the report header).
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub trace: String,
    pub broadcast: String,
    pub regions: Vec<String>,
    pub targets: Vec<String>,
    pub stream: String,
    pub protocol: String,
    pub scale: f64,
    pub speed: f64,
    pub prebuffer_seconds: f64,
    pub wall_seconds: f64,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn opt(v: Option<f64>) -> Value {
    v.map(|x| json!(round3(x))).unwrap_or(Value::Null)
}

/// Up to `n` points of the empirical CDF of sorted values: (value, fraction ≤ value).
pub fn cdf(sorted: &[f64], n: usize) -> Vec<(f64, f64)> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let step = (sorted.len() / n.max(1)).max(1);
    let mut out: Vec<(f64, f64)> = sorted
        .iter()
        .enumerate()
        .step_by(step)
        .map(|(i, &v)| (v, (i + 1) as f64 / sorted.len() as f64))
        .collect();
    if out.last().map(|p| p.1) != Some(1.0) {
        out.push((sorted[sorted.len() - 1], 1.0));
    }
    out
}

pub fn build(stats: &Stats, info: &RunInfo) -> Value {
    let mut startup = stats.startup_ms.clone();
    startup.sort_by(f64::total_cmp);
    let mut connect = stats.connect_ms.clone();
    connect.sort_by(f64::total_cmp);
    let ms = |v: Option<u64>| v.map(|us| us as f64 / 1000.0);
    let stall_by_prebuffer: Vec<Value> = stats
        .prebuffers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"prebuffer_s": p, "stall_ratio": stats.stall_ratio(i), "stalls": stats.stalls[i]})
        })
        .collect();
    let by_region: serde_json::Map<String, Value> = info
        .regions
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let h = &stats.lag_by_region[i];
            (
                name.clone(),
                json!({
                    "viewers_peak": stats.peak_by_region[i],
                    "lag_ms": {
                        "p50": opt(ms(h.quantile(0.5))),
                        "p99": opt(ms(h.quantile(0.99))),
                        "max": opt(ms(h.max())),
                    },
                }),
            )
        })
        .collect();
    let mean_mbps = if info.wall_seconds > 0.0 {
        stats.bytes as f64 * 8.0 / 1e6 / info.wall_seconds
    } else {
        0.0
    };
    json!({
        "viewers_peak": stats.viewers_peak,
        "viewer_sessions": stats.sessions,
        "startup_ms": {
            "p50": opt(sorted_quantile(&startup, 0.5)),
            "p99": opt(sorted_quantile(&startup, 0.99)),
        },
        "lag_ms": {
            "p50": opt(ms(stats.lag_total.quantile(0.5))),
            "p99": opt(ms(stats.lag_total.quantile(0.99))),
            "max": opt(ms(stats.lag_total.max())),
        },
        "stall_ratio": stats.stall_ratio(stats.main),
        "errors": stats.errors,
        "timeline": stats.timeline,
        "details": {
            "trace": info.trace,
            "broadcast": info.broadcast,
            "regions": info.regions,
            "targets": info.targets,
            "stream": info.stream,
            "protocol": info.protocol,
            "scale": info.scale,
            "speed": info.speed,
            "prebuffer_seconds": info.prebuffer_seconds,
            "wall_seconds": round3(info.wall_seconds),
            "connect_to_first_byte_ms": {
                "p50": opt(sorted_quantile(&connect, 0.5)),
                "p99": opt(sorted_quantile(&connect, 0.99)),
            },
            "startup_ms_max": opt(startup.last().copied()),
            "stalls": stats.stalls[stats.main],
            "disconnects": stats.disconnects,
            "bytes": stats.bytes,
            "mean_mbps": round3(mean_mbps),
            "frames": stats.frames,
            "frames_missing": stats.frames_missing,
            "frames_without_timing_sei": stats.frames_unstamped,
            "frames_catchup": stats.frames_catchup,
            "stall_by_prebuffer": stall_by_prebuffer,
            "by_region": by_region,
            "startup_cdf_ms": cdf(&startup, 200),
            "error_kinds": stats.error_kinds,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_the_documented_keys() {
        let mut stats = Stats::new(1, 1.0);
        stats.session_started(0);
        stats.began_playing(0, 5.0, 12.0);
        stats.on_frame(0, Some(3_000));
        stats.close_window(0.0, 1);
        let info = RunInfo {
            trace: "t.csv".into(),
            broadcast: "b".into(),
            regions: vec!["eu".into()],
            targets: vec![],
            stream: "live/s".into(),
            protocol: "rtmp".into(),
            scale: 1.0,
            speed: 1.0,
            prebuffer_seconds: 1.0,
            wall_seconds: 1.0,
        };
        let report = build(&stats, &info);
        for key in [
            "viewers_peak",
            "viewer_sessions",
            "startup_ms",
            "lag_ms",
            "stall_ratio",
            "errors",
            "timeline",
        ] {
            assert!(report.get(key).is_some(), "missing {key}");
        }
        assert_eq!(report["viewers_peak"], 1);
        assert_eq!(report["startup_ms"]["p50"], 12.0);
        assert!((report["lag_ms"]["p50"].as_f64().expect("lag") - 3.0).abs() < 0.1);
        assert_eq!(report["timeline"].as_array().map(Vec::len), Some(1));
        assert_eq!(report["details"]["by_region"]["eu"]["viewers_peak"], 1);
    }

    #[test]
    fn cdf_ends_at_one() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        let c = cdf(&v, 10);
        assert!(c.len() <= 12);
        assert_eq!(c.last(), Some(&(1000.0, 1.0)));
        assert!(cdf(&[], 10).is_empty());
    }
}
