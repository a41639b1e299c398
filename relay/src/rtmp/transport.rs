//! What an RTMP connection runs over: a plain TCP socket or a TLS session on one (RTMPS). The
//! connection code is generic over [`RtmpStream`]; everything specific to the transport is
//! here, so a plain TCP connection compiles to the same reads and writes as before.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::vectored::write_all_vectored;
use crate::hub::ViewerSink;
use crate::tls::split;

/// A byte stream an RTMP session is served on, split into a reader and a writer that run in
/// different tasks.
pub trait RtmpStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Reader: AsyncRead + Unpin + Send + 'static;
    type Writer: RtmpWriter;

    fn peer_addr(&self) -> Option<SocketAddr>;
    fn into_halves(self) -> (Self::Reader, Self::Writer);
}

/// The writing half of a connection.
pub trait RtmpWriter: AsyncWrite + Unpin + Send + Sized + 'static {
    /// Whether a caught-up viewer may be handed to its stream's shared fan-out tasks, which
    /// write one serialized frame to many raw sockets with non-blocking `writev`. A TLS
    /// session encrypts per connection, so its viewers stay on their own task.
    const JOINS_FANOUT_GROUPS: bool;

    /// Writes every buffer in order and sees the bytes leave the writer; `TimedOut` when the
    /// peer accepts nothing for `stall`. Returns the number of bytes written.
    fn write_all_within(
        &mut self,
        bufs: &[Bytes],
        stall: Duration,
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// A player's socket options: SO_SNDBUF (0 = OS default) and TCP_NODELAY.
    fn set_viewer_options(&self, send_buffer: usize, nodelay: bool);

    /// The writer as a fan-out group's sink (a group gives it back as this type); given back
    /// unchanged when it cannot be one.
    fn into_group_sink(self) -> Result<ViewerSink, Self>;
}

fn set_socket_options(sock: &TcpStream, send_buffer: usize, nodelay: bool) {
    let sock = socket2::SockRef::from(sock);
    if send_buffer > 0 {
        let _ = sock.set_send_buffer_size(send_buffer);
    }
    let _ = sock.set_tcp_nodelay(nodelay);
}

impl RtmpStream for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    fn peer_addr(&self) -> Option<SocketAddr> {
        TcpStream::peer_addr(self).ok()
    }

    fn into_halves(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

impl RtmpWriter for OwnedWriteHalf {
    const JOINS_FANOUT_GROUPS: bool = true;

    /// writev until done: a socket holds nothing back, so there is nothing to flush.
    fn write_all_within(
        &mut self,
        bufs: &[Bytes],
        stall: Duration,
    ) -> impl Future<Output = io::Result<usize>> + Send {
        write_all_vectored(self, bufs, stall)
    }

    fn set_viewer_options(&self, send_buffer: usize, nodelay: bool) {
        set_socket_options(self.as_ref(), send_buffer, nodelay);
    }

    fn into_group_sink(self) -> Result<ViewerSink, Self> {
        Ok(Box::new(self))
    }
}

/// RTMPS: a TLS session (handshake done) on a TCP socket.
pub type TlsRtmpStream = tokio_rustls::server::TlsStream<TcpStream>;

impl RtmpStream for TlsRtmpStream {
    type Reader = split::ReadHalf<TlsRtmpStream>;
    type Writer = split::WriteHalf<TlsRtmpStream>;

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.get_ref().0.peer_addr().ok()
    }

    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        split::split(self)
    }
}

impl RtmpWriter for split::WriteHalf<TlsRtmpStream> {
    const JOINS_FANOUT_GROUPS: bool = false;

    /// Then a flush: the session keeps the records a full socket did not take.
    async fn write_all_within(&mut self, bufs: &[Bytes], stall: Duration) -> io::Result<usize> {
        let n = write_all_vectored(self, bufs, stall).await?;
        tokio::time::timeout(stall, self.flush())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer accepted nothing"))??;
        Ok(n)
    }

    fn set_viewer_options(&self, send_buffer: usize, nodelay: bool) {
        self.with_stream(|tls| set_socket_options(tls.get_ref().0, send_buffer, nodelay));
    }

    fn into_group_sink(self) -> Result<ViewerSink, Self> {
        Err(self)
    }
}
