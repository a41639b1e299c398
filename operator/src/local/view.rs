//! `surge-operator local`'s live terminal view: one screen redrawn every second with each
//! Stream's `kubectl get streams` row, its regions (viewers, forecast, edges ready/desired,
//! reflectors) and the latest scale events. Pure: [`render`] makes the text; `run` prints it.

use std::collections::VecDeque;
use std::fmt::Write as _;

use crate::crd::{RegionStatus, StreamStatus};
use crate::status::FLASH_CROWD;

/// How many events the view keeps per Stream (the newest last).
pub const EVENTS_KEPT: usize = 8;

/// When to draw the view: `auto` draws it when standard output is a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewMode {
    Auto,
    Always,
    Never,
}

impl ViewMode {
    /// Whether to draw, given whether standard output is a terminal.
    pub fn enabled(self, stdout_is_terminal: bool) -> bool {
        match self {
            ViewMode::Auto => stdout_is_terminal,
            ViewMode::Always => true,
            ViewMode::Never => false,
        }
    }
}

/// An event line as the view shows it: trace time, then what happened.
pub fn event_line(trace_seconds: f64, stream: &str, reason: &str, note: &str) -> String {
    format!("{} {stream}: {reason} {note}", clock(trace_seconds))
}

/// Keeps the newest [`EVENTS_KEPT`] lines.
pub fn remember(events: &mut VecDeque<String>, line: String) {
    events.push_back(line);
    while events.len() > EVENTS_KEPT {
        events.pop_front();
    }
}

/// What the view shows of one Stream.
pub struct StreamView<'a> {
    pub name: &'a str,
    /// `None` before the first reconcile reported.
    pub status: Option<&'a StreamStatus>,
    pub events: &'a VecDeque<String>,
}

/// The whole screen. `header` is the first line (speed, policy, trace time, API address).
pub fn render(header: &str, streams: &[StreamView<'_>]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    let _ = writeln!(
        out,
        "{:<16} {:>8} {:>11} {:>7} {:>6}  FLASH-CROWD",
        "NAME", "VIEWERS", "GROWTH/MIN", "EDGES", "READY"
    );
    for s in streams {
        match s.status {
            Some(st) => {
                let _ = writeln!(
                    out,
                    "{:<16} {:>8} {:>+11.1} {:>7} {:>6}  {}",
                    s.name,
                    st.viewers.total,
                    st.growth_per_minute,
                    st.edges,
                    condition(st, "Ready").map_or("-", |(status, _)| status),
                    flash_crowd(st)
                );
            }
            None => {
                let _ = writeln!(out, "{:<16} (starting)", s.name);
            }
        }
    }
    for s in streams {
        let Some(st) = s.status else { continue };
        let _ = writeln!(
            out,
            "\n{}: {:<12} {:>8} {:>9} {:>12} {:>11}",
            s.name, "REGION", "VIEWERS", "FORECAST", "EDGES r/d", "REFLECTORS"
        );
        for r in &st.regions {
            let pad = " ".repeat(s.name.len() + 2);
            let _ = writeln!(
                out,
                "{pad}{:<12} {:>8} {:>9} {:>12} {:>11}",
                r.name,
                r.viewers,
                r.forecast_viewers,
                edges(r),
                reflectors(r)
            );
        }
        if !s.events.is_empty() {
            let _ = writeln!(out, "\n{}: latest events (trace time)", s.name);
            for e in s.events {
                let _ = writeln!(out, "  {e}");
            }
        }
    }
    out
}

/// `mm:ss` (or `h:mm:ss`) of trace time.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

fn condition<'a>(st: &'a StreamStatus, kind: &str) -> Option<(&'a str, &'a str)> {
    st.conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.as_str(), c.reason.as_str()))
}

fn flash_crowd(st: &StreamStatus) -> String {
    match condition(st, FLASH_CROWD) {
        Some(("True", reason)) => format!("yes ({reason})"),
        Some(_) => "no".to_string(),
        None => "-".to_string(),
    }
}

