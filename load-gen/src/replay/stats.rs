//! Everything the viewers measure, shared by all viewers of the (single-threaded) replay.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::histogram::Histogram;
use super::integrity::{RunCounts, WindowCounts};
use super::placement::{Placement, PlacementPoint, RegionPlacement};
use super::qoe_totals::QoeTotals;

const MAX_ERROR_KINDS: usize = 50;

/// Converts `Instant`s to Unix microseconds without a clock call per frame.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    unix_us: u64,
}

impl Clock {
    pub fn new() -> Self {
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Self {
            instant: Instant::now(),
            unix_us,
        }
    }

    pub fn unix_us(&self, at: Instant) -> u64 {
        self.unix_us + at.saturating_duration_since(self.instant).as_micros() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// One second of the replay.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    /// Wall seconds since the replay started.
    pub t_s: f64,
    /// Trace time (seconds) this moment replays.
    pub trace_t_s: f64,
    /// Viewers the trace asks for now (scaled).
    pub target: u64,
    /// Viewers playing (first keyframe received).
    pub viewers: u64,
    /// Viewers connecting or waiting for their first keyframe.
    pub connecting: u64,
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
    /// Frames received this second.
    pub frames: u64,
    /// Stalls so far under the `--player-buffer` QoE model: counted as they begin, plus one
    /// per ended session whose buffer had run dry at its end.
    pub stalls: u64,
    pub errors: u64,
    pub disconnects: u64,
    /// Reconnects after a failure so far (sessions that played again after a failed one).
    pub reconnects: u64,
    /// The longest time a viewer went between two frames, for gaps ending this second, ms
    /// (what a fault at this moment cost the viewers it touched).
    pub frame_gap_max_ms: f64,
    /// Frames delivered twice or out of order so far.
    pub frames_out_of_order: u64,
    /// Throughput received this second, Mbit/s.
    pub mbps: f64,
    /// Viewers refused so far (every refusal, also a viewer's retries), all regions.
    pub refused: u64,
    /// Sessions placed by overflow so far, all regions.
    pub overflow: u64,
    /// Per region: refusals and overflow placements so far, viewers playing per relay.
    pub placement: BTreeMap<String, PlacementPoint>,
    /// With `--verify-key`: frames settled this second by verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<WindowCounts>,
}

#[derive(Debug)]
pub struct Stats {
    pub clock: Clock,
    pub started: Instant,
    /// Lag totals count frames from this moment on (after `--warmup`).
    pub measure_from: Instant,
    pub lag_total: Histogram,
    pub lag_window: Histogram,
    /// Lag per region over the whole run.
    pub lag_by_region: Vec<Histogram>,
    pub peak_by_region: Vec<u64>,
    pub startup_ms: Vec<f64>,
    pub connect_ms: Vec<f64>,
    pub playing: Vec<u64>,
    pub connecting: Vec<u64>,
    pub viewers_peak: u64,
    pub sessions: u64,
    pub errors: u64,
    pub disconnects: u64,
    pub bytes: u64,
    pub frames: u64,
    pub frames_missing: u64,
    pub frames_unstamped: u64,
    /// Frames published before their viewer asked (GOP-cache catch-up): not in the lag.
    pub frames_catchup: u64,
    /// Frames whose timing-SEI sequence was not above the session's last one: delivered
    /// twice or out of order.
    pub frames_out_of_order: u64,
    /// Per reconnect after a failure: a viewer's last frame before it to its first played
    /// frame after it (what the viewer went without), ms.
    pub reconnect_ms: Vec<f64>,
    /// The longest time any viewer went between two frames, across its reconnects, ms.
    pub frame_gap_max_ms: f64,
    pub error_kinds: BTreeMap<String, u64>,
    pub timeline: Vec<TimelinePoint>,
    pub region_names: Vec<String>,
    /// Per region: where its viewers landed.
    pub placement: Vec<RegionPlacement>,
    /// With `--verify-key`: signed-frame verdicts.
    pub integrity: Option<RunCounts>,
    /// The QoE player models, one per pre-buffer size (`--player-buffer` and
    /// `--buffer-sweep`): join time, playback latency, stalls and stall ratio; jitter.
    /// The run's only player-buffer model: every stall figure of the report comes from it.
    pub qoe: QoeTotals,
    /// HLS viewers' delay breakdown (chunking, polling, download) and polling counts.
    pub hls: super::hls_stats::HlsTotals,
    /// Past `measure_from` (updated once per window).
    measuring: bool,
    window_bytes: u64,
    window_frames: u64,
    window_gap_max_ms: f64,
    window_started: Instant,
}

impl Stats {
    /// Stats for viewers of `region_names`, with QoE player models for the pre-buffer
    /// `player_buffer_s` (the main one) and every size of `buffer_sweep` (seconds).
    pub fn new(region_names: &[String], player_buffer_s: f64, buffer_sweep: &[f64]) -> Self {
        let regions = region_names.len();
        let now = Instant::now();
        Self {
            clock: Clock::new(),
            started: now,
            measure_from: now,
            lag_total: Histogram::new(),
            lag_window: Histogram::new(),
            lag_by_region: vec![Histogram::new(); regions],
            peak_by_region: vec![0; regions],
            startup_ms: Vec::new(),
            connect_ms: Vec::new(),
            playing: vec![0; regions],
            connecting: vec![0; regions],
            viewers_peak: 0,
            sessions: 0,
            errors: 0,
            disconnects: 0,
            bytes: 0,
            frames: 0,
            frames_missing: 0,
            frames_unstamped: 0,
            frames_catchup: 0,
            frames_out_of_order: 0,
            reconnect_ms: Vec::new(),
            frame_gap_max_ms: 0.0,
            error_kinds: BTreeMap::new(),
            timeline: Vec::new(),
            region_names: region_names.to_vec(),
            placement: vec![RegionPlacement::default(); regions],
            integrity: None,
            qoe: QoeTotals::new(player_buffer_s, buffer_sweep),
            hls: Default::default(),
            measuring: true,
            window_bytes: 0,
            window_frames: 0,
            window_gap_max_ms: 0.0,
            window_started: now,
        }
    }

