//! Minimal inline-SVG line charts for the HTML report (no scripts, no external files).

use std::fmt::Write;

pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    pub markers: bool,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series>,
    /// Force the y axis to start at zero.
    pub y_from_zero: bool,
}

const W: f64 = 560.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 48.0;

/// A "nice" tick step for a range, 1/2/5 × 10^k.
fn nice_step(range: f64, ticks: f64) -> f64 {
    let raw = (range / ticks).max(1e-12);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart<'_> {
    pub fn render(&self) -> String {
        let pts = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="18" font-size="14" font-weight="bold" text-anchor="middle">{}</text>"#,
            W / 2.0,
            esc(self.title)
        );
        if x0 > x1 {
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#888">no data</text></svg>"##,
                W / 2.0,
                H / 2.0
            );
            return svg;
        }
        if self.y_from_zero {
            y0 = y0.min(0.0);
        }
        if x1 - x0 < 1e-9 {
            x1 = x0 + 1.0;
        }
        if y1 - y0 < 1e-9 {
            y1 = y0 + 1.0;
        }
        let ystep = nice_step(y1 - y0, 5.0);
        y0 = (y0 / ystep).floor() * ystep;
        y1 = (y1 / ystep).ceil() * ystep;
        let xstep = nice_step(x1 - x0, 6.0);
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
        let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
        // Grid and ticks.
        let mut y = y0;
        while y <= y1 + ystep * 0.01 {
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                py(y) + 4.0,
                fmt_tick(y),
                py = py(y)
            );
            y += ystep;
        }
        let mut x = (x0 / xstep).ceil() * xstep;
        while x <= x1 + xstep * 0.01 {
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{}" stroke="#f0f0f0"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
                H - BOTTOM,
                H - BOTTOM + 16.0,
                fmt_tick(x),
                px = px(x)
            );
            x += xstep;
        }
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
            W - LEFT - RIGHT,
            H - TOP - BOTTOM
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 10.0,
            esc(self.x_label)
        );
        let _ = write!(
            svg,
            r#"<text transform="translate(14 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (TOP + H - BOTTOM) / 2.0,
            esc(self.y_label)
        );
        // Series and legend.
        for (i, s) in self.series.iter().enumerate() {
            let mut d = String::new();
            for (j, &(x, y)) in s
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .enumerate()
            {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if j == 0 { "M" } else { " L" },
                    px(x),
                    py(y)
                );
            }
            let dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                s.color
            );
            if s.markers {
                for &(x, y) in &s.points {
                    let _ = write!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                        px(x),
                        py(y),
                        s.color
                    );
                }
            }
            let lx = LEFT + 8.0 + i as f64 * 150.0;
            let _ = write!(
                svg,
                r#"<line x1="{lx}" x2="{}" y1="30" y2="30" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="34">{}</text>"#,
                lx + 18.0,
                s.color,
                lx + 22.0,
                esc(&s.name)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_series_and_empty_charts() {
        let chart = Chart {
            title: "Viewers <now>",
            x_label: "s",
            y_label: "viewers",
            series: vec![Series {
                name: "trace".into(),
                color: "#333",
                points: vec![(0.0, 0.0), (10.0, 100.0)],
                dashed: true,
                markers: false,
            }],
            y_from_zero: true,
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("Viewers &lt;now&gt;"));
        assert!(svg.contains("<path d=\"M64.0,"));
        let empty = Chart {
            series: vec![],
            ..chart
        }
        .render();
        assert!(empty.contains("no data"));
        assert_eq!(nice_step(100.0, 5.0), 20.0);
    }
}
