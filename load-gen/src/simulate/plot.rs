//! SVG plot: demand against Ready capacity per policy over time, the whole trace on top and
//! the largest surge enlarged below. Hand-written SVG (no dependencies); each line is
//! reduced to at most one point per pixel column, keeping the highest demand and the lowest
//! capacity of the column so shortfalls are never hidden.

use std::fmt::Write;

use super::demand::Demand;
use super::engine::Outcome;
use super::report::Report;

const WIDTH: f64 = 1000.0;
const PANEL_HEIGHT: f64 = 330.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 130.0;
const GAP: f64 = 70.0;

fn color(policy: &str) -> (&'static str, &'static str) {
    match policy {
        "surge" => ("#1f77b4", ""),
        "hpa" => ("#ff7f0e", ""),
        "livejack" => ("#2ca02c", ""),
        "oracle" => ("#7f7f7f", "stroke-dasharray=\"6 4\""),
        "reactive" => ("#d62728", "stroke-dasharray=\"2 3\""),
        _ => ("#9467bd", ""),
    }
}

fn nice_step(range: f64, ticks: f64) -> f64 {
    let raw = (range / ticks).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn short_count(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn time_label(s: f64, span: f64) -> String {
    if span > 4.0 * 3600.0 {
        format!("{}h", trim(s / 3600.0))
    } else if span > 600.0 && s >= 3600.0 {
        let minutes = (s / 60.0).round() as u64;
        format!("{}h{:02}", minutes / 60, minutes % 60)
    } else if span > 600.0 {
        format!("{}m", trim(s / 60.0))
    } else {
        format!("{}s", trim(s))
    }
}

struct Panel {
    from: usize,
    to: usize,
    y0: f64,
    title: String,
}

fn panel(svg: &mut String, p: &Panel, demand: &[f64], outcomes: &[&Outcome]) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = PANEL_HEIGHT - 40.0;
    let span = (p.to - p.from).max(1);
    let columns = (plot_w as usize).min(span);
    let bucket = |c: usize| {
        let a = p.from + c * span / columns;
        let b = (p.from + (c + 1) * span / columns).max(a + 1).min(p.to);
        a..b
    };
    let y_max = demand[p.from..p.to]
        .iter()
        .copied()
        .chain(
            outcomes
                .iter()
                .flat_map(|o| o.capacity[p.from..p.to].iter().copied()),
        )
        .fold(1.0, f64::max)
        * 1.05;
    let x = |i: f64| LEFT + (i - p.from as f64) / span as f64 * plot_w;
    let y = |v: f64| p.y0 + plot_h - v / y_max * plot_h;
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="{:.1}" font-size="15" font-weight="bold">{}</text>"#,
        p.y0 - 10.0,
        p.title
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{:.1}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##,
        p.y0
    );
    let y_step = nice_step(y_max, 5.0);
    let mut v = 0.0;
    while v <= y_max {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{0:.1}" y1="{1:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{2:.1}" y="{3:.1}" font-size="12" text-anchor="end">{4}</text>"##,
            LEFT + plot_w,
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            short_count(v)
        );
        v += y_step;
    }
    // Ticks in whole hours, minutes or seconds, whichever the labels use.
    let unit = if span as f64 > 4.0 * 3600.0 {
        3600.0
    } else if span > 600 {
        60.0
    } else {
        1.0
    };
    let x_step = nice_step(span as f64 / unit, 8.0).ceil().max(1.0) * unit;
    let mut t = (p.from as f64 / x_step).ceil() * x_step;
    while t <= p.to as f64 {
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}" stroke="#eee"/><text x="{0:.1}" y="{3:.1}" font-size="12" text-anchor="middle">{4}</text>"##,
            x(t),
            p.y0,
            p.y0 + plot_h,
            p.y0 + plot_h + 16.0,
            time_label(t, span as f64)
        );
        t += x_step;
    }
    let mut line = |values: Vec<(f64, f64)>, stroke: &str, width: f64, extra: &str| {
        let mut points = String::with_capacity(values.len() * 14);
        for (i, v) in values {
            let _ = write!(points, "{:.1},{:.1} ", x(i), y(v));
        }
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{stroke}" stroke-width="{width}" {extra} points="{}"/>"#,
            points.trim_end()
        );
    };
    let values = (0..columns)
        .map(|c| {
            let r = bucket(c);
            let high = demand[r.clone()].iter().copied().fold(0.0, f64::max);
            (r.start as f64, high)
        })
        .collect();
    line(values, "#000", 2.2, "");
    let mut ordered: Vec<&&Outcome> = outcomes.iter().collect();
    ordered.sort_by_key(|o| o.name == "oracle");
    for o in ordered {
        let (stroke, dash) = color(o.name);
        let values = (0..columns)
            .map(|c| {
                let r = bucket(c);
                let low = o.capacity[r.clone()]
                    .iter()
                    .copied()
                    .fold(f64::MAX, f64::min);
                (r.start as f64, low)
            })
            .collect();
        line(values, stroke, 1.8, dash);
    }
}

/// Renders the plot for one simulation run.
pub fn svg(report: &Report, demand: &Demand, outcomes: &[&Outcome]) -> String {
    let len = demand.len();
    let total: Vec<f64> = (0..len).map(|i| demand.total(i)).collect();
    let mut panels = vec![Panel {
        from: 0,
        to: len,
        y0: TOP,
        title: format!(
            "{}: viewers (black) vs Ready capacity per policy, {} s ready time",
            report.broadcast, report.ready_seconds
        ),
    }];
    if let Some(s) = report.surges.iter().max_by(|a, b| {
        (a.peak_viewers - a.start_viewers).total_cmp(&(b.peak_viewers - b.start_viewers))
    }) {
        let from = (s.start_s as usize).saturating_sub(120);
        let to = (s.end_s as usize + 600).min(len);
        if to > from + 10 {
            panels.push(Panel {
                from,
                to,
                y0: TOP + PANEL_HEIGHT + GAP,
                title: format!("largest surge enlarged: t = {}..{} s", from, to),
            });
        }
    }
    let height = TOP + panels.len() as f64 * (PANEL_HEIGHT + GAP);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    // Legend with the headline figures, one row each.
    let row = |i: usize| 18.0 + 17.0 * i as f64;
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="#000" stroke-width="2.2"/><text x="{2}" y="{3:.1}" font-size="12">demand (viewers)</text>"##,
        LEFT + 24.0,
        row(0),
        LEFT + 30.0,
        row(0) + 4.0
    );
    for (i, p) in report.policies.iter().enumerate() {
        let (stroke, dash) = color(&p.name);
        let label = format!(
            "{}: Ready capacity; under-provisioned {} viewer-s, peak shortfall {}, cost {:.2}x oracle",
            p.name,
            short_count(p.underprovisioned_viewer_seconds),
            short_count(p.peak_shortfall),
            p.cost_vs_oracle
        );
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="{stroke}" stroke-width="2" {dash}/><text x="{2}" y="{3:.1}" font-size="12">{label}</text>"#,
            LEFT + 24.0,
            row(i + 1),
            LEFT + 30.0,
            row(i + 1) + 4.0
        );
    }
    for p in &panels {
        panel(&mut svg, p, &total, outcomes);
    }
    svg.push_str("</svg>\n");
    svg
}