    /// Starts the clock: lag totals count frames from `warmup` after now.
    pub fn start(&mut self, warmup: std::time::Duration) {
        self.started = Instant::now();
        self.measure_from = self.started + warmup;
        self.measuring = warmup.is_zero();
    }

    /// Past `--warmup`: frames count in the run's latency totals.
    pub fn measuring(&self) -> bool {
        self.measuring
    }

    pub fn viewers_now(&self) -> u64 {
        self.playing.iter().sum()
    }

    pub fn connecting_now(&self) -> u64 {
        self.connecting.iter().sum()
    }

    pub fn session_started(&mut self, region: usize) {
        self.sessions += 1;
        self.connecting[region] += 1;
    }

    /// A session of `region` was sent to `relay`.
    pub fn placed(&mut self, region: usize, relay: &str, how: Placement) {
        self.placement[region].placed(relay, how);
    }

    /// A locator or a relay refused a viewer of `region` (503).
    pub fn refused(&mut self, region: usize) {
        self.placement[region].refused();
    }

    pub fn began_playing(
        &mut self,
        region: usize,
        relay: Option<&str>,
        connect_ms: f64,
        startup_ms: f64,
    ) {
        if let Some(relay) = relay {
            self.placement[region].began_playing(relay);
        }
        self.connecting[region] = self.connecting[region].saturating_sub(1);
        self.playing[region] += 1;
        self.connect_ms.push(connect_ms);
        self.startup_ms.push(startup_ms);
        self.viewers_peak = self.viewers_peak.max(self.viewers_now());
        self.peak_by_region[region] = self.peak_by_region[region].max(self.playing[region]);
    }

    #[inline]
    pub fn on_bytes(&mut self, n: usize) {
        self.bytes += n as u64;
        self.window_bytes += n as u64;
    }

    #[inline]
    pub fn on_frame(&mut self, region: usize, lag_us: Option<u64>) {
        self.frames += 1;
        self.window_frames += 1;
        match lag_us {
            Some(l) => {
                self.lag_window.record(l);
                if self.measuring {
                    self.lag_by_region[region].record(l);
                }
            }
            None => self.frames_unstamped += 1,
        }
    }

    pub fn on_catchup_frame(&mut self) {
        self.frames += 1;
        self.window_frames += 1;
        self.frames_catchup += 1;
    }

    pub fn error(&mut self, what: String) {
        self.errors += 1;
        self.count_kind(what);
    }

