//! Prometheus metrics for the relay (`/metrics`). Counters move as events happen; gauges that
//! describe current state (viewers, ingest bitrate) are refreshed from the registry on scrape;
//! histograms of durations are sampled on the write paths (see [`histogram`]).
//!
//! Every series carries `tier`, `region` and the `--metrics-label`s. `surge_build_info` is
//! unprefixed (the operator exposes one too, with `component="operator"`); the rest are
//! `surge_relay_*`.

pub mod histogram;
pub mod labels;

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::protocol::Protocol;
use histogram::{
    DurationHistogram, FRAME_DELAY_BUCKETS, PLAY_START_BUCKETS, UPSTREAM_CONNECT_BUCKETS,
};

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, DurationHistogram, fn() -> DurationHistogram>;

/// A duration histogram per protocol, resolved once (a family lookup builds label strings).
struct ByProtocol {
    rtmp: DurationHistogram,
    flv: DurationHistogram,
}

impl ByProtocol {
    fn of(family: &HistogramFamily) -> Self {
        let protocol = |p: &str| vec![("protocol".to_string(), p.to_string())];
        // One statement each: the family's lock guard lives to the end of its statement.
        let rtmp = family.get_or_create(&protocol("rtmp")).clone();
        let flv = family.get_or_create(&protocol("flv")).clone();
        ByProtocol { rtmp, flv }
    }

