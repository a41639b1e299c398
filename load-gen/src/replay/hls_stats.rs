//! Where an HLS viewer's delivery delay goes, per live frame (broadcaster's clock to the
//! moment its segment was downloaded), split in three parts that add up to it:
//! - chunking: the frame's publish time to its segment's close, estimated as the publish
//!   time of the segment's last frame plus one frame interval (the packager closes a
//!   segment when the next one's first frame arrives);
//! - polling: the segment's close to the arrival of the first playlist that listed it
//!   (the upload to the server and the packager's own delay fall in here too);
//! - download: that playlist's arrival to the segment's last byte (waiting behind earlier
//!   segments of the same playlist included).
//!
//! Also counts playlist fetches (and unchanged ones), segments and their durations.

use serde_json::{Value, json};

use super::histogram::Histogram;

#[derive(Debug, Default)]
pub struct Part {
    hist: Histogram,
    sum_us: u128,
}

impl Part {
    fn record(&mut self, us: u64) {
        self.hist.record(us);
        self.sum_us += us as u128;
    }

    fn report(&self) -> Value {
        let ms = |v: Option<u64>| v.map(|us| round3(us as f64 / 1000.0));
        let n = self.hist.count();
        json!({
            "mean": (n > 0).then(|| round3(self.sum_us as f64 / n as f64 / 1000.0)),
            "p50": ms(self.hist.quantile(0.5)),
            "p99": ms(self.hist.quantile(0.99)),
            "max": ms(self.hist.max()),
        })
    }
}

#[derive(Debug, Default)]
pub struct HlsTotals {
    pub chunking: Part,
    pub polling: Part,
    pub download: Part,
    pub playlist_fetches: u64,
    /// Fetches that listed no new segment (the player then retries after half the target).
    pub playlists_unchanged: u64,
    pub segments: u64,
    pub segment_seconds: f64,
    /// Segments that left the playlist window before the player fetched them.
    pub segments_missed: u64,
}

/// One live frame's times, µs on the broadcaster's clock (the same machine's Unix clock).
#[derive(Debug, Clone, Copy)]
pub struct FrameTimes {
    pub publish_us: u64,
    pub segment_closed_us: u64,
    pub listed_us: u64,
    pub downloaded_us: u64,
}

impl HlsTotals {
    pub fn on_frame(&mut self, t: FrameTimes) {
        // Saturating: a frame the estimate puts after its own listing (clock rounding) counts 0.
        self.chunking
            .record(t.segment_closed_us.saturating_sub(t.publish_us));
        self.polling.record(
            t.listed_us
                .saturating_sub(t.segment_closed_us.max(t.publish_us)),
        );
        self.download
            .record(t.downloaded_us.saturating_sub(t.listed_us));
    }

    pub fn used(&self) -> bool {
        self.playlist_fetches > 0
    }

    pub fn report(&self) -> Value {
        json!({
            "chunking_ms": self.chunking.report(),
            "polling_ms": self.polling.report(),
            "download_ms": self.download.report(),
            "playlist_fetches": self.playlist_fetches,
            "playlists_unchanged": self.playlists_unchanged,
            "segments": self.segments,
            "segment_duration_s_mean": (self.segments > 0)
                .then(|| round3(self.segment_seconds / self.segments as f64)),
            "segments_missed": self.segments_missed,
        })
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_add_up_to_the_delivery_delay() {
        let mut t = HlsTotals::default();
        // Published at 1 s, its segment closed at 3 s, listed at 3.8 s, downloaded at 4 s.
        t.on_frame(FrameTimes {
            publish_us: 1_000_000,
            segment_closed_us: 3_000_000,
            listed_us: 3_800_000,
            downloaded_us: 4_000_000,
        });
        let r = t.report();
        assert_eq!(r["chunking_ms"]["mean"], 2000.0);
        assert_eq!(r["polling_ms"]["mean"], 800.0);
        assert_eq!(r["download_ms"]["mean"], 200.0);
        // A listing before the estimated close (rounding) is zero polling, never negative.
        t.on_frame(FrameTimes {
            publish_us: 1_000_000,
            segment_closed_us: 3_000_000,
            listed_us: 2_999_000,
            downloaded_us: 3_100_000,
        });
        assert_eq!(t.report()["polling_ms"]["max"], 800.0);
        assert!(t.polling.hist.quantile(0.0).is_some_and(|v| v == 0));
    }
}
