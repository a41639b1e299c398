//! The relay's stats API, `GET /api/v1/streams` (on its `--admin-listen` port when it has one):
//! the one definition of its JSON, written by the relay and read by the operator (which sizes
//! the relay tree from it) and by placement peers.
//!
//! The answer is one JSON object (`application/json`), [`RelayStats`]:
//!
//! ```json
//! {"relay":{"tier":"edge","region":"eu-west","viewers":3,"max_viewers":2000},
//!  "streams":[{"app":"live","name":"s","viewers":{"rtmp":1,"flv":2},"source":"upstream",
//!              "upstream":{"url":"rtmp://origin:1935/live","state":"connected"},
//!              "ingest_kbps":2500,"dropped_frames":0,"gop_cache_ms":2000}]}
//! ```
//!
//! - `relay` ([`RelayInfo`]) also carries, for placement: `instance`, `rtmp_port`,
//!   `http_port` (playback; the answer may come from the admin port), `advertise_host`
//!   (when set), `capacity` (viewers), `load` (0..1), `ready`, `accepting`.
//! - `relay` ([`RelayInfo`]): `tier` (`origin`, `reflector` or `edge`) and `region` as the relay was
//!   started with; `viewers`, all viewers of all streams (a count); `max_viewers`, the
//!   relay's viewer limit (a count).
//! - `streams` ([`StreamStats`]), one per stream the relay carries: `app` and `name`;
//!   `viewers` by protocol (counts); `source`, `publisher` (pushed to this relay) or
//!   `upstream` (pulled from a parent); `upstream` ([`UpstreamStats`]), `null` for a
//!   published stream, else `state` (`connecting`, `connected`, `reconnecting`, `failed`)
//!   and `url` (known while connected, else `null`); `ingest_kbps`, the stream's incoming
//!   bitrate in kbit/s (an integer); `dropped_frames`, frames dropped for viewers that fell
//!   behind (a count); `gop_cache_ms`, the span of the cached group of pictures new viewers
//!   start from, in milliseconds; `integrity` ([`IntegrityStats`]), only once a pulled
//!   stream's signed frames failed verification (`--verify-key`): `failures` (a count),
//!   `last_upstream` (the `rtmp://` URL that sent them), `last_reason` (the
//!   `surge_relay_integrity_failures_total` reason label) and `last_failure_age_s` (seconds
//!   since, at the time of the answer, so readers need no clock of the relay's);
//!   `overflow_viewers`, only while some viewers of the stream were placed here by overflow:
//!   their count by their own region (the `region=` a locator puts in the play URL it hands
//!   out for an overflow placement), so the operator counts them as that region's demand
//!   rather than this relay's.
//!
//! The relay writes every field. Readers are lenient, so that older relays stay readable: a
//! missing field takes its default (`max_viewers` and `ingest_kbps` become `None`), unknown
//! fields are ignored, and `ingest_kbps` may be a fraction (it is rounded).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// The path the relay serves these stats on.
pub const PATH: &str = "/api/v1/streams";

/// The whole answer of `GET /api/v1/streams`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RelayStats {
    #[serde(default)]
    pub relay: RelayInfo,
    #[serde(default)]
    pub streams: Vec<StreamStats>,
}

/// The relay itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RelayInfo {
    #[serde(default)]
    pub tier: String,
    #[serde(default)]
    pub region: String,
    /// Viewers of all streams, both protocols.
    #[serde(default)]
    pub viewers: u64,
    /// The relay's viewer limit (the relay always sends it).
    #[serde(default)]
    pub max_viewers: Option<u64>,
    /// Placement (omitted by relays that predate it). Unique id of the relay process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The relay's RTMP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmp_port: Option<u16>,
    /// The relay's HTTP (playback) port. Peers poll this answer on the relay's admin port
    /// (`--admin-listen`) when it has one, so the playback port cannot be the polled one; a
    /// relay that omits it is served at the port it was polled at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    /// Host viewers reach it at (`--advertise-host`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_host: Option<String>,
    /// RTMP port viewers are sent to, when not `rtmp_port` (`--advertise-rtmp-port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_rtmp_port: Option<u16>,
    /// HTTP port viewers are sent to, when not the one it was polled at
    /// (`--advertise-http-port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_http_port: Option<u16>,
    /// Viewers it holds at its streams' current bitrates (`--max-viewers`, `--max-egress-mbps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    /// Viewers over capacity, 0..1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    /// What its `/readyz` says (false while draining, warming up, or full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Takes viewers at all (false only while draining).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepting: Option<bool>,
    /// Relays pulling from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<u64>,
}