    fn get(&self, protocol: Protocol) -> &DurationHistogram {
        match protocol {
            Protocol::Rtmp => &self.rtmp,
            Protocol::Flv => &self.flv,
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub viewers: Family<Labels, Gauge>,
    /// Deprecated (kept one release): `ingest_bits_per_second` / 1000.
    pub ingest_kbps: Family<Labels, Gauge>,
    pub ingest_bits_per_second: Family<Labels, Gauge>,
    pub upstream_connected: Family<Labels, Gauge>,
    pub bytes_sent: Family<Labels, Counter>,
    pub dropped_frames: Family<Labels, Counter>,
    pub upstream_reconnects: Family<Labels, Counter>,
    pub connections_closed: Family<Labels, Counter>,
    pub max_viewers: Gauge,
    pub placements: Family<Labels, Counter>,
    /// Plays this relay refused itself for lack of room, by protocol and reason.
    pub viewers_refused: Family<Labels, Counter>,
    /// Publishes refused, by reason (publish_auth's labels, `in_use`, `draining`).
    pub publish_refused: Family<Labels, Counter>,
    /// Signed-frame verification failures on pulled streams, by stream and upstream.
    pub integrity_failures: Family<Labels, Counter>,
    pub load: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    pub capacity: Gauge,
    /// The `bytes_sent` samples of the two viewer protocols, resolved once: they move on every
    /// write, and a family lookup builds its label strings each time.
    bytes_sent_rtmp: Counter,
    bytes_sent_flv: Counter,
    play_start: ByProtocol,
    frame_delay: ByProtocol,
    upstream_connect: DurationHistogram,
}

pub fn stream_labels(app: &str, stream: &str) -> Labels {
    vec![
        ("app".to_string(), app.to_string()),
        ("stream".to_string(), stream.to_string()),
    ]
}

impl Metrics {
    pub fn new(tier: &str, region: &str) -> Self {
        Self::with_labels(tier, region, &[])
    }

    /// `extra`: the `--metrics-label`s, already checked ([`labels`]).
    pub fn with_labels(tier: &str, region: &str, extra: &[(String, String)]) -> Self {
        let constant = [("tier", tier), ("region", region)]
            .into_iter()
            .chain(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .map(|(n, v)| (n.to_string().into(), v.to_string().into()))
            .collect::<Vec<_>>();
        let mut root = Registry::with_labels(constant.into_iter());
        let build_info = Family::<Labels, Gauge>::default();
        build_info
            .get_or_create(&vec![
                ("component".to_string(), "relay".to_string()),
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ])
            .set(1);
        root.register(
            "surge_build_info",
            "Always 1: the component (relay) and its version",
            build_info,
        );
        let registry = root.sub_registry_with_prefix("surge_relay");
        let viewers = Family::<Labels, Gauge>::default();
        let ingest_kbps = Family::<Labels, Gauge>::default();
        let ingest_bits_per_second = Family::<Labels, Gauge>::default();
        let upstream_connected = Family::<Labels, Gauge>::default();
        let bytes_sent = Family::<Labels, Counter>::default();
        let dropped_frames = Family::<Labels, Counter>::default();
        let upstream_reconnects = Family::<Labels, Counter>::default();
        let connections_closed = Family::<Labels, Counter>::default();
        let max_viewers = Gauge::default();
        let load =
            prometheus_client::metrics::gauge::Gauge::<f64, std::sync::atomic::AtomicU64>::default(
            );
        let capacity = Gauge::default();
        let placements = Family::<Labels, Counter>::default();
        let viewers_refused = Family::<Labels, Counter>::default();
        let publish_refused = Family::<Labels, Counter>::default();
        registry.register(
            "viewers",
            "Connected viewers by stream and protocol",
            viewers.clone(),
        );
        registry.register(
            "ingest_bits_per_second",
            "Ingest bitrate per stream over the last 2 s, in bit/s",
            ingest_bits_per_second.clone(),
        );
        registry.register(
            "ingest_kbps",
            "Deprecated, removed in the next release: use surge_relay_ingest_bits_per_second (this is it over 1000, in kbit/s)",
            ingest_kbps.clone(),
        );
        registry.register(
            "upstream_connected",
            "1 while the stream's upstream pull is connected",
            upstream_connected.clone(),
        );
        registry.register(
            "bytes_sent",
            "Bytes written to viewers by protocol",
            bytes_sent.clone(),
        );
        registry.register(
            "dropped_frames",
            "Frames skipped for slow viewers, per stream",
            dropped_frames.clone(),
        );
        registry.register(
            "upstream_reconnects",
            "Times an upstream pull lost its connection and retried",
            upstream_reconnects.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections the relay closed, by reason",
            connections_closed.clone(),
        );
        registry.register(
            "max_viewers",
            "Configured viewer capacity of this relay",
            max_viewers.clone(),
        );
        registry.register(
            "placements",
            "Viewers this relay placed as its region's locator, by outcome (edge, overflow, refused, not_found)",
            placements.clone(),
        );
        registry.register(
            "viewers_refused",
            "Plays this relay refused for lack of room, by protocol and reason (full, draining)",
            viewers_refused.clone(),
        );
        registry.register(
            "publish_refused",
            "Publishes refused, by reason (not_origin, missing_key, wrong_key, keys_unavailable, in_use, draining)",
            publish_refused.clone(),
        );
        let integrity_failures = Family::<Labels, Counter>::default();
        registry.register(
            "integrity_failures",
            "Pulled streams whose signed frames failed verification (the upstream was dropped), by app, stream, upstream and reason",
            integrity_failures.clone(),
        );
        registry.register(
            "load",
            "Viewers over capacity at the current bitrates (0..1; /readyz is 503 from --ready-max-load)",
            load.clone(),
        );
        registry.register(
            "capacity",
            "Viewers this relay holds at its current streams' bitrates (--max-viewers, --max-egress-mbps)",
            capacity.clone(),
        );
        let play_start: HistogramFamily =
            Family::new_with_constructor(|| DurationHistogram::new(PLAY_START_BUCKETS));
        registry.register_with_unit(
            "play_start",
            "Time from a play request accepted to the first video keyframe written to the viewer's socket (HTTP-FLV: handed to the HTTP server), by protocol",
            Unit::Seconds,
            play_start.clone(),
        );
        let frame_delay: HistogramFamily =
            Family::new_with_constructor(|| DurationHistogram::new(FRAME_DELAY_BUCKETS));
        registry.register_with_unit(
            "frame_delay",
            "Time from a frame's arrival at this relay (publisher or upstream) to its write to a viewer or downstream relay, by protocol; sampled at every video keyframe written to each viewer after its first (the join is play_start)",
            Unit::Seconds,
            frame_delay.clone(),
        );
        let upstream_connect = DurationHistogram::new(UPSTREAM_CONNECT_BUCKETS);
        registry.register_with_unit(
            "upstream_connect",
            "Time from a pull's start, or the loss of its upstream while the stream was live, to the first audio or video frame from an upstream (failed attempts, backoff and failover included)",
            Unit::Seconds,
            upstream_connect.clone(),
        );
        let protocol = |p: &str| vec![("protocol".to_string(), p.to_string())];
        let bytes_sent_rtmp = bytes_sent.get_or_create(&protocol("rtmp")).clone();
        let bytes_sent_flv = bytes_sent.get_or_create(&protocol("flv")).clone();
        // Counters that dashboards and alerts rate start at 0: "none yet" then reads as a
        // rate of 0, not as no data.
        for p in [Protocol::Rtmp, Protocol::Flv] {
            for reason in ["full", "draining"] {
                let _ = viewers_refused.get_or_create(&vec![
                    ("protocol".to_string(), p.as_str().to_string()),
                    ("reason".to_string(), reason.to_string()),
                ]);
            }
        }
        for outcome in ["edge", "overflow", "refused", "not_found"] {
            let _ = placements.get_or_create(&vec![("outcome".to_string(), outcome.to_string())]);
        }
        Metrics {
            registry: root,
            viewers,
            ingest_kbps,
            ingest_bits_per_second,
            upstream_connected,
            bytes_sent,
            dropped_frames,
            upstream_reconnects,
            connections_closed,
            max_viewers,
            load,
            capacity,
            placements,
            viewers_refused,
            publish_refused,
            integrity_failures,
            bytes_sent_rtmp,
            bytes_sent_flv,
            play_start: ByProtocol::of(&play_start),
            frame_delay: ByProtocol::of(&frame_delay),
            upstream_connect,
        }
    }

    /// A viewer got its first keyframe `waited` after its play was accepted.
    pub fn play_started(&self, protocol: Protocol, waited: Duration) {
        self.play_start.get(protocol).observe(waited);
    }

    /// A sampled frame was written `delay` after it arrived.
    pub fn frame_delayed(&self, protocol: Protocol, delay: Duration) {
        self.frame_delay.get(protocol).observe(delay);
    }

    /// A pull got its first frame `waited` after it started or lost its upstream.
    pub fn upstream_connected_after(&self, waited: Duration) {
        self.upstream_connect.observe(waited);
    }

    /// A pulled stream failed verification from `upstream`.
    pub fn integrity_failure(&self, app: &str, stream: &str, upstream: &str, reason: &str) {
        let mut labels = stream_labels(app, stream);
        labels.push(("upstream".to_string(), upstream.to_string()));
        labels.push(("reason".to_string(), reason.to_string()));
        self.integrity_failures.get_or_create(&labels).inc();
    }

    /// One locator answer (`edge`, `overflow`, `refused` or `not_found`).
    pub fn placement(&self, outcome: &str) {
        self.placements
            .get_or_create(&vec![("outcome".to_string(), outcome.to_string())])
            .inc();
    }

    /// A play refused here for lack of room (`full` or `draining`).
    pub fn viewer_refused(&self, protocol: Protocol, reason: &str) {
        self.viewers_refused
            .get_or_create(&vec![
                ("protocol".to_string(), protocol.as_str().to_string()),
                ("reason".to_string(), reason.to_string()),
            ])
            .inc();
    }

    /// A publish refused here (`reason`: a label, never the key).
    pub fn publish_refused(&self, reason: &str) {
        self.publish_refused
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    pub fn add_bytes_sent(&self, protocol: Protocol, n: usize) {
        let counter = match protocol {
            Protocol::Rtmp => &self.bytes_sent_rtmp,
            Protocol::Flv => &self.bytes_sent_flv,
        };
        counter.inc_by(n as u64);
    }

    pub fn connection_closed(&self, reason: &str) {
        self.connections_closed
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_and_placement_counters_start_at_zero() {
        let text = Metrics::new("edge", "eu-west").encode();
        for series in [
            r#"surge_relay_viewers_refused_total{tier="edge",region="eu-west",protocol="rtmp",reason="full"} 0"#,
            r#"surge_relay_viewers_refused_total{tier="edge",region="eu-west",protocol="flv",reason="draining"} 0"#,
            r#"surge_relay_placements_total{tier="edge",region="eu-west",outcome="overflow"} 0"#,
            r#"surge_relay_placements_total{tier="edge",region="eu-west",outcome="refused"} 0"#,
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
    }
}
