//! The HTTP side: HTTP-FLV playback and the stats/metrics/health endpoints.

pub mod flv;
pub mod stats;
pub mod timeout_io;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::registry::Registry;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub tier: Arc<str>,
    pub region: Arc<str>,
    pub prewarm: Arc<Vec<(String, String)>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/streams", get(stats::streams))
        .route("/metrics", get(stats::metrics))
        .route("/healthz", get(stats::healthz))
        .route("/readyz", get(stats::readyz))
        .route("/{app}/{file}", get(flv::play))
        .with_state(state)
}
