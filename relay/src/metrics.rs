//! Prometheus metrics for the relay (`/metrics`). Counters move as events happen; gauges that
//! describe current state (viewers, ingest bitrate) are refreshed from the registry on scrape.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::protocol::Protocol;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub viewers: Family<Labels, Gauge>,
    pub ingest_kbps: Family<Labels, Gauge>,
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
}

pub fn stream_labels(app: &str, stream: &str) -> Labels {
    vec![
        ("app".to_string(), app.to_string()),
        ("stream".to_string(), stream.to_string()),
    ]
}

impl Metrics {
    pub fn new(tier: &str, region: &str) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "surge_relay",
            [
                ("tier".into(), tier.to_string().into()),
                ("region".into(), region.to_string().into()),
            ]
            .into_iter(),
        );
        let viewers = Family::<Labels, Gauge>::default();
        let ingest_kbps = Family::<Labels, Gauge>::default();
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
            "ingest_kbps",
            "Ingest bitrate per stream over the last 2 s",
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
        let protocol = |p: &str| vec![("protocol".to_string(), p.to_string())];
        let bytes_sent_rtmp = bytes_sent.get_or_create(&protocol("rtmp")).clone();
        let bytes_sent_flv = bytes_sent.get_or_create(&protocol("flv")).clone();
        Metrics {
            registry,
            viewers,
            ingest_kbps,
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
        }
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