/// Edges `ready/desired`.
fn edges(r: &RegionStatus) -> String {
    r.tiers
        .iter()
        .find(|t| t.tier == "edge")
        .map_or("-".to_string(), |t| format!("{}/{}", t.ready, t.desired))
}

/// Reflectors `ready/desired` over all levels, `-` without any.
fn reflectors(r: &RegionStatus) -> String {
    let (ready, desired) = r
        .tiers
        .iter()
        .filter(|t| t.tier == "reflector")
        .fold((0, 0), |(a, b), t| (a + t.ready, b + t.desired));
    if desired == 0 && ready == 0 {
        "-".to_string()
    } else {
        format!("{ready}/{desired}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{TierStatus, ViewerCounts};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn cond(kind: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: kind.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    fn tier(kind: &str, level: u32, desired: i32, ready: i32) -> TierStatus {
        TierStatus {
            tier: kind.into(),
            level,
            desired,
            ready,
            ..TierStatus::default()
        }
    }

    #[test]
    fn the_screen_shows_the_row_the_regions_and_the_latest_events() {
        let status = StreamStatus {
            viewers: ViewerCounts {
                total: 1234,
                ..ViewerCounts::default()
            },
            growth_per_minute: 312.0,
            edges: "7/9".into(),
            conditions: vec![
                cond("Ready", "True", "TreeReady"),
                cond(FLASH_CROWD, "True", "GrowthAboveThreshold"),
            ],
            regions: vec![
                RegionStatus {
                    name: "us-east".into(),
                    viewers: 900,
                    forecast_viewers: 1500,
                    tiers: vec![tier("reflector", 1, 2, 1), tier("edge", 0, 6, 5)],
                },
                RegionStatus {
                    name: "eu-west".into(),
                    viewers: 334,
                    forecast_viewers: 400,
                    tiers: vec![tier("edge", 0, 3, 2)],
                },
            ],
            ..StreamStatus::default()
        };
        let mut events = VecDeque::new();
        for i in 0..10 {
            remember(
                &mut events,
                event_line(60.0 * f64::from(i) + 5.0, "demo", "ScaledUp", "edges"),
            );
        }
        let none = VecDeque::new();
        let screen = render(
            "surge-operator local: speed 10",
            &[
                StreamView {
                    name: "demo",
                    status: Some(&status),
                    events: &events,
                },
                StreamView {
                    name: "later",
                    status: None,
                    events: &none,
                },
            ],
        );
        assert!(screen.starts_with("surge-operator local: speed 10\n"));
        let row = screen.lines().find(|l| l.starts_with("demo ")).unwrap();
        for part in [
            "1234",
            "+312.0",
            "7/9",
            "True",
            "yes (GrowthAboveThreshold)",
        ] {
            assert!(row.contains(part), "{part} missing in {row:?}");
        }
        assert!(screen.contains("later            (starting)"), "{screen}");
        let us = screen.lines().find(|l| l.contains("us-east")).unwrap();
        for part in ["900", "1500", "5/6", "1/2"] {
            assert!(us.contains(part), "{part} missing in {us:?}");
        }
        let eu = screen.lines().find(|l| l.contains("eu-west")).unwrap();
        assert!(eu.trim_end().ends_with('-'), "no reflectors: {eu:?}");
        // The newest EVENTS_KEPT events, oldest first.
        assert!(!screen.contains("01:05 demo"), "{screen}");
        assert!(screen.contains("02:05 demo: ScaledUp edges"), "{screen}");
        assert!(screen.contains("09:05 demo: ScaledUp edges"), "{screen}");
        assert_eq!(events.len(), EVENTS_KEPT);
    }

    #[test]
    fn auto_draws_only_on_a_terminal() {
        assert!(ViewMode::Auto.enabled(true));
        assert!(!ViewMode::Auto.enabled(false));
        assert!(ViewMode::Always.enabled(false));
        assert!(!ViewMode::Never.enabled(true));
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(clock(65.0), "01:05");
    }
}
