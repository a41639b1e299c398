//! An axum listener fed through a queue by an accepting task that does per-connection work
//! first (a TLS handshake, a peek at the request line), each connection in a task of its own,
//! and hands over what the HTTP server should serve. Dropping the listener stops that task.

use std::io;
use std::net::SocketAddr;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Connections waiting for axum to take them.
const READY_QUEUE: usize = 64;

pub struct QueuedListener<Io> {
    ready: mpsc::Receiver<(Io, SocketAddr)>,
    local: SocketAddr,
    /// Stops the accepting task when the server (and so this listener) is dropped.
    _stop: tokio_util::sync::DropGuard,
}

impl<Io> QueuedListener<Io> {
    /// A listener on `local`, the sender its accepting task hands connections to, and the
    /// token that task stops on.
    pub fn new(local: SocketAddr) -> (Self, mpsc::Sender<(Io, SocketAddr)>, CancellationToken) {
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let stop = CancellationToken::new();
        let listener = QueuedListener {
            ready,
            local,
            _stop: stop.clone().drop_guard(),
        };
        (listener, tx, stop)
    }
}

impl<Io> Listener for QueuedListener<Io>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = Io;
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
