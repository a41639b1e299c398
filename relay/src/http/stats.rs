//! `GET /api/v1/streams` (stats for the control loop), `/metrics`, `/healthz`, `/readyz`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use crate::metrics::stream_labels;
use crate::upstream::UpstreamState;

#[derive(Debug, Serialize)]
pub struct StatsResponse {
    pub relay: RelayStats,
    pub streams: Vec<StreamStats>,
}

#[derive(Debug, Serialize)]
pub struct RelayStats {
    pub tier: String,
    pub region: String,
    pub viewers: usize,
    pub max_viewers: usize,
}

#[derive(Debug, Serialize)]
pub struct StreamStats {
    pub app: String,
    pub name: String,
    pub viewers: ViewerCounts,
    pub source: &'static str,
    pub upstream: Option<UpstreamStats>,
    pub ingest_kbps: u64,
    pub dropped_frames: u64,
    pub gop_cache_ms: u32,
}

#[derive(Debug, Serialize)]
pub struct ViewerCounts {
    pub rtmp: usize,
    pub flv: usize,
}

#[derive(Debug, Serialize)]
pub struct UpstreamStats {
    pub url: Option<String>,
    pub state: &'static str,
}

/// Upstream state as the stats API names it; `url` is known while connected.
pub fn upstream_stats(state: &UpstreamState) -> UpstreamStats {
    match state {
        UpstreamState::Connecting => UpstreamStats {
            url: None,
            state: "connecting",
        },
        UpstreamState::Connected { url } => UpstreamStats {
            url: Some(url.clone()),
            state: "connected",
        },
        UpstreamState::Reconnecting { .. } => UpstreamStats {
            url: None,
            state: "reconnecting",
        },
        UpstreamState::Failed => UpstreamStats {
            url: None,
            state: "failed",
        },
    }
}

pub fn collect(state: &AppState) -> StatsResponse {
    let registry = &state.registry;
    let streams = registry
        .entries()
        .into_iter()
        .map(|((app, name), entry)| {
            let snap = entry.hub.snapshot();
            StreamStats {
                app,
                name,
                viewers: ViewerCounts {
                    rtmp: snap.viewers_rtmp,
                    flv: snap.viewers_flv,
                },
                source: entry.source.as_str(),
                upstream: snap.upstream.as_ref().map(upstream_stats),
                ingest_kbps: snap.ingest_kbps,
                dropped_frames: snap.dropped_frames,
                gop_cache_ms: snap.gop_cache_ms,
            }
        })
        .collect();
    StatsResponse {
        relay: RelayStats {
            tier: state.tier.to_string(),
            region: state.region.to_string(),
            viewers: registry.total_viewers(),
            max_viewers: registry.max_viewers(),
        },
        streams,
    }
}

pub async fn streams(State(state): State<AppState>) -> Json<StatsResponse> {
    Json(collect(&state))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let m = state.registry.metrics();
    // Gauges describe the present: rebuild them from the registry on every scrape.
    m.viewers.clear();
    m.ingest_kbps.clear();
    for ((app, name), entry) in state.registry.entries() {
        let snap = entry.hub.snapshot();
        for (proto, n) in [("rtmp", snap.viewers_rtmp), ("flv", snap.viewers_flv)] {
            let mut labels = stream_labels(&app, &name);
            labels.push(("protocol".to_string(), proto.to_string()));
            m.viewers.get_or_create(&labels).set(n as i64);
        }
        m.ingest_kbps
            .get_or_create(&stream_labels(&app, &name))
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
