//! HTTP-FLV playback: `GET /APP/STREAM.flv` streams the FLV header, metadata, sequence headers,
//! the GOP cache, then live tags, as one chunked response. Plain-HTTP plays are mostly served
//! on the raw socket by `flv_direct` (fan-out groups); this route serves the others.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream;
use tracing::{Instrument, Span};

use super::AppState;
use crate::flv;
use crate::hub::{Batch, Subscription};
use crate::placement::overflow_viewers::home_region;
use crate::protocol::Protocol;
use crate::registry::PlayError;

/// Numbers HTTP-FLV viewers in logs, on both play paths.
pub(super) static NEXT_VIEWER_ID: AtomicU64 = AtomicU64::new(1);

/// The answer to a play the registry refused.
pub fn refusal(e: PlayError) -> Response {
    match e {
        PlayError::NotFound(..) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
        // Full or draining: a player may try again shortly (or another relay of the region).
        e => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "2")],
            format!("{e}\n"),
        )
            .into_response(),
    }
}

/// Plays through the HTTP server: HTTPS, and plain-HTTP requests the relay does not serve on
/// the raw socket (`flv_direct`: a play that is not its connection's first request, or whose
/// path has escapes). Each viewer is a response body stream of its own.
pub async fn play(
    State(state): State<AppState>,
    Path((app, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(name) = file.strip_suffix(".flv").filter(|n| !n.is_empty()) else {
        return (StatusCode::NOT_FOUND, "expected /APP/STREAM.flv\n").into_response();
    };
    if let Some(elsewhere) = super::locate::place_flv(&state, &app, name, query.as_deref()) {
        return elsewhere;
    }
    // Placed here by another region's locator (overflow): that region's viewer.
    let home = query.as_deref().and_then(home_region);
    let mut sub = match state
        .registry
        .subscribe_from(&app, name, Protocol::Flv, home)
    {
        Ok(s) => s,
        Err(e) => return refusal(e),
    };
    let viewer = NEXT_VIEWER_ID.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("http_flv", viewer, stream = %format!("{app}/{name}"));
    span.in_scope(|| tracing::info!("viewer started (http-flv)"));
    sub.set_span(span.clone());
    let metrics = state.registry.metrics().clone();
    let live = stream::unfold((sub, span), |(mut sub, span): (Subscription, Span)| {
        let in_span = span.clone();
        async move {
            // Asked for more: the server has taken every byte of the previous batch.
            sub.written();
            match sub.next_batch().await {
                Batch::Data(bufs) => Some((bufs, (sub, span))),
                Batch::End => {
                    tracing::info!(
                        dropped = sub.dropped(),
                        "stream ended: closing http-flv response"
                    );
                    None
                }
            }
        }
        .instrument(in_span)
    })
    .flat_map(stream::iter);
    let body = stream::once(async { flv::file_header() })
        .chain(live)
        .map(move |b: Bytes| {
            metrics.add_bytes_sent(Protocol::Flv, b.len());
            Ok::<Bytes, Infallible>(b)
        });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "video/x-flv")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
