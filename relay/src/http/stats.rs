//! `GET /api/v1/streams` (stats for the control loop), `/metrics`, `/healthz`, `/readyz`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use surge_wire::streams_api::{
    IntegrityStats, ProtocolViewers, RelayInfo, RelayStats, StreamStats, UpstreamStats,
};

use super::AppState;
use crate::metrics::stream_labels;
use crate::upstream::UpstreamState;

/// Upstream state as the stats API names it; `url` is known while connected.
pub fn upstream_stats(state: &UpstreamState) -> UpstreamStats {
    let (url, state) = match state {
        UpstreamState::Connecting => (None, "connecting"),
        UpstreamState::Connected { url } => (Some(url.clone()), "connected"),
        UpstreamState::Reconnecting { .. } => (None, "reconnecting"),
        UpstreamState::Failed => (None, "failed"),
    };
    UpstreamStats {
        url,
        state: state.to_string(),
    }
}

/// The `/api/v1/streams` answer (its JSON is defined in [`surge_wire::streams_api`]).
pub fn collect(state: &AppState) -> RelayStats {
    let registry = &state.registry;
    let streams = registry
        .entries()
        .into_iter()
        .map(|((app, name), entry)| {
            let snap = entry.hub.snapshot();
            StreamStats {
                app,
                name,
                viewers: ProtocolViewers {
                    rtmp: snap.viewers_rtmp as u64,
                    flv: snap.viewers_flv as u64,
                },
                source: entry.source.as_str().to_string(),
                upstream: snap.upstream.as_ref().map(upstream_stats),
                ingest_kbps: Some(snap.ingest_kbps),
                dropped_frames: snap.dropped_frames,
                gop_cache_ms: snap.gop_cache_ms,
                integrity: snap.integrity.map(|(failures, last)| IntegrityStats {
                    failures,
                    last_upstream: last.upstream,
                    last_reason: last.reason,
                    last_failure_age_s: last.at.elapsed().as_secs(),
                }),
                overflow_viewers: entry.overflow.snapshot(),
            }
        })
        .collect();
    let room = registry.room();
    let readiness = super::readiness::readiness(state);
    RelayStats {
        relay: RelayInfo {
            tier: state.tier.to_string(),
            region: state.region.to_string(),
            viewers: registry.total_viewers() as u64,
            max_viewers: Some(registry.max_viewers() as u64),
            instance: Some(state.instance.to_string()),
            rtmp_port: Some(state.rtmp_port),
            http_port: Some(state.http_port),
            advertise_host: state.advertise_host.get().as_deref().map(str::to_string),
            advertise_rtmp_port: state.advertise_rtmp_port,
            advertise_http_port: state.advertise_http_port,
            capacity: Some(room.capacity as u64),
            load: Some(room.load),
            ready: Some(readiness.is_ready()),
            accepting: Some(readiness != super::readiness::Readiness::Draining),
            children: None,
        },
        streams,
    }
}

/// This relay as its own locator sees it (the same report its peers poll).
pub fn own_report(
    state: &AppState,
    http_addr: std::net::SocketAddr,
) -> Option<crate::placement::PeerReport> {
    crate::placement::poller::peer_report(&collect(state), http_addr).ok()
}

pub async fn streams(State(state): State<AppState>) -> Json<RelayStats> {
    Json(collect(&state))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let m = state.registry.metrics();
    // Gauges describe the present: rebuild them from the registry on every scrape.
    let room = state.registry.room();
    m.load.set(room.load);
    m.capacity.set(room.capacity as i64);
    m.viewers.clear();
    m.ingest_kbps.clear();
    m.ingest_bits_per_second.clear();
    for ((app, name), entry) in state.registry.entries() {
        let snap = entry.hub.snapshot();
        for (proto, n) in [("rtmp", snap.viewers_rtmp), ("flv", snap.viewers_flv)] {
            let mut labels = stream_labels(&app, &name);
            labels.push(("protocol".to_string(), proto.to_string()));
            m.viewers.get_or_create(&labels).set(n as i64);
        }
        // Both from one snapshot: the deprecated kbps is exactly bits_per_second / 1000.
        let labels = stream_labels(&app, &name);
        m.ingest_bits_per_second
            .get_or_create(&labels)
            .set(i64::try_from(snap.ingest_bps).unwrap_or(i64::MAX));
        m.ingest_kbps
            .get_or_create(&labels)
            .set(snap.ingest_kbps as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready = not draining, and every prewarmed stream is connected upstream and holds a keyframe.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.registry.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    for (app, name) in state.prewarm.iter() {
        let Some(entry) = state.registry.get(app, name) else {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{app}/{name}: not pulling\n"),
            )
                .into_response();
        };
        let snap = entry.hub.snapshot();
        let connected = matches!(snap.upstream, Some(UpstreamState::Connected { .. }));
        if !connected || !snap.has_keyframe {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{app}/{name}: upstream connected={connected}, keyframe={}\n",
                    snap.has_keyframe
                ),
            )
                .into_response();
        }
    }
    (StatusCode::OK, "ready\n").into_response()
}
