//! The live display: a progress bar over trace time on a terminal, a log line every
//! five seconds otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

use super::stats::TimelinePoint;

pub struct Progress {
    bar: Option<ProgressBar>,
    ticks: u64,
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
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
        let msg = format!(
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