    /// A viewer's frames came `gap_ms` apart; `reconnected`: the second is the first played
    /// frame of a session after a failed one.
    pub fn frame_gap(&mut self, gap_ms: f64, reconnected: bool) {
        self.frame_gap_max_ms = self.frame_gap_max_ms.max(gap_ms);
        self.window_gap_max_ms = self.window_gap_max_ms.max(gap_ms);
        if reconnected {
            self.reconnect_ms.push(gap_ms);
        }
    }

    pub fn disconnect(&mut self, what: String) {
        self.disconnects += 1;
        self.count_kind(format!("disconnect: {what}"));
    }

    fn count_kind(&mut self, what: String) {
        if self.error_kinds.len() < MAX_ERROR_KINDS || self.error_kinds.contains_key(&what) {
            *self.error_kinds.entry(what).or_default() += 1;
        }
    }

    /// A session ended (for whatever reason) after `playing` was reached or not.
    /// (Its QoE players are accounted for by `qoe.session_ended`.)
    pub fn session_ended(&mut self, region: usize, relay: Option<&str>, was_playing: bool) {
        if let Some(relay) = relay {
            self.placement[region].ended(relay, was_playing);
        }
        if was_playing {
            self.playing[region] = self.playing[region].saturating_sub(1);
        } else {
            self.connecting[region] = self.connecting[region].saturating_sub(1);
        }
    }

    /// Closes the current one-second window into a timeline point.
    pub fn close_window(&mut self, trace_t_s: f64, target: u64) -> &TimelinePoint {
        let now = Instant::now();
        let secs = now
            .saturating_duration_since(self.window_started)
            .max(Duration::from_millis(1))
            .as_secs_f64();
        let ms = |v: Option<u64>| v.map(|us| us as f64 / 1000.0);
        let placement: BTreeMap<String, PlacementPoint> = self
            .region_names
            .iter()
            .zip(self.placement.iter_mut())
            .map(|(name, p)| (name.clone(), p.close_window()))
            .collect();
        let point = TimelinePoint {
            t_s: now.saturating_duration_since(self.started).as_secs_f64(),
            trace_t_s,
            target,
            viewers: self.viewers_now(),
            connecting: self.connecting_now(),
            lag_p50_ms: ms(self.lag_window.quantile(0.5)),
            lag_p99_ms: ms(self.lag_window.quantile(0.99)),
            lag_max_ms: ms(self.lag_window.max()),
            frames: self.window_frames,
            stalls: self.qoe.main_model().stalls,
            errors: self.errors,
            disconnects: self.disconnects,
            reconnects: self.reconnect_ms.len() as u64,
            frame_gap_max_ms: (self.window_gap_max_ms * 1000.0).round() / 1000.0,
            frames_out_of_order: self.frames_out_of_order,
            mbps: self.window_bytes as f64 * 8.0 / 1e6 / secs,
            refused: self.placement.iter().map(|p| p.refused).sum(),
            overflow: self.placement.iter().map(|p| p.overflow).sum(),
            placement,
            integrity: self.integrity.as_mut().map(RunCounts::take_window),
        };
        if self.measuring {
            self.lag_total.merge(&self.lag_window);
        }
        self.measuring = now >= self.measure_from;
        self.lag_window.clear();
        self.window_bytes = 0;
        self.window_frames = 0;
        self.window_gap_max_ms = 0.0;
        self.window_started = now;
        self.timeline.push(point);
        self.timeline.last().expect("just pushed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_point_holds_the_longest_gap_of_its_second_and_the_reconnects_so_far() {
        let mut stats = Stats::new(&["eu".to_owned()], 2.0, &[]);
        stats.frame_gap(33.0, false);
        stats.frame_gap(1_150.0, true);
        stats.frames_out_of_order += 1;
        let first = stats.close_window(1.0, 10).clone();
        assert_eq!(first.frame_gap_max_ms, 1_150.0);
        assert_eq!(first.reconnects, 1);
        assert_eq!(first.frames_out_of_order, 1);
        stats.frame_gap(40.0, false);
        let second = stats.close_window(2.0, 10).clone();
        assert_eq!(second.frame_gap_max_ms, 40.0);
        assert_eq!(second.reconnects, 1);
        assert_eq!(stats.frame_gap_max_ms, 1_150.0);
    }
}
