//! The region's locator over HTTP. `GET /api/v1/locate?app=A&stream=S&protocol=rtmp|flv
//! [&region=R]` answers `{url, relay, region, load, overflow}` for players and apps that ask
//! before they play; HTTP-FLV plays on a relay with `--placement-peer` are placed by
//! [`place_flv`] (a 302 to the chosen relay, or served here when this relay is the choice).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use crate::placement::locate::{Located, Outcome, PLACED_PARAM, PlayProtocol, Request};
use crate::placement::overflow_viewers::tag_url;
use crate::placement::poller::Locator;

/// On a redirect: `edge` (an edge of the viewer's region) or `overflow` (a relay further
/// along the overflow order), so clients and load generators can count overflow placements.
pub static PLACEMENT_HEADER: header::HeaderName =
    header::HeaderName::from_static("x-surge-placement");

/// Seconds a refused viewer is told to wait before it asks again.
const RETRY_AFTER_SECONDS: &str = "2";

#[derive(Debug, Serialize)]
struct Answer<'a> {
    url: &'a str,
    relay: &'a str,
    region: &'a str,
    load: f64,
    overflow: bool,
}

fn error(status: StatusCode, message: String) -> Response {
    let mut r = (status, Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    r
}

fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Placed(Located { overflow: true, .. }) => "overflow",
        Outcome::Placed(_) => "edge",
        Outcome::Refused => "refused",
        Outcome::NotFound => "not_found",
    }
}

fn run(state: &AppState, locator: &Locator, req: &Request) -> Outcome {
    let outcome = locator.locate(req);
    state.registry.metrics().placement(outcome_label(&outcome));
    outcome
}

pub async fn locate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| q.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let (Some(app), Some(stream)) = (field("app"), field("stream")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "app and stream are required: /api/v1/locate?app=APP&stream=STREAM&protocol=rtmp|flv"
                .into(),
        );
    };
    let protocol = match field("protocol").map(PlayProtocol::parse) {
        None => PlayProtocol::Flv,
        Some(Some(p)) => p,
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "protocol must be rtmp or flv".into(),
            );
        }
    };
    let Some(locator) = &state.locator else {
        return error(
            StatusCode::NOT_FOUND,
            "this relay is not a locator (started without --placement-peer)".into(),
        );
    };
    let req = Request {
        app,
        stream,
        protocol,
        region: field("region"),
    };
    match run(&state, locator, &req) {
        Outcome::Placed(mut l) => {
            if l.is_self && state.advertise_host.get().is_none() {
                // Reach this relay the way the client just did.
                if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
                    l.url = self_url(&state, host, &req);
                    // Another region's viewer placed here by overflow (only a `region=` query
                    // makes a locator overflow to itself): keep it counted as theirs.
                    if let (true, Some(region)) = (l.overflow, req.region) {
                        l.url = tag_url(&l.url, region);
                    }
                }
            }
            Json(Answer {
                url: &l.url,
                relay: &l.relay,
                region: &l.region,
                load: l.load,
                overflow: l.overflow,
            })
            .into_response()
        }
        Outcome::Refused => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no relay in this region or its overflow has room".into(),
        ),
        Outcome::NotFound => error(
            StatusCode::NOT_FOUND,
            format!("stream {app}/{stream} not found"),
        ),
    }
}

/// A URL for this relay, from the `Host` the client used (`host[:port]`).
fn self_url(state: &AppState, host_header: &str, req: &Request) -> String {
    match req.protocol {
        PlayProtocol::Rtmp => {
            let host = match host_header.rsplit_once(':') {
                Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
                _ => host_header,
            };
            format!(
                "rtmp://{host}:{}/{}/{}",
                state.advertise_rtmp_port.unwrap_or(state.rtmp_port),
                req.app,
                req.stream
            )
        }
        // The HTTP port (and scheme) is the one the client used: keep its Host as is.
        PlayProtocol::Flv => format!(
            "{}://{host_header}/{}/{}.flv?{PLACED_PARAM}",
            if state.https { "https" } else { "http" },
            req.app,
            req.stream
        ),
    }
}

/// Places an HTTP-FLV play that was not placed yet. `None`: serve it here.
pub fn place_flv(state: &AppState, app: &str, name: &str, query: Option<&str>) -> Option<Response> {
    let locator = state.locator.as_ref()?;
    if query.is_some_and(|q| q.split('&').any(|p| p == PLACED_PARAM)) {
        return None;
    }
    let req = Request {
        app,
        stream: name,
        protocol: PlayProtocol::Flv,
        region: None,
    };
    match run(state, locator, &req) {
        Outcome::Placed(l) if l.is_self => None,
        Outcome::Placed(l) => {
            tracing::debug!(stream = %format!("{app}/{name}"), to = %l.url, overflow = l.overflow, "viewer placed elsewhere");
            let placement = if l.overflow { "overflow" } else { "edge" };
            Some(
                (
                    StatusCode::FOUND,
                    [
                        (header::LOCATION, l.url),
                        (PLACEMENT_HEADER.clone(), placement.to_string()),
                    ],
                )
                    .into_response(),
            )
        }
        Outcome::Refused => Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no relay in this region or its overflow has room".into(),
        )),
        // The origin in view lacks it: let the local subscribe answer 404 as usual.
        Outcome::NotFound => None,
    }
}
