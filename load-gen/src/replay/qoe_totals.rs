//! Run totals of the QoE player models ([`super::qoe`]): one model per pre-buffer P (the
//! `--player-buffer` one and the `--buffer-sweep` ones), the sessions' frame jitter and
//! the media goodput, and their part of the JSON report. These models are the replay's
//! only player-buffer model: the report's top-level `stall_ratio`, `details.stalls`,
//! `details.stall_by_prebuffer` and the timeline's `stalls` come from them too.

use serde_json::{Value, json};

use super::histogram::{Histogram, sorted_quantile};
use super::qoe::{Arrival, Jitter, Played, Player};

/// Totals of one pre-buffer size over all sessions.
#[derive(Debug, Clone)]
pub struct ModelTotals {
    pub prebuffer_s: f64,
    pub join_ms: Vec<f64>,
    pub played_ms: f64,
    pub stalled_ms: f64,
    /// Stalls after playback began: counted as each begins (sessions still running
    /// included), plus a session's tail when it ended dry.
    pub stalls: u64,
    pub discarded: u64,
    /// Playback latency of played frames, µs.
    pub latency: Histogram,
    /// Time played frames spent in the buffer, µs.
    pub buffer: Histogram,
}

impl ModelTotals {
    fn new(prebuffer_s: f64) -> Self {
        Self {
            prebuffer_s,
            join_ms: Vec::new(),
            played_ms: 0.0,
            stalled_ms: 0.0,
            stalls: 0,
            discarded: 0,
            latency: Histogram::new(),
            buffer: Histogram::new(),
        }
    }

    pub fn stall_ratio(&self) -> f64 {
        let total = self.played_ms + self.stalled_ms;
        if total > 0.0 {
            self.stalled_ms / total
        } else {
            0.0
        }
    }

    /// What one frame's arrival did to this size's player.
    #[inline]
    pub fn on_arrival(&mut self, a: Arrival) {
        if let Some(joined) = a.joined_ms {
            self.join_ms.push(joined);
        }
        if a.stalled {
            self.stalls += 1;
        }
    }

    #[inline]
    pub fn on_played(&mut self, p: Played, measuring: bool) {
        if !measuring {
            return;
        }
        self.buffer.record(us(p.buffer_ms));
        if let Some(l) = p.latency_ms {
            self.latency.record(us(l));
        }
    }
}

fn us(ms: f64) -> u64 {
    (ms.max(0.0) * 1000.0) as u64
}

#[derive(Debug, Clone)]
pub struct QoeTotals {
    /// Index in `models` of the `--player-buffer` model.
    pub main: usize,
    pub models: Vec<ModelTotals>,
    /// Per ended session that saw two frame intervals: std-dev of video inter-arrival, ms.
    pub jitter_ms: Vec<f64>,
    /// Audio and video payload bytes received (what a player can use).
    pub media_bytes: u64,
    /// Wall time of ended sessions from their request to their end, s: the time in which
    /// `media_bytes` arrived (the burst before the first played frame included).
    pub session_s: f64,
}

impl QoeTotals {
    /// Models for `main` (seconds) and every size in `sweep`, ascending, without repeats.
    pub fn new(main: f64, sweep: &[f64]) -> Self {
        let mut sizes: Vec<f64> = sweep.to_vec();
        sizes.push(main);
        sizes.sort_by(f64::total_cmp);
        sizes.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        let main = sizes
            .iter()
            .position(|p| (p - main).abs() < 1e-9)
            .unwrap_or(0);
        Self {
            main,
            models: sizes.into_iter().map(ModelTotals::new).collect(),
            jitter_ms: Vec::new(),
            media_bytes: 0,
            session_s: 0.0,
        }
    }

    /// The `--player-buffer` model.
    pub fn main_model(&self) -> &ModelTotals {
        &self.models[self.main]
    }

    pub fn new_players(&self) -> Vec<Player> {
        self.models
            .iter()
            .map(|m| Player::new(m.prebuffer_s))
            .collect()
    }

    /// A session ended at `end_ms` (its clock): finishes its players (one per model, fed
    /// through [`ModelTotals::on_arrival`]) and adds them up. Stalls that began during the
    /// session were counted then; a player that ran dry before the end adds its tail here.
    pub fn session_ended(&mut self, players: &mut [Player], jitter: &Jitter, end_ms: f64) {
        for (m, p) in self.models.iter_mut().zip(players.iter_mut()) {
            let before = p.stalls;
            p.finish(end_ms);
            m.stalls += u64::from(p.stalls - before);
            m.played_ms += p.played_ms;
            m.stalled_ms += p.stalled_ms;
            m.discarded += p.discarded;
        }
        if let Some(j) = jitter.std_dev_ms() {
            self.jitter_ms.push(j);
        }
        // The session's clock starts at its request: goodput counts the bytes that arrived
        // while the player was still buffering, so their time counts too.
        self.session_s += end_ms.max(0.0) / 1000.0;
    }

