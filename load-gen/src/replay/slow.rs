//! `--slow-viewers N`: viewers that join like the others and then fall behind (read at
//! `--slow-rate`, or stop reading), on top of the trace's crowd. They are measured in a
//! [`Stats`] of their own, so the run's figures stay the normal viewers', and reported under
//! `slow_viewers`: what they received, how often the relay skipped frames for them (sequence
//! gaps) and whether it disconnected them.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::pace::{Ending, FINAL_CHECK, Pace, SlowRate};
use super::stats::Stats;
use super::target::{Endpoint, ProtocolChoice};
use super::viewer::{SessionEnd, ViewerSpec, run_session};

/// What the client side saw of the slow viewers' sessions.
#[derive(Debug, Default)]
pub struct SlowCounts {
    /// Seconds from each session's request to the relay closing it (sessions that played).
    pub closed_after_s: Vec<f64>,
    /// Stopped viewers whose connection the relay had closed (seen at the final check).
    pub closed_at_check: u64,
    /// Stopped viewers the relay still served at the final check.
    pub still_served: u64,
}

/// The slow viewers of a run.
pub struct SlowCrowd {
    pub rate: SlowRate,
    viewers: u64,
    pub stats: Rc<RefCell<Stats>>,
    pub counts: Rc<RefCell<SlowCounts>>,
    ending: Rc<Ending>,
    tasks: Vec<JoinHandle<()>>,
}

/// Where slow viewer `k` plays: the regions' targets in turn, with the run's protocol.
pub struct Placement<'a> {
    pub regions: &'a [Rc<[Endpoint]>],
    pub protocol: ProtocolChoice,
    pub app: Rc<str>,
    pub stream: Rc<str>,
    pub delayed_acks: bool,
}

impl SlowCrowd {
    /// Starts `n` slow viewers now; they stay until [`SlowCrowd::finish`].
    pub fn start(n: u32, rate: SlowRate, stats: Stats, to: &Placement<'_>) -> Self {
        let stats = Rc::new(RefCell::new(stats));
        let counts = Rc::new(RefCell::new(SlowCounts::default()));
        let ending = Rc::new(Ending::default());
        let tasks = (0..u64::from(n))
            .map(|k| {
                let region = (k as usize) % to.regions.len().max(1);
                let spec = ViewerSpec {
                    region,
                    protocol: to.protocol.for_viewer(k),
                    endpoints: to.regions[region].clone(),
                    app: to.app.clone(),
                    stream: to.stream.clone(),
                    delayed_acks: to.delayed_acks,
                    viewer: k,
                    verify: None,
                    hls_start_segments: 3,
                    pace: Pace::Slow {
                        rate,
                        ending: ending.clone(),
                    },
                };
                tokio::task::spawn_local(run_slow_viewer(
                    spec,
                    stats.clone(),
                    counts.clone(),
                    ending.clone(),
                ))
            })
            .collect();
        Self {
            rate,
            viewers: n.into(),
            stats,
            counts,
            ending,
            tasks,
        }
    }

    /// Ends the slow viewers: stopped ones first read again for up to [`FINAL_CHECK`] to
    /// see whether the relay still serves them.
    pub async fn finish(mut self) -> Self {
        self.ending.set();
        if self.rate == SlowRate::Stop {
            let deadline = Instant::now() + FINAL_CHECK + Duration::from_secs(1);
            while self.tasks.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self
    }

    /// The report's `slow_viewers` section.
    pub fn report(&self, wall_seconds: f64) -> Value {
        let st = self.stats.borrow();
        let counts = self.counts.borrow();
        let mut lag = super::Histogram::new();
        for h in &st.lag_by_region {
            lag.merge(h);
        }
        let ms = |q: f64| lag.quantile(q).map(|us| us as f64 / 1000.0);
        let mut closed = counts.closed_after_s.clone();
        closed.sort_by(f64::total_cmp);
        let (rate, bits) = match self.rate {
            SlowRate::Stop => ("stop".to_owned(), 0.0),
            SlowRate::BitsPerSecond(b) => (format!("{}kbit", b / 1000.0), b),
        };
        let viewers = self.viewers;
        json!({
            "viewers": viewers,
            "rate": rate,
            "rate_bits_per_s": bits,
            "sessions": st.sessions,
            "joined": st.startup_ms.len(),
            "errors": st.errors,
            "closed_by_relay": closed.len() as u64 + counts.closed_at_check,
            "closed_after_s": {
                "count": closed.len(),
                "min": closed.first(),
                "p50": super::histogram::sorted_quantile(&closed, 0.5),
                "max": closed.last(),
            },
            "closed_at_final_check": counts.closed_at_check,
            "still_served_at_final_check": counts.still_served,
            "frames": st.frames,
            "frames_skipped": st.frames_missing,
            "frames_out_of_order": st.frames_out_of_order,
            "bytes": st.bytes,
            "kbit_per_s_per_viewer": if viewers > 0 && wall_seconds > 0.0 {
                st.bytes as f64 * 8.0 / 1000.0 / wall_seconds / viewers as f64
            } else {
                0.0
            },
            "lag_ms": { "p50": ms(0.5), "p99": ms(0.99), "max": lag.max().map(|us| us as f64 / 1000.0) },
            "kinds": st.error_kinds,
        })
    }
}

/// One slow viewer: sessions until the run ends, a pause after each failure. The relay
/// closing a session that played is counted with how long it lasted.
async fn run_slow_viewer(
    spec: ViewerSpec,
    stats: Rc<RefCell<Stats>>,
    counts: Rc<RefCell<SlowCounts>>,
    ending: Rc<Ending>,
) {
    let last_picture = Rc::new(Cell::new(None));
    loop {
        let started = Instant::now();
        let end = run_session(&spec, &stats, false, &last_picture).await;
        let at_check = ending.get();
        match end {
            SessionEnd::Disconnected(why) => {
                stats.borrow_mut().disconnect(why);
                let mut c = counts.borrow_mut();
                if at_check {
                    c.closed_at_check += 1;
                } else {
                    c.closed_after_s.push(started.elapsed().as_secs_f64());
                }
            }
            SessionEnd::Error(why) => stats.borrow_mut().error(why),
            // Not a probe: a stopped viewer's final check ran out with the connection open.
            SessionEnd::Probed(_) => counts.borrow_mut().still_served += 1,
            SessionEnd::Refused(_) => {}
        }
        if at_check {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