/// One stream on the relay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    pub app: String,
    pub name: String,
    #[serde(default)]
    pub viewers: ProtocolViewers,
    /// `publisher` or `upstream`.
    #[serde(default)]
    pub source: String,
    /// `None` (JSON `null`) for a published stream.
    #[serde(default)]
    pub upstream: Option<UpstreamStats>,
    /// Incoming bitrate, kbit/s (the relay always sends it).
    #[serde(default, deserialize_with = "rounded_kbps")]
    pub ingest_kbps: Option<u64>,
    #[serde(default)]
    pub dropped_frames: u64,
    /// Span of the cached GOP, milliseconds.
    #[serde(default)]
    pub gop_cache_ms: u32,
    /// Verification failures of what this relay pulled (omitted while there are none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<IntegrityStats>,
    /// Of `viewers`, those a locator placed here by overflow, by their own region (omitted
    /// while there are none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overflow_viewers: BTreeMap<String, u64>,
}

/// Signed frames of a pulled stream that failed verification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityStats {
    /// Failures since the relay started (each one dropped the upstream).
    #[serde(default)]
    pub failures: u64,
    /// The upstream that sent the last failing frames.
    #[serde(default)]
    pub last_upstream: String,
    /// Why they failed: `bad_signature`, `unknown_key`, `mismatch`, ... (the metric's label).
    #[serde(default)]
    pub last_reason: String,
    /// Whole seconds from the last failure to this answer.
    #[serde(default)]
    pub last_failure_age_s: u64,
}

/// Viewers of one stream by protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolViewers {
    #[serde(default)]
    pub rtmp: u64,
    #[serde(default)]
    pub flv: u64,
}

/// A pulled stream's connection to its parent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamStats {
    /// The parent's `rtmp://` (or `rtmps://`) URL while connected, as the relay dialled it
    /// (port written out), else `None` (JSON `null`).
    #[serde(default)]
    pub url: Option<String>,
    /// `connecting`, `connected`, `reconnecting` or `failed`.
    #[serde(default)]
    pub state: String,
}

impl RelayStats {
    /// Viewers of `app/name` on this relay (RTMP plus HTTP-FLV).
    pub fn viewers_of(&self, app: &str, name: &str) -> u64 {
        self.streams
            .iter()
            .filter(|s| s.app == app && s.name == name)
            .map(|s| s.viewers.rtmp + s.viewers.flv)
            .sum()
    }

    /// Viewers of `app/name` placed here by overflow, by their own region.
    pub fn overflow_viewers_of(&self, app: &str, name: &str) -> BTreeMap<String, u64> {
        let mut by_region = BTreeMap::new();
        for s in self
            .streams
            .iter()
            .filter(|s| s.app == app && s.name == name)
        {
            for (region, n) in &s.overflow_viewers {
                *by_region.entry(region.clone()).or_default() += n;
            }
        }
        by_region
    }
}

