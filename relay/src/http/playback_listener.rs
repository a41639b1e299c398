//! The plain HTTP playback listener handed to axum. Each accepted connection's first bytes are
//! peeked in a task of its own: an HTTP-FLV play (`play_request::sniff`) is served on the raw
//! socket by `flv_direct`, where its viewer can join the stream's fan-out groups; anything
//! else goes to the HTTP server untouched (nothing was read from it).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::Listener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::flv_direct;
use super::play_request::{MAX_REQUEST_LINE, Sniffed, sniff};
use super::queued_listener::QueuedListener;
use super::timeout_io::{TimeoutListener, WriteTimeoutStream};

/// How long a connection may stay silent before the HTTP server gets it as it is.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(10);
/// A request line split over several packets: looks again this often, this many times.
const PEEK_AGAIN: Duration = Duration::from_millis(10);
const PEEKS: usize = 50;

/// Plain HTTP connections, HTTP-FLV plays taken out.
pub type PlaybackListener = QueuedListener<WriteTimeoutStream>;

/// Starts accepting on `inner`; HTTP-FLV plays are served with `state` (the router's).
pub fn spawn(inner: TimeoutListener, state: AppState) -> io::Result<PlaybackListener> {
    let (listener, tx, stop) = QueuedListener::new(inner.local_addr()?);
    tokio::spawn(accept_loop(inner, state, tx, stop));
    Ok(listener)
}

async fn accept_loop(
    mut inner: TimeoutListener,
    state: AppState,
    tx: mpsc::Sender<(WriteTimeoutStream, SocketAddr)>,
    stop: CancellationToken,
) {
    let timeout = inner.timeout;
    loop {
        let (io, addr) = tokio::select! {
            a = inner.accept() => a,
            _ = stop.cancelled() => return,
        };
        let state = state.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            // Boxed: the peek buffer is gone once the connection is routed.
            match Box::pin(first_request(io.tcp())).await {
                Sniffed::FlvPlay(play) => {
                    flv_direct::serve(io.into_tcp(), play, state, timeout).await
                }
                Sniffed::Other | Sniffed::NeedMore => {
                    let _ = tx.send((io, addr)).await;
                }
            }
        });
    }
}

/// Peeks at the connection's first request line (not reading it).
async fn first_request(tcp: &TcpStream) -> Sniffed {
    let mut buf = vec![0u8; MAX_REQUEST_LINE];
    for _ in 0..PEEKS {
        let n = match tokio::time::timeout(FIRST_BYTES_WAIT, tcp.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            // Closed, failed or silent: the HTTP server deals with it as it always did.
            _ => return Sniffed::Other,
        };
        match sniff(&buf[..n]) {
            Sniffed::NeedMore => tokio::time::sleep(PEEK_AGAIN).await,
            s => return s,
        }
    }
    Sniffed::Other
}
