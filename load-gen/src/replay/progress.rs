//! The live display: a progress bar over trace time on a terminal, a log line every
//! five seconds otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

use super::placement::Spread;
use super::stats::TimelinePoint;

pub struct Progress {
    bar: Option<ProgressBar>,
    ticks: u64,
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

/// The live status of one timeline point: viewers now/target, lag p50/p99, stalls,
/// errors and throughput; once viewers spread over more than one relay or were refused or
/// overflowed, also refusals, overflow placements and viewers per relay.
pub fn status_line(p: &TimelinePoint) -> String {
    let mut line = format!(
        "viewers {}/{} (+{} connecting) | lag p50 {} ms p99 {} ms | stalls {} | errors {} | {:.0} Mbit/s",
        p.viewers,
        p.target,
        p.connecting,
        fmt_ms(p.lag_p50_ms),
        fmt_ms(p.lag_p99_ms),
        p.stalls,
        p.errors,
        p.mbps
    );
    let spread = Spread::of(
        p.placement
            .values()
            .flat_map(|r| r.spread.relays.iter().map(|(k, n)| (k, *n))),
    );
    if spread.relays.len() > 1 || p.refused > 0 || p.overflow > 0 {
        line.push_str(&format!(
            " | refused {} | overflow {} | {} relays max {} mean {:.1}",
            p.refused,
            p.overflow,
            spread.relays.len(),
            spread.max,
            spread.mean
        ));
    }
    line
}

impl Progress {
    pub fn new(trace_seconds: f64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(trace_seconds.max(1.0).ceil() as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:24.cyan/blue} trace {pos}/{len} s  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self { bar, ticks: 0 }
    }

    pub fn update(&mut self, p: &TimelinePoint, trace_elapsed: f64) {
        let msg = status_line(p);
        self.ticks += 1;
        match &self.bar {
            Some(bar) => {
                bar.set_position(trace_elapsed.max(0.0) as u64);
                bar.set_message(msg);
            }
            None if self.ticks.is_multiple_of(5) => {
                info!("t={:.0}s trace {:.0}s {msg}", p.t_s, p.trace_t_s)
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::replay::placement::PlacementPoint;

    fn point() -> TimelinePoint {
        TimelinePoint {
            t_s: 12.0,
            trace_t_s: 120.0,
            target: 1000,
            viewers: 950,
            connecting: 40,
            lag_p50_ms: Some(3.26),
            lag_p99_ms: Some(48.04),
            lag_max_ms: Some(210.0),
            frames: 28_500,
            stalls: 7,
            errors: 2,
            disconnects: 1,
            reconnects: 1,
            frame_gap_max_ms: 1_210.0,
            frames_out_of_order: 0,
            mbps: 570.4,
            refused: 0,
            overflow: 0,
            placement: BTreeMap::from([(
                "eu".to_owned(),
                PlacementPoint {
                    refused: 0,
                    overflow: 0,
                    spread: Spread::of([(&"rtmp://127.0.0.1:1935".to_owned(), 950)]),
                },
            )]),
            integrity: None,
        }
    }

    #[test]
    fn status_line_shows_refusals_overflow_and_relays_once_placement_matters() {
        let relays = [
            ("http://e1:1".to_owned(), 400),
            ("http://e2:2".to_owned(), 450),
            ("http://o:3".to_owned(), 100),
        ];
        let placed = TimelinePoint {
            refused: 3,
            overflow: 100,
            placement: BTreeMap::from([(
                "eu".to_owned(),
                PlacementPoint {
                    refused: 3,
                    overflow: 100,
                    spread: Spread::of(relays.iter().map(|(k, n)| (k, *n))),
                },
            )]),
            ..point()
        };
        assert!(
            status_line(&placed)
                .ends_with("| 570 Mbit/s | refused 3 | overflow 100 | 3 relays max 450 mean 316.7"),
            "{}",
            status_line(&placed)
        );
    }

    #[test]
    fn status_line_shows_viewers_lag_stalls_and_errors() {
        assert_eq!(
            status_line(&point()),
            "viewers 950/1000 (+40 connecting) | lag p50 3.3 ms p99 48.0 ms | stalls 7 | errors 2 | 570 Mbit/s"
        );
    }

    #[test]
    fn status_line_without_frames_shows_dashes_for_lag() {
        let idle = TimelinePoint {
            viewers: 0,
            connecting: 5,
            lag_p50_ms: None,
            lag_p99_ms: None,
            lag_max_ms: None,
            stalls: 0,
            errors: 0,
            mbps: 0.0,
            ..point()
        };
        assert_eq!(
            status_line(&idle),
            "viewers 0/1000 (+5 connecting) | lag p50 - ms p99 - ms | stalls 0 | errors 0 | 0 Mbit/s"
        );
    }
}
