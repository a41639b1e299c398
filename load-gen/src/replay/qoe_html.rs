//! The HTML report's QoE section: the Periscope study's measures under the chosen
//! pre-buffer, a table per pre-buffer size and playback latency and stalls against it.

use std::fmt::Write;

use serde_json::Value;

use super::svg::{Chart, Series};

fn ms(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.1} ms"))
        .unwrap_or_else(|| "–".into())
}

/// The section for the report's `qoe` object (empty without one).
pub fn section(q: &Value) -> String {
    if q.is_null() {
        return String::new();
    }
    let mut rows = String::new();
    let mut row = |k: &str, v: String| {
        let _ = write!(rows, "<tr><th>{k}</th><td>{v}</td></tr>");
    };
    let p3 = |v: &Value| format!("{} / {} / {}", ms(&v["p50"]), ms(&v["p99"]), ms(&v["max"]));
    row(
        "join time p50 / p95 / p99 (request → first played frame)",
        format!(
            "{} / {} / {}",
            ms(&q["join_time_ms"]["p50"]),
            ms(&q["join_time_ms"]["p95"]),
            ms(&q["join_time_ms"]["p99"])
        ),
    );
    row(
        "stalls, stall ratio",
        format!(
            "{}, {:.3}% ({} s stalled)",
            q["stalls"],
            q["stall_ratio"].as_f64().unwrap_or(0.0) * 100.0,
            q["stalled_s"]
        ),
    );
    row(
        "playback latency p50 / p99 / max",
        p3(&q["playback_latency_ms"]),
    );
    row(
        "delivery latency p50 / p99 / max",
        p3(&q["delivery_latency_ms"]),
    );
    row(
        "buffering delay p50 / p99 / max",
        p3(&q["buffering_delay_ms"]),
    );
    row(
        "frame jitter p50 / p95 / max (std-dev of inter-arrival per session)",
        format!(
            "{} / {} / {}",
            ms(&q["frame_jitter_ms"]["p50"]),
            ms(&q["frame_jitter_ms"]["p95"]),
            ms(&q["frame_jitter_ms"]["max"])
        ),
    );
    row(
        "goodput (media bytes), total / per viewer",
        format!(
            "{:.2} Mbit/s / {} kbit/s",
            q["goodput_mbps"].as_f64().unwrap_or(0.0),
            q["goodput_kbps_per_viewer"]
                .as_f64()
                .map(|x| format!("{x:.0}"))
                .unwrap_or_else(|| "–".into())
        ),
    );
    row("late frames discarded", q["frames_discarded"].to_string());
    let sweep = q["by_player_buffer"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut table = String::from(
        "<tr><th>pre-buffer P</th><th>join p50</th><th>stalls</th><th>stall ratio</th>\
         <th>playback latency p50</th><th>p99</th><th>buffering delay p50</th></tr>",
    );
    let (mut latency, mut stalled) = (Vec::new(), Vec::new());
    for r in &sweep {
        let p = r["player_buffer_s"].as_f64().unwrap_or(0.0);
        let ratio = r["stall_ratio"].as_f64().unwrap_or(0.0);
        let _ = write!(
            table,
            "<tr><td>{p} s</td><td>{}</td><td>{}</td><td>{:.3}%</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ms(&r["join_time_ms_p50"]),
            r["stalls"],
            ratio * 100.0,
            ms(&r["playback_latency_ms_p50"]),
            ms(&r["playback_latency_ms_p99"]),
            ms(&r["buffering_delay_ms_p50"]),
        );
        if let Some(l) = r["playback_latency_ms_p50"].as_f64() {
            latency.push((p, l / 1000.0));
        }
        stalled.push((p, ratio * 100.0));
    }
    let chart = |title, y_label, name: &str, color, points| Chart {
        title,
        x_label: "pre-buffer P (s)",
        y_label,
        series: vec![Series {
            name: name.into(),
            color,
            points,
            dashed: false,
            markers: true,
        }],
        y_from_zero: true,
    };
    format!(
        "<h2>QoE (player buffer model, P = {} s)</h2><table>{rows}</table>\
         <h3>Per pre-buffer size</h3><table>{table}</table><div class=\"plots\">{}{}</div>",
        q["player_buffer_s"],
        chart(
            "Playback latency p50 vs pre-buffer",
            "playback latency (s)",
            "latency p50",
            "#1f77b4",
            latency
        )
        .render(),
        chart(
            "Stall ratio vs pre-buffer (QoE model)",
            "stalled time (%)",
            "stall ratio",
            "#d62728",
            stalled
        )
        .render(),
    )
}
