//! The JSON report: the keys users script against at the top level
//! (`viewers_peak`, `viewer_sessions`, `startup_ms`, `lag_ms`, `stall_ratio`, `errors`,
//! `timeline`), everything else under `details`. Where viewers landed (refusals, overflow
//! placements, viewers per relay and how evenly they were spread) is in `details.by_region`,
//! in total under `details.refused` / `details.overflow`, and per second in each timeline
//! point's `refused`, `overflow` and `placement`. With `--verify-key`, signed-frame counts
//! are under `integrity` (totals, by reason, per viewer) and in each timeline point's
//! `integrity`.
//!
//! Every stall figure comes from the QoE player models (`qoe_totals`): `stall_ratio` and
//! `details.stalls` are the `--player-buffer` model's (as `qoe.stall_ratio` and
//! `qoe.stalls`), `details.stall_by_prebuffer` has one entry per modelled size (as
//! `qoe.by_player_buffer`).

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
    let mut reconnect = stats.reconnect_ms.clone();
    reconnect.sort_by(f64::total_cmp);
    let mut connect = stats.connect_ms.clone();
    connect.sort_by(f64::total_cmp);
    let ms = |v: Option<u64>| v.map(|us| us as f64 / 1000.0);
    let player = stats.qoe.main_model();
    let stall_by_prebuffer: Vec<Value> = stats
        .qoe
        .models
        .iter()
        .map(|m| json!({"prebuffer_s": m.prebuffer_s, "stall_ratio": m.stall_ratio(), "stalls": m.stalls}))
        .collect();
    let by_region: serde_json::Map<String, Value> = info
        .regions
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let h = &stats.lag_by_region[i];
            let placement = &stats.placement[i];
            let peak = &placement.at_peak;
            (
                name.clone(),
                json!({
                    "viewers_peak": stats.peak_by_region[i],
                    "lag_ms": {
                        "p50": opt(ms(h.quantile(0.5))),
                        "p99": opt(ms(h.quantile(0.99))),
                        "max": opt(ms(h.max())),
                    },
                    "refused": placement.refused,
                    "overflow": placement.overflow,
                    "relays": placement.relays,
                    "relays_at_peak": {
                        "viewers": peak.viewers,
                        "relays": peak.relays,
                        "max": peak.max,
                        "mean": round3(peak.mean),
                        "max_over_mean": opt(peak.max_over_mean()),
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
    let mut report = json!({
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
        "stall_ratio": player.stall_ratio(),
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
            // The timeline's zero on the wall clock (its points' `t_s` count from it).
            "started_unix_s": round3(stats.clock.unix_us(stats.started) as f64 / 1e6),
            "connect_to_first_byte_ms": {
                "p50": opt(sorted_quantile(&connect, 0.5)),
                "p99": opt(sorted_quantile(&connect, 0.99)),
            },
            "startup_ms_max": opt(startup.last().copied()),
            "stalls": player.stalls,
            "disconnects": stats.disconnects,
            "refused": stats.placement.iter().map(|p| p.refused).sum::<u64>(),
            "overflow": stats.placement.iter().map(|p| p.overflow).sum::<u64>(),
            "bytes": stats.bytes,
            "mean_mbps": round3(mean_mbps),
            "frames": stats.frames,
            "frames_missing": stats.frames_missing,
            "frames_without_timing_sei": stats.frames_unstamped,
            "frames_catchup": stats.frames_catchup,
            "frames_out_of_order": stats.frames_out_of_order,
            "reconnects": {
                "count": reconnect.len(),
                "p50_ms": opt(sorted_quantile(&reconnect, 0.5)),
                "p99_ms": opt(sorted_quantile(&reconnect, 0.99)),
                "max_ms": opt(reconnect.last().copied()),
            },
            "frame_gap_max_ms": round3(stats.frame_gap_max_ms),
            "stall_by_prebuffer": stall_by_prebuffer,
            "by_region": by_region,
            "startup_cdf_ms": cdf(&startup, 200),
            "error_kinds": stats.error_kinds,
        }
    });
    report["qoe"] = stats.qoe.report(&stats.lag_total, info.wall_seconds);
    if stats.hls.used() {
        report["hls"] = stats.hls.report();
    }
    if let Some(run) = &stats.integrity {
        report["integrity"] = super::integrity::report(run);
    }
    report
}

/// One line per region for the end-of-run summary: refusals, overflow placements and the
/// viewers per relay at the region's busiest second.
pub fn placement_lines(report: &Value) -> Vec<String> {
    let Some(regions) = report["details"]["by_region"].as_object() else {
        return Vec::new();
    };
    regions
        .iter()
        .map(|(name, r)| {
            let peak = &r["relays_at_peak"];
            let relays: Vec<String> = peak["relays"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
                .unwrap_or_default();
            let spread = peak["max_over_mean"]
                .as_f64()
                .map(|x| format!(", max/mean {x:.2}"))
                .unwrap_or_default();
            format!(
                "region {name}: refused {} | overflow {} | at peak {} viewers on {} relays (max {}, mean {:.1}{spread}): {}",
                r["refused"],
                r["overflow"],
                peak["viewers"],
                relays.len(),
                peak["max"],
                peak["mean"].as_f64().unwrap_or(0.0),
                if relays.is_empty() { "-".to_owned() } else { relays.join(", ") }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::replay::placement::Placement;

    fn info() -> RunInfo {
        RunInfo {
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
        }
    }

    #[test]
    fn report_counts_refusals_overflow_and_viewers_per_relay() {
        let mut stats = Stats::new(&["eu".into()], 1.0, &[]);
        let (a, b, origin) = ("http://e1:1", "http://e2:2", "http://o:3");
        for relay in [a, a, b, b, origin] {
            stats.session_started(0);
            let how = if relay == origin {
                Placement::Overflow
            } else {
                Placement::Edge
            };
            stats.placed(0, relay, how);
            stats.began_playing(0, Some(relay), 1.0, 2.0);
        }
        stats.refused(0);
        stats.refused(0);
        stats.close_window(1.0, 5);
        // One viewer of e1 leaves: the busiest second is still the one kept.
        stats.session_ended(0, Some(a), true);
        stats.close_window(2.0, 4);
        let report = build(&stats, &info());
        let eu = &report["details"]["by_region"]["eu"];
        assert_eq!(
            (eu["refused"].as_u64(), eu["overflow"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(report["details"]["refused"], 2);
        assert_eq!(report["details"]["overflow"], 1);
        assert_eq!(eu["relays"][a]["sessions"], 2);
        assert_eq!(eu["relays"][a]["peak_viewers"], 2);
        assert_eq!(eu["relays"][origin]["sessions"], 1);
        let peak = &eu["relays_at_peak"];
        assert_eq!(
            (peak["viewers"].as_u64(), peak["max"].as_u64()),
            (Some(5), Some(2))
        );
        assert_eq!(peak["relays"][b], 2);
        let mean = 5.0 / 3.0;
        assert!((peak["mean"].as_f64().expect("mean") - mean).abs() < 1e-3);
        assert!((peak["max_over_mean"].as_f64().expect("ratio") - 2.0 / mean).abs() < 1e-3);
        let second = &report["timeline"][1];
        assert_eq!(
            (second["refused"].as_u64(), second["overflow"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(second["placement"]["eu"]["relays"][a], 1);
        assert_eq!(second["placement"]["eu"]["max"], 2);
        let lines = placement_lines(&report);
        assert_eq!(
            lines,
            vec![
                "region eu: refused 2 | overflow 1 | at peak 5 viewers on 3 relays (max 2, mean 1.7, max/mean 1.20): http://e1:1 2, http://e2:2 2, http://o:3 1"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn report_has_the_documented_keys() {
        let mut stats = Stats::new(&["eu".into()], 1.0, &[]);
        stats.session_started(0);
        stats.began_playing(0, None, 5.0, 12.0);
        stats.on_frame(0, Some(3_000));
        stats.close_window(0.0, 1);
        let report = build(&stats, &info());
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
    fn every_stall_figure_comes_from_the_qoe_models() {
        let mut stats = Stats::new(&["eu".into()], 1.0, &[4.0, 0.5]);
        for (m, (played, stalled, stalls)) in stats.qoe.models.iter_mut().zip([
            (7000.0, 3000.0, 4),
            (9000.0, 1000.0, 2),
            (10_000.0, 0.0, 0),
        ]) {
            (m.played_ms, m.stalled_ms, m.stalls) = (played, stalled, stalls);
        }
        stats.close_window(1.0, 1);
        let report = build(&stats, &info());
        // The main model (P = 1 s, `--player-buffer`) at the top level and in `details`.
        assert_eq!(report["stall_ratio"], 0.1);
        assert_eq!(report["stall_ratio"], report["qoe"]["stall_ratio"]);
        assert_eq!(report["details"]["stalls"], 2);
        assert_eq!(report["details"]["stalls"], report["qoe"]["stalls"]);
        assert_eq!(report["timeline"][0]["stalls"], 2);
        // One sweep entry per modelled size, the same figures as `qoe.by_player_buffer`.
        let sweep = report["details"]["stall_by_prebuffer"]
            .as_array()
            .expect("sweep");
        let by_p = report["qoe"]["by_player_buffer"].as_array().expect("qoe");
        assert_eq!(sweep.len(), 3);
        assert_eq!(sweep.len(), by_p.len());
        for (s, q) in sweep.iter().zip(by_p) {
            assert_eq!(s["prebuffer_s"], q["player_buffer_s"]);
            assert_eq!(s["stall_ratio"], q["stall_ratio"]);
            assert_eq!(s["stalls"], q["stalls"]);
        }
        let sizes: Vec<f64> = sweep
            .iter()
            .filter_map(|s| s["prebuffer_s"].as_f64())
            .collect();
        assert_eq!(sizes, vec![0.5, 1.0, 4.0]);
        assert_eq!(sweep[0]["stall_ratio"], 0.3);
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
