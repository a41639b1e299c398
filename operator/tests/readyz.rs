//! The operator's `/readyz` (on `--metrics-addr`), served by the real router over HTTP.
//!
//! Both roles are Ready: the chart's readinessProbe uses `/readyz`, and a rolling update starts
//! the new replica while the old one still holds the Lease, so a standby that reported
//! not-ready would stall every rollout. The body tells the roles apart.

use std::sync::Arc;

use surge_operator::metrics::{Metrics, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serves the operator's router on a free loopback port.
async fn serve(metrics: Arc<Metrics>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router(metrics)).await });
    addr
}

/// `GET path` over HTTP/1.0: (status code, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: operator\r\n\r\n").as_bytes())
        .await
        .expect("send the request");
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .await
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header end in {response:?}"));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head:?}"));
    (code, body.to_string())
}

#[tokio::test]
async fn readyz_is_200_for_a_standby_and_says_leading_once_the_replica_leads() {
    let metrics = Arc::new(Metrics::new());
    let addr = serve(metrics.clone()).await;

    // Before the Lease is won (what run() serves while it waits in the election).
    assert_eq!(get(addr, "/readyz").await, (200, "standby\n".to_string()));
    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_string()));

    // run() sets this once it holds the Lease, before the controller starts.
    metrics.set_leading();
    assert_eq!(get(addr, "/readyz").await, (200, "leading\n".to_string()));
}
