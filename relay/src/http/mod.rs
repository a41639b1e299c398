//! The HTTP side: playback (HTTP-FLV and the locator) on `--http-listen` and, over TLS,
//! `--https-listen`; the admin endpoints (stats, metrics, probes) on `--admin-listen`, or
//! on the playback ports too when that is not set.

pub mod admin;
pub mod advertise;
pub mod flv;
pub mod flv_direct;
pub mod locate;
pub mod play_request;
pub mod playback;
pub mod playback_listener;
pub mod queued_listener;
pub mod raw_response;
pub mod readiness;
pub mod stats;
pub mod timeout_io;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::map_response;
use axum::response::Response;

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
    /// The plain playback port (`--http-listen`), reported to peers that poll the admin port.
    pub http_port: u16,
    pub advertise_host: Arc<advertise::AdvertisedHost>,
    /// Ports viewers use when they differ from the listening ones (`--advertise-*-port`).
    pub advertise_rtmp_port: Option<u16>,
    pub advertise_http_port: Option<u16>,
    /// Set with `--placement-peer`: HTTP-FLV plays are placed across the region.
    pub locator: Option<Arc<crate::placement::poller::Locator>>,
    /// This server answers over TLS (`--https-listen`): URLs to itself use `https://`.
    pub https: bool,
}

/// Playback and the admin endpoints on one port (no `--admin-listen`: how relays started).
pub fn router(state: AppState) -> Router {
    for_browsers(playback::routes().merge(admin::routes()), state)
}

/// Playback and the locator only (with `--admin-listen`): admin paths answer 404 here.
pub fn playback_router(state: AppState) -> Router {
    for_browsers(playback::routes(), state)
}

/// The admin endpoints alone, for `--admin-listen`. No CORS header: no page should read them.
pub fn admin_router(state: AppState) -> Router {
    admin::routes().with_state(state)
}

fn for_browsers(routes: Router<AppState>, state: AppState) -> Router {
    routes
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
