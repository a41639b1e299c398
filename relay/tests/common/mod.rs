//! Helpers shared by the relay integration tests: start `surge-relay` processes, a tiny RTMP
//! client (publisher and player) built on the relay's own chunk reader, and HTTP GETs.
#![allow(dead_code)]

pub mod flv_reader;
pub mod load_gen;
pub mod numbered_frames;
pub mod relay_process;
pub mod rtmp_client;

use std::time::Duration;

use surge_wire::http_chunked::ChunkedDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Minimal HTTP/1.1 GET with `Connection: close`; returns (status, headers, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect http");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send request");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("http response in time")
        .expect("read response");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

/// The body of a chunked response, up to any malformed framing.
fn dechunk(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = ChunkedDecoder::new().decode_to_vec(b, &mut out);
    out
}

pub async fn stats(addr: std::net::SocketAddr) -> serde_json::Value {
    let (status, _, body) = http_get(addr, "/api/v1/streams").await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).expect("stats json")
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Polls `f` every 50 ms for `window`; false at the first false. For negative checks ("X does
/// not happen"): start it once a positive condition shows the system had the chance.
pub async fn holds_for<F, Fut>(window: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + window;
    loop {
        if !f().await {
            return false;
        }
        if tokio::time::Instant::now() >= deadline {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Tests of one binary run in parallel; those that measure wall-clock time (gaps, lags, grace
/// periods) hold this lock so they do not compete with each other for a small machine's CPU.
pub async fn real_time_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Value of the `/metrics` sample `name{...}` whose labels include every `labels` pair
/// (`None` when there is no such sample).
pub async fn metric(
    addr: std::net::SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let (status, _, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (label_text, value) = rest.rsplit_once("} ")?;
        let all = labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|l| l == format!("{k}=\"{v}\"")));
        if all { value.trim().parse().ok() } else { None }
    })
}
