//! The self-contained HTML report: a summary table, where viewers landed (per region and
//! relay) and inline-SVG plots.

use std::fmt::Write;

use serde_json::Value;

use super::svg::{Chart, Series};

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn fmt_ms(v: &Value) -> String {
    num(v)
        .map(|x| format!("{x:.1} ms"))
        .unwrap_or_else(|| "–".into())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the report JSON (as built by `report::build`) to an HTML page.
pub fn render(report: &Value) -> String {
    let d = &report["details"];
    let timeline = report["timeline"].as_array().cloned().unwrap_or_default();
    let series_of = |key: &str| -> Vec<(f64, f64)> {
        timeline
            .iter()
            .filter_map(|p| Some((num(&p["t_s"])?, num(&p[key])?)))
            .collect()
    };
    let viewers = Chart {
        title: "Viewers over time",
        x_label: "wall time (s)",
        y_label: "viewers",
        series: vec![
            Series {
                name: "trace (scaled)".into(),
                color: "#555",
                points: series_of("target"),
                dashed: true,
                markers: false,
            },
            Series {
                name: "playing".into(),
                color: "#1f77b4",
                points: series_of("viewers"),
                dashed: false,
                markers: false,
            },
            Series {
                name: "connecting".into(),
                color: "#ff7f0e",
                points: series_of("connecting"),
                dashed: false,
                markers: false,
            },
        ],
        y_from_zero: true,
    };
    let lag = Chart {
        title: "Delivery lag per second",
        x_label: "wall time (s)",
        y_label: "lag (ms)",
        series: vec![
            Series {
                name: "p50".into(),
                color: "#2ca02c",
                points: series_of("lag_p50_ms"),
                dashed: false,
                markers: false,
            },
            Series {
                name: "p99".into(),
                color: "#d62728",
                points: series_of("lag_p99_ms"),
                dashed: false,
                markers: false,
            },
            Series {
                name: "max".into(),
                color: "#9467bd",
                points: series_of("lag_max_ms"),
                dashed: true,
                markers: false,
            },
        ],
        y_from_zero: true,
    };
    let cdf_points: Vec<(f64, f64)> = d["startup_cdf_ms"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((num(&p[0])?, num(&p[1])? * 100.0)))
                .collect()
        })
        .unwrap_or_default();
    let startup = Chart {
        title: "Startup time CDF (ask → first keyframe)",
        x_label: "startup (ms)",
        y_label: "viewers (%)",
        series: vec![Series {
            name: "startup".into(),
            color: "#1f77b4",
            points: cdf_points,
            dashed: false,
            markers: false,
        }],
        y_from_zero: true,
    };
    let relays = relay_chart(&timeline);
    let mut rows = String::new();
    let mut row = |k: &str, v: String| {
        let _ = write!(rows, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    };
    row(
        "trace",
        format!(
            "{} (broadcast {})",
            d["trace"].as_str().unwrap_or(""),
            d["broadcast"].as_str().unwrap_or("")
        ),
    );
    row(
        "stream / protocol",
        format!(
            "{} / {}",
            d["stream"].as_str().unwrap_or(""),
            d["protocol"].as_str().unwrap_or("")
        ),
    );
    row(
        "targets",
        d["targets"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
    );
    row(
        "scale / speed",
        format!(
            "{:.4} / {}×",
            num(&d["scale"]).unwrap_or(1.0),
            num(&d["speed"]).unwrap_or(1.0)
        ),
    );
    row(
        "wall time",
        format!("{:.1} s", num(&d["wall_seconds"]).unwrap_or(0.0)),
    );
    row(
        "viewers peak / sessions",
        format!("{} / {}", report["viewers_peak"], report["viewer_sessions"]),
    );
    row(
        "connect → first media byte p50 / p99",
        format!(
            "{} / {}",
            fmt_ms(&d["connect_to_first_byte_ms"]["p50"]),
            fmt_ms(&d["connect_to_first_byte_ms"]["p99"])
        ),
    );
    row(
        "startup p50 / p99",
        format!(
            "{} / {}",
            fmt_ms(&report["startup_ms"]["p50"]),
            fmt_ms(&report["startup_ms"]["p99"])
        ),
    );
    row(
        "lag p50 / p99 / max",
        format!(
            "{} / {} / {}",
            fmt_ms(&report["lag_ms"]["p50"]),
            fmt_ms(&report["lag_ms"]["p99"]),
            fmt_ms(&report["lag_ms"]["max"])
        ),
    );
    row(
        "stall ratio (pre-buffer)",
        format!(
            "{:.3}% ({} s, {} stalls)",
            num(&report["stall_ratio"]).unwrap_or(0.0) * 100.0,
            d["prebuffer_seconds"],
            d["stalls"]
        ),
    );
    row(
        "errors / disconnects",
        format!("{} / {}", report["errors"], d["disconnects"]),
    );
    row(
        "refused / placed by overflow",
        format!("{} / {}", d["refused"], d["overflow"]),
    );
    row(
        "frames (from GOP cache, missing, without timing SEI)",
        format!(
            "{} ({}, {}, {})",
            d["frames"], d["frames_catchup"], d["frames_missing"], d["frames_without_timing_sei"]
        ),
    );
    row(
        "received",
        format!(
            "{:.1} MB, mean {:.1} Mbit/s",
            num(&d["bytes"]).unwrap_or(0.0) / 1e6,
            num(&d["mean_mbps"]).unwrap_or(0.0)
        ),
    );
    let mut kinds = String::new();
    if let Some(map) = d["error_kinds"].as_object() {
        for (k, v) in map {
            let _ = write!(kinds, "<li>{} × {}</li>", v, esc(k));
        }
    }
    let kinds = if kinds.is_empty() {
        String::new()
    } else {
        format!("<h2>Errors and disconnects</h2><ul>{kinds}</ul>")
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>surge-load replay report</title>
<style>
body{{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}}
table{{border-collapse:collapse;margin-bottom:16px}} th,td{{text-align:left;padding:3px 12px;border-bottom:1px solid #eee}}
th{{font-weight:normal;color:#555}} .plots{{display:flex;flex-wrap:wrap;gap:12px}} .plots svg{{border:1px solid #ddd;background:#fff}}
</style></head><body>
<h1>surge-load replay report</h1>
<table>{rows}</table>
{placement}
{integrity}
<div class="plots">{}{}{}{relays}</div>
{qoe}
{kinds}
<p style="color:#777">Lag = receive time − publish time carried in each frame's timing SEI, for frames published after the viewer asked (frames replayed from a GOP cache at join are counted apart). Startup = request → first keyframe. Stalls: the QoE player model (start and resume at the pre-buffer size); the QoE section plots them per modelled pre-buffer size.</p>
</body></html>
"#,
        viewers.render(),
        lag.render(),
        startup.render(),
        placement = placement_table(d),
        qoe = super::qoe_html::section(&report["qoe"]),
        integrity = integrity_section(&report["integrity"], &timeline),
    )
}

/// With `--verify-key`: signed-frame totals, failures by reason, the viewers with failures
/// and the verdicts per second.
fn integrity_section(i: &Value, timeline: &[Value]) -> String {
    if i.is_null() {
        return String::new();
    }
    let mut rows = String::new();
    for (k, label) in [
        ("verified", "frames verified"),
        ("failed", "frames failed"),
        (
            "unverified",
            "frames unverified (a viewer skipped their signature)",
        ),
        (
            "pending_at_end",
            "frames still awaiting their signature when a session ended",
        ),
        ("signatures", "signature messages received"),
        ("viewers", "viewers checking"),
        ("viewers_with_failed", "viewers that got failed frames"),
        (
            "viewers_with_unverified",
            "viewers that got unverified frames",
        ),
    ] {
        let _ = write!(rows, "<tr><th>{}</th><td>{}</td></tr>", esc(label), i[k]);
    }
    if let Some(reasons) = i["failures_by_reason"].as_object() {
        for (reason, r) in reasons {
            let _ = write!(
                rows,
                "<tr><th>failed: {}</th><td>{} failures, {} frames (first: {})</td></tr>",
                esc(reason),
                r["failures"],
                r["frames"],
                esc(r["example"].as_str().unwrap_or(""))
            );
        }
    }
    let series = |key: &str, name: &str, color: &'static str| Series {
        name: name.into(),
        color,
        points: timeline
            .iter()
            .filter_map(|p| Some((num(&p["t_s"])?, num(&p["integrity"][key])?)))
            .collect(),
        dashed: false,
        markers: false,
    };
    let chart = Chart {
        title: "Signed frames per second",
        x_label: "wall time (s)",
        y_label: "frames",
        series: vec![
            series("verified", "verified", "#2ca02c"),
            series("failed", "failed", "#d62728"),
            series("unverified", "unverified", "#ff7f0e"),
        ],
        y_from_zero: true,
    };
    format!(
        "<h2>Signed frames (--verify-key)</h2><table>{rows}</table><div class=\"plots\">{}</div>",
        chart.render()
    )
}

const RELAY_COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Where viewers landed: per region, refusals and overflow, then one row per relay.
fn placement_table(d: &Value) -> String {
    let Some(regions) = d["by_region"].as_object() else {
        return String::new();
    };
    let mut rows = String::new();
    for (name, r) in regions {
        let peak = &r["relays_at_peak"];
        let _ = write!(
            rows,
            "<tr><th colspan=\"4\"><b>{}</b>: refused {}, placed by overflow {}; at its peak {} viewers, max {} / mean {:.1} per relay (max/mean {})</th></tr>",
            esc(name),
            r["refused"],
            r["overflow"],
            peak["viewers"],
            peak["max"],
            num(&peak["mean"]).unwrap_or(0.0),
            num(&peak["max_over_mean"])
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "–".into())
        );
        if let Some(relays) = r["relays"].as_object() {
            for (relay, c) in relays {
                let _ = write!(
                    rows,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(relay),
                    c["sessions"],
                    c["peak_viewers"],
                    peak["relays"][relay.as_str()].as_u64().unwrap_or(0)
                );
            }
        }
    }
    format!(
        "<h2>Where viewers landed</h2><table><tr><th>relay</th><th>sessions sent</th><th>peak viewers</th><th>viewers at the region's peak</th></tr>{rows}</table>"
    )
}

/// Viewers playing per relay over time (the first relays seen, as many as there are colours).
fn relay_chart(timeline: &[Value]) -> String {
    let mut keys: Vec<(String, String)> = Vec::new();
    for p in timeline {
        let Some(regions) = p["placement"].as_object() else {
            continue;
        };
        for (region, r) in regions {
            for relay in r["relays"].as_object().into_iter().flat_map(|m| m.keys()) {
                let key = (region.clone(), relay.clone());
                if !keys.contains(&key) && keys.len() < RELAY_COLORS.len() {
                    keys.push(key);
                }
            }
        }
    }
    if keys.len() < 2 {
        return String::new();
    }
    let one_region = keys.iter().all(|k| k.0 == keys[0].0);
    let series = keys
        .iter()
        .zip(RELAY_COLORS)
        .map(|((region, relay), color)| Series {
            name: if one_region {
                relay.clone()
            } else {
                format!("{region} {relay}")
            },
            color,
            points: timeline
                .iter()
                .filter_map(|p| {
                    let n = p["placement"][region.as_str()]["relays"][relay.as_str()]
                        .as_f64()
                        .unwrap_or(0.0);
                    Some((num(&p["t_s"])?, n))
                })
                .collect(),
            dashed: false,
            markers: false,
        })
        .collect();
    Chart {
        title: "Viewers per relay",
        x_label: "wall time (s)",
        y_label: "viewers playing",
        series,
        y_from_zero: true,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn shows_where_viewers_landed_and_a_line_per_relay() {
        let point = |t: f64, a: u64, b: u64| json!({"t_s": t, "placement": {"eu": {"relays": {"http://e1:1": a, "http://e2:2": b}}}});
        let report = json!({
            "timeline": [point(0.0, 1, 0), point(1.0, 5, 4)],
            "details": {
                "refused": 2,
                "overflow": 3,
                "by_region": {"eu": {
                    "refused": 2,
                    "overflow": 3,
                    "relays": {
                        "http://e1:1": {"sessions": 6, "peak_viewers": 5},
                        "http://e2:2": {"sessions": 4, "peak_viewers": 4},
                    },
                    "relays_at_peak": {"viewers": 9, "relays": {"http://e1:1": 5, "http://e2:2": 4},
                        "max": 5, "mean": 4.5, "max_over_mean": 1.111},
                }},
            },
        });
        let html = render(&report);
        assert!(html.contains("Where viewers landed"), "{html}");
        assert!(html.contains("refused 2, placed by overflow 3"));
        assert!(html.contains("<tr><td>http://e1:1</td><td>6</td><td>5</td><td>5</td></tr>"));
        assert!(html.contains("max/mean 1.11"));
        assert!(html.contains("Viewers per relay"));
        assert!(html.contains("<th>refused / placed by overflow</th><td>2 / 3</td>"));
        assert!(
            !html.contains("Signed frames"),
            "no section without --verify-key"
        );
    }

    #[test]
    fn shows_signed_frame_counts_and_failures_by_reason() {
        let report = json!({
            "timeline": [
                {"t_s": 0.0, "integrity": {"verified": 0, "failed": 61, "unverified": 0}},
                {"t_s": 1.0, "integrity": {"verified": 60, "failed": 0, "unverified": 0}},
            ],
            "details": {},
            "integrity": {
                "verified": 60, "failed": 61, "unverified": 0, "pending_at_end": 12,
                "signatures": 2, "viewers": 1, "viewers_with_failed": 1,
                "viewers_with_unverified": 0,
                "failures_by_reason": {"not_signed": {"failures": 1, "frames": 61,
                    "example": "Video frame at 40 ms is not in its group's signature"}},
            },
        });
        let html = render(&report);
        assert!(html.contains("Signed frames (--verify-key)"), "{html}");
        assert!(html.contains("<tr><th>frames failed</th><td>61</td></tr>"));
        assert!(
            html.contains("<th>failed: not_signed</th><td>1 failures, 61 frames (first: Video frame at 40 ms is not in its group's signature)</td>"),
            "{html}"
        );
        assert!(html.contains("Signed frames per second"));
    }
}
