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

use crate::http::timeout_io::{TimeoutListener, WriteTimeoutStream};

/// Handshaken connections waiting for axum to take them.
const READY_QUEUE: usize = 64;

pub struct HttpsListener {
    ready: mpsc::Receiver<(TlsStream<WriteTimeoutStream>, SocketAddr)>,
    local: SocketAddr,
    /// Stops the accepting task when the server (and so this listener) is dropped.
    _stop: tokio_util::sync::DropGuard,
}

impl HttpsListener {
    /// Starts accepting on `inner`; each connection gets `handshake_timeout` to complete TLS.
    pub fn spawn(
        inner: TimeoutListener,
        acceptor: TlsAcceptor,
        handshake_timeout: Duration,
    ) -> io::Result<HttpsListener> {
        let local = inner.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            inner,
            acceptor,
            handshake_timeout,
            tx,
            stop.clone(),
        ));
        Ok(HttpsListener {
            ready,
            local,
            _stop: stop.drop_guard(),
        })
    }
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

impl Listener for HttpsListener {
    type Io = TlsStream<WriteTimeoutStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