/// Any JSON number (or null) as whole kbit/s; negative and non-finite values read as 0.
fn rounded_kbps<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let kbps = Option::<f64>::deserialize(d)?;
    // `as` saturates: NaN and negatives become 0, huge values u64::MAX.
    Ok(kbps.map(|k| k.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RelayStats {
        RelayStats {
            relay: RelayInfo {
                tier: "edge".into(),
                region: "eu-west".into(),
                viewers: 7,
                max_viewers: Some(2000),
                ..RelayInfo::default()
            },
            streams: vec![
                StreamStats {
                    app: "live".into(),
                    name: "final".into(),
                    viewers: ProtocolViewers { rtmp: 3, flv: 4 },
                    source: "upstream".into(),
                    upstream: Some(UpstreamStats {
                        url: Some("rtmp://x/live".into()),
                        state: "connected".into(),
                    }),
                    ingest_kbps: Some(2500),
                    dropped_frames: 0,
                    gop_cache_ms: 2000,
                    integrity: None,
                    overflow_viewers: BTreeMap::new(),
                },
                StreamStats {
                    app: "live".into(),
                    name: "pushed".into(),
                    viewers: ProtocolViewers { rtmp: 0, flv: 1 },
                    source: "publisher".into(),
                    upstream: None,
                    ingest_kbps: Some(0),
                    dropped_frames: 2,
                    gop_cache_ms: 160,
                    integrity: None,
                    overflow_viewers: BTreeMap::new(),
                },
            ],
        }
    }

    #[test]
    fn the_relay_writes_every_field_in_order() {
        let json = serde_json::to_string(&sample()).expect("serializes");
        assert_eq!(
            json,
            concat!(
                r#"{"relay":{"tier":"edge","region":"eu-west","viewers":7,"max_viewers":2000},"#,
                r#""streams":[{"app":"live","name":"final","viewers":{"rtmp":3,"flv":4},"#,
                r#""source":"upstream","upstream":{"url":"rtmp://x/live","state":"connected"},"#,
                r#""ingest_kbps":2500,"dropped_frames":0,"gop_cache_ms":2000},"#,
                r#"{"app":"live","name":"pushed","viewers":{"rtmp":0,"flv":1},"#,
                r#""source":"publisher","upstream":null,"#,
                r#""ingest_kbps":0,"dropped_frames":2,"gop_cache_ms":160}]}"#,
            )
        );
        assert_eq!(
            serde_json::from_str::<RelayStats>(&json).expect("reads back"),
            sample()
        );
    }

    #[test]
    fn integrity_failures_are_written_only_when_there_are_some() {
        let mut stats = sample();
        stats.streams[0].integrity = Some(IntegrityStats {
            failures: 2,
            last_upstream: "rtmp://reflector:1935/live".into(),
            last_reason: "bad_signature".into(),
            last_failure_age_s: 12,
        });
        let json = serde_json::to_string(&stats).expect("serializes");
        assert!(
            json.contains(r#""integrity":{"failures":2,"last_upstream":"rtmp://reflector:1935/live","last_reason":"bad_signature","last_failure_age_s":12}"#),
            "{json}"
        );
        assert_eq!(json.matches("integrity").count(), 1, "{json}");
        assert_eq!(
            serde_json::from_str::<RelayStats>(&json).expect("reads"),
            stats
        );
    }

    #[test]
    fn overflow_viewers_are_written_only_when_there_are_some_and_summed_per_stream() {
        let mut stats = sample();
        assert!(
            !serde_json::to_string(&stats)
                .expect("serializes")
                .contains("overflow")
        );
        stats.streams[0].overflow_viewers = BTreeMap::from([("ap-south".into(), 2)]);
        let json = serde_json::to_string(&stats).expect("serializes");
        assert!(
            json.contains(r#""overflow_viewers":{"ap-south":2}"#),
            "{json}"
        );
        let read: RelayStats = serde_json::from_str(&json).expect("reads");
        assert_eq!(read, stats);
        assert_eq!(
            read.overflow_viewers_of("live", "final"),
            BTreeMap::from([("ap-south".to_string(), 2)])
        );
        assert!(read.overflow_viewers_of("live", "pushed").is_empty());
    }

    #[test]
    fn readers_accept_sparse_and_fractional_answers() {
        let json = r#"{"relay":{"tier":"edge"},"streams":[
            {"app":"live","name":"s","viewers":{"rtmp":2,"flv":1},"ingest_kbps":2500.5,"extra":1},
            {"app":"live","name":"s","viewers":{"rtmp":1}},
            {"app":"live","name":"t"}]}"#;
        let stats: RelayStats = serde_json::from_str(json).expect("parses");
        assert_eq!(stats.relay.tier, "edge");
        assert_eq!(stats.relay.max_viewers, None);
        assert_eq!(stats.streams[0].ingest_kbps, Some(2501));
        assert_eq!(stats.streams[1].ingest_kbps, None);
        assert_eq!(stats.viewers_of("live", "s"), 4);
        assert_eq!(stats.viewers_of("live", "t"), 0);
        assert_eq!(stats.viewers_of("other", "s"), 0);
        assert_eq!(
            serde_json::from_str::<RelayStats>("{}").expect("empty"),
            RelayStats::default()
        );
        // A stream without its name is not a stream.
        assert!(serde_json::from_str::<RelayStats>(r#"{"streams":[{"app":"live"}]}"#).is_err());
    }
}
