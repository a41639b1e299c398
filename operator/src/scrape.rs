//! Reading viewer counts from relays: `GET http://<pod IP>:<admin port>/api/v1/streams` (the
//! relay's `--admin-listen`, which no Service exposes).
//! A relay that does not answer is reported, never fatal.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use surge_wire::streams_api::PATH;

/// What a relay answers; its JSON is defined once, in [`surge_wire::streams_api`].
pub use surge_wire::streams_api::RelayStats;

/// Why a relay could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Largest `/api/v1/streams` body accepted (a relay with thousands of streams stays far below).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// An HTTP client for relay stats, shared by all reconciles.
#[derive(Clone)]
pub struct Scraper {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl Scraper {
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Scraper { client, timeout }
    }

    /// Reads one relay's stats.
    pub async fn scrape(&self, ip: &str, port: u16) -> Result<RelayStats, ScrapeError> {
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let uri: hyper::Uri = format!("http://{host}:{port}{PATH}")
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| ScrapeError::Request(e.to_string()))?;
        let fetch = async {
            let resp = self
                .client
                .get(uri)
                .await
                .map_err(|e| ScrapeError::Request(error_chain(&e)))?;
            if !resp.status().is_success() {
                return Err(ScrapeError::Status(resp.status().as_u16()));
            }
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| ScrapeError::Request(e.to_string()))?
                .to_bytes();
            Ok(serde_json::from_slice::<RelayStats>(&body)?)
        };
        tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| ScrapeError::Timeout(self.timeout))?
    }
}

/// The innermost cause ("Connection refused (os error 111)"), which is what an operator needs.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut root = e;
    while let Some(s) = root.source() {
        root = s;
    }
    root.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_relay_answer_and_counts_one_stream() {
        let json = r#"{"relay":{"tier":"edge","region":"eu-west","viewers":7,"max_viewers":2000},
          "streams":[
            {"app":"live","name":"final","viewers":{"rtmp":3,"flv":4},"source":"upstream",
             "upstream":{"url":"rtmp://x/live","state":"connected"},"ingest_kbps":2500.5,
             "dropped_frames":0,"gop_cache_ms":2000},
            {"app":"live","name":"other","viewers":{"rtmp":100,"flv":0}}]}"#;
        let stats: RelayStats = serde_json::from_str(json).unwrap();
        assert_eq!(stats.relay.tier, "edge");
        assert_eq!(stats.viewers_of("live", "final"), 7);
        assert_eq!(stats.viewers_of("live", "none"), 0);
        assert_eq!(stats.viewers_of("other-app", "final"), 0);
    }

    #[tokio::test]
    async fn unreachable_relay_is_an_error_not_a_panic() {
        // Bind then drop a listener, so the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let s = Scraper::new(Duration::from_millis(500));
        assert!(s.scrape("127.0.0.1", port).await.is_err());
    }

    #[tokio::test]
    async fn scrapes_a_real_http_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route(
            "/api/v1/streams",
            axum::routing::get(|| async {
                r#"{"relay":{"tier":"edge"},"streams":[{"app":"live","name":"s","viewers":{"rtmp":2,"flv":1}}]}"#
            }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let s = Scraper::new(Duration::from_secs(2));
        let stats = s.scrape("127.0.0.1", port).await.unwrap();
        assert_eq!(stats.viewers_of("live", "s"), 3);
        server.abort();
    }
}
