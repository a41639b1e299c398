//! The HTTP side: HTTP-FLV playback and the stats/metrics/health endpoints, served on
//! `--http-listen` and, over TLS, on `--https-listen` (the same router).

pub mod advertise;
pub mod flv;
pub mod locate;
pub mod readiness;
pub mod stats;
pub mod timeout_io;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::get;

use crate::registry::Registry;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub tier: Arc<str>,
    pub region: Arc<str>,
    pub prewarm: Arc<Vec<(String, String)>>,
    pub gate: Arc<readiness::SharedGate>,
    /// Unique per process (placement peers tell each other apart by it).
    pub instance: Arc<str>,
    pub rtmp_port: u16,
    pub advertise_host: Arc<advertise::AdvertisedHost>,
    /// Ports viewers use when they differ from the listening ones (`--advertise-*-port`).
    pub advertise_rtmp_port: Option<u16>,
    pub advertise_http_port: Option<u16>,
    /// Set with `--placement-peer`: HTTP-FLV plays are placed across the region.
    pub locator: Option<Arc<crate::placement::poller::Locator>>,
    /// This server answers over TLS (`--https-listen`): URLs to itself use `https://`.
    pub https: bool,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/streams", get(stats::streams))
        .route("/api/v1/locate", get(locate::locate))
        .route("/metrics", get(stats::metrics))
        .route("/healthz", get(stats::healthz))
        .route("/readyz", get(readiness::readyz))
        .route("/{app}/{file}", get(flv::play))
        .layer(map_response(allow_any_origin))
        .with_state(state)
}

/// Every answer, errors included, may be read by a page from any origin: a browser player
/// must see a 404 (stream offline) as such, not as an opaque network failure.
async fn allow_any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
