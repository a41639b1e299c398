//! The admin surface: `/metrics`, `/api/v1/streams` (what the operator scrapes and placement
//! peers poll), `/healthz` and `/readyz` (the kubelet's probes). Served on `--admin-listen`, a
//! port no public Service exposes; without it, on the playback port as before.

use axum::Router;
use axum::routing::get;

use super::{AppState, readiness, stats};

/// The admin paths, the state still to be given.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(surge_wire::streams_api::PATH, get(stats::streams))
        .route("/metrics", get(stats::metrics))
        .route("/healthz", get(stats::healthz))
        .route("/readyz", get(readiness::readyz))
}

/// The paths [`routes`] serves, for the startup hint and the tests.
pub const PATHS: [&str; 4] = ["/metrics", "/api/v1/streams", "/healthz", "/readyz"];

#[cfg(test)]
mod tests {
    #[test]
    fn the_stats_path_is_the_one_peers_and_the_operator_ask() {
        assert_eq!(super::PATHS[1], surge_wire::streams_api::PATH);
    }
}
