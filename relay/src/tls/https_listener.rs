//! The HTTPS listener handed to axum: the same accepted sockets as the HTTP one (TCP_NODELAY,
//! send buffer, slow-viewer write timeout), with the TLS handshake done in a task of its own
//! per connection, so a client that stalls its handshake never holds up the others.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::Listener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::http::queued_listener::QueuedListener;
use crate::http::timeout_io::{TimeoutListener, WriteTimeoutStream};

/// Handshaken TLS connections.
pub type HttpsListener = QueuedListener<TlsStream<WriteTimeoutStream>>;

/// Starts accepting on `inner`; each connection gets `handshake_timeout` to complete TLS.
pub fn spawn(
    inner: TimeoutListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
) -> io::Result<HttpsListener> {
    let (listener, tx, stop) = QueuedListener::new(inner.local_addr()?);
    tokio::spawn(accept_loop(inner, acceptor, handshake_timeout, tx, stop));
    Ok(listener)
}

async fn accept_loop(
    mut inner: TimeoutListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    tx: mpsc::Sender<(TlsStream<WriteTimeoutStream>, SocketAddr)>,
    stop: CancellationToken,
) {
    loop {
        let (io, addr) = tokio::select! {
            a = inner.accept() => a,
            _ = stop.cancelled() => return,
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, addr)).await;
                }
                Ok(Err(e)) => tracing::info!(peer = %addr, error = %e, "https handshake failed"),
                Err(_) => {
                    tracing::info!(peer = %addr, "https handshake not completed within {handshake_timeout:?}")
                }
            }
        });
    }
}
