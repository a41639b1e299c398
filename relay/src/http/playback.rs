//! What viewers reach: HTTP-FLV playback (`/{app}/{file}`) and the region's locator
//! (`/api/v1/locate`). Served on `--http-listen` and `--https-listen`.

use axum::Router;
use axum::routing::get;

use super::{AppState, flv, locate};

/// The playback paths, the state still to be given.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/locate", get(locate::locate))
        .route("/{app}/{file}", get(flv::play))
}
