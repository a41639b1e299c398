//! A TCP stream whose writes fail once the peer has accepted nothing for a while, so a viewer
//! that stops reading is disconnected even inside the HTTP server.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::metrics::Metrics;
use crate::rtmp::close_reason::CloseReason;

pub struct WriteTimeoutStream {
    inner: TcpStream,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    /// Counts the close as `slow_viewer` in `surge_relay_connections_closed_total`.
    metrics: Option<Arc<Metrics>>,
}

impl WriteTimeoutStream {
    pub fn new(inner: TcpStream, timeout: Duration, metrics: Option<Arc<Metrics>>) -> Self {
        WriteTimeoutStream {
            inner,
            timeout,
            stalled: None,
            metrics,
        }
    }

    /// The socket, to look at what the client sent before the HTTP server reads it.
    pub fn tcp(&self) -> &TcpStream {
        &self.inner
    }

    /// The socket alone, for a connection the relay serves outside the HTTP server.
    pub fn into_tcp(self) -> TcpStream {
        self.inner
    }

    fn on_write_result<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.stalled = None;
                Poll::Ready(v)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let peer = self.inner.peer_addr().map(|a| a.to_string());
                        let reason = CloseReason::SlowViewer(String::new());
                        // Once per connection: the error ends it (later writes would only
                        // repeat it).
                        if let (Some(m), Some(label)) = (self.metrics.take(), reason.metric_label())
                        {
                            m.connection_closed(label);
                        }
                        tracing::warn!(
                            peer = %peer.unwrap_or_default(),
                            "http connection closed reason=slow viewer: socket accepted nothing for {timeout:?}"
                        );
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("slow viewer: socket accepted nothing for {timeout:?}"),
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

use std::future::Future;

impl AsyncRead for WriteTimeoutStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeoutStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.on_write_result(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.on_write_result(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.on_write_result(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// axum listener: TCP_NODELAY plus the write timeout on every accepted connection.
pub struct TimeoutListener {
    pub inner: tokio::net::TcpListener,
    pub timeout: Duration,
    /// SO_SNDBUF for accepted sockets (0 = OS default).
    pub send_buffer: usize,
    pub metrics: Arc<Metrics>,
}

impl axum::serve::Listener for TimeoutListener {
    type Io = WriteTimeoutStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((s, addr)) => {
                    let _ = s.set_nodelay(true);
                    if self.send_buffer > 0 {
                        let _ = socket2::SockRef::from(&s).set_send_buffer_size(self.send_buffer);
                    }
                    let metrics = Some(self.metrics.clone());
                    return (WriteTimeoutStream::new(s, self.timeout, metrics), addr);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