    /// The report's `qoe` object; `delivery` is the run's delivery-latency histogram.
    pub fn report(&self, delivery: &Histogram, wall_seconds: f64) -> Value {
        let main = self.main_model();
        let mut jitter = self.jitter_ms.clone();
        jitter.sort_by(f64::total_cmp);
        let goodput_mbps = if wall_seconds > 0.0 {
            self.media_bytes as f64 * 8.0 / 1e6 / wall_seconds
        } else {
            0.0
        };
        let per_viewer = (self.session_s > 0.0)
            .then(|| self.media_bytes as f64 * 8.0 / 1e3 / self.session_s)
            .map(round3);
        let sweep: Vec<Value> = self.models.iter().map(model_row).collect();
        json!({
            "player_buffer_s": main.prebuffer_s,
            "join_time_ms": quantiles(&main.join_ms),
            "stalls": main.stalls,
            "stall_ratio": main.stall_ratio(),
            "stalled_s": round3(main.stalled_ms / 1000.0),
            "playback_latency_ms": hist(&main.latency),
            "delivery_latency_ms": hist(delivery),
            "buffering_delay_ms": hist(&main.buffer),
            "frames_discarded": main.discarded,
            "frame_jitter_ms": {
                "sessions": jitter.len(),
                "p50": opt(sorted_quantile(&jitter, 0.5)),
                "p95": opt(sorted_quantile(&jitter, 0.95)),
                "max": opt(jitter.last().copied()),
            },
            "goodput_mbps": round3(goodput_mbps),
            "goodput_kbps_per_viewer": per_viewer,
            "by_player_buffer": sweep,
        })
    }
}

fn model_row(m: &ModelTotals) -> Value {
    let ms = |v: Option<u64>| opt(v.map(|us| us as f64 / 1000.0));
    let mut join = m.join_ms.clone();
    join.sort_by(f64::total_cmp);
    json!({
        "player_buffer_s": m.prebuffer_s,
        "join_time_ms_p50": opt(sorted_quantile(&join, 0.5)),
        "stalls": m.stalls,
        "stall_ratio": m.stall_ratio(),
        "playback_latency_ms_p50": ms(m.latency.quantile(0.5)),
        "playback_latency_ms_p99": ms(m.latency.quantile(0.99)),
        "buffering_delay_ms_p50": ms(m.buffer.quantile(0.5)),
        "frames_discarded": m.discarded,
    })
}

fn quantiles(v: &[f64]) -> Value {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    json!({
        "p50": opt(sorted_quantile(&v, 0.5)),
        "p95": opt(sorted_quantile(&v, 0.95)),
        "p99": opt(sorted_quantile(&v, 0.99)),
        "max": opt(v.last().copied()),
    })
}

fn hist(h: &Histogram) -> Value {
    let ms = |v: Option<u64>| opt(v.map(|us| us as f64 / 1000.0));
    json!({
        "p50": ms(h.quantile(0.5)),
        "p99": ms(h.quantile(0.99)),
        "max": ms(h.max()),
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn opt(v: Option<f64>) -> Value {
    v.map(|x| json!(round3(x))).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_size_joins_the_sweep_once_and_rows_follow_size() {
        let q = QoeTotals::new(2.0, &[9.0, 0.5, 2.0, 6.0]);
        let sizes: Vec<f64> = q.models.iter().map(|m| m.prebuffer_s).collect();
        assert_eq!(sizes, vec![0.5, 2.0, 6.0, 9.0]);
        assert_eq!(q.main, 1);
        let q = QoeTotals::new(3.0, &[1.0]);
        assert_eq!(q.models[q.main].prebuffer_s, 3.0);
        let r = q.report(&Histogram::new(), 1.0);
        assert_eq!(r["player_buffer_s"], 3.0);
        assert_eq!(r["by_player_buffer"].as_array().map(Vec::len), Some(2));
        assert!(r["join_time_ms"]["p50"].is_null());
    }

    #[test]
    fn stalls_count_as_they_begin_and_a_dry_tail_once_at_the_session_end() {
        let mut q = QoeTotals::new(0.2, &[]);
        let mut players = q.new_players();
        // 1 s at 25 fps, a 2 s gap (a stall), 0.2 s more (P again), then nothing.
        let mut frames: Vec<(f64, u32)> = (0..25u32).map(|i| (i as f64 * 40.0, i * 40)).collect();
        frames.extend((25..30u32).map(|i| (3000.0 + (i - 25) as f64 * 40.0, i * 40)));
        for (at, ts) in frames {
            let a = players[0].on_frame(at, ts, None, &mut |_| {});
            q.models[0].on_arrival(a);
        }
        // The stall counts while the session runs (the timeline's `stalls`).
        assert_eq!(q.main_model().stalls, 1);
        assert_eq!(q.main_model().join_ms, vec![160.0]);
        // Joined at 160, dry at 1160, P again at 3160 (media 1000..1200), dry at 3360;
        // the session ends at 5000: the tail is the second stall.
        q.session_ended(&mut players, &Jitter::default(), 5000.0);
        let m = q.main_model();
        assert_eq!((m.stalls, u64::from(players[0].stalls)), (2, 2));
        assert!(
            (m.stalled_ms - (2000.0 + 1640.0)).abs() < 1e-6,
            "{}",
            m.stalled_ms
        );
        assert!((m.played_ms - 1200.0).abs() < 1e-6, "{}", m.played_ms);
        assert!((m.stall_ratio() - 3640.0 / 4840.0).abs() < 1e-9);
        // Goodput's time is the whole session, request to end (not only from the join).
        assert!((q.session_s - 5.0).abs() < 1e-9);
    }
}
