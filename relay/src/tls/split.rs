//! Read and write halves of one stream (a TLS session) for the RTMP connection's reader and
//! writer tasks. Like `tokio::io::split`, but the write half can still reach the stream, so a
//! player's socket options (send buffer, TCP_NODELAY) are set when it starts playing.
//!
//! Each poll takes a short lock (one TLS record read or written, never held across an await).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug)]
pub struct ReadHalf<S>(Arc<Mutex<S>>);

#[derive(Debug)]
pub struct WriteHalf<S>(Arc<Mutex<S>>);

pub fn split<S>(stream: S) -> (ReadHalf<S>, WriteHalf<S>) {
    let shared = Arc::new(Mutex::new(stream));
    (ReadHalf(shared.clone()), WriteHalf(shared))
}

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    // A panic inside a poll leaves the stream as usable as it was: take it anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S> WriteHalf<S> {
    /// Runs `f` on the stream (between two polls of either half).
    pub fn with_stream<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&lock(&self.0))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadHalf<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(&self.0)).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteHalf<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *lock(&self.0)).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *lock(&self.0)).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        lock(&self.0).is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(&self.0)).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(&self.0)).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn both_directions_run_at_once_through_the_halves() {
        let (a, mut b) = tokio::io::duplex(64);
        let (mut rd, mut wr) = split(a);
        // More than the pipe holds each way: the halves must not block each other.
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            wr.write_all(&sent).await.expect("write");
            wr.flush().await.expect("flush");
            assert_eq!(wr.with_stream(|_| 7), 7);
            wr
        });
        let echo = tokio::spawn(async move {
            let mut got = vec![0u8; 10_000];
            b.read_exact(&mut got).await.expect("read at b");
            b.write_all(&got).await.expect("echo");
            got
        });
        let mut back = vec![0u8; 10_000];
        rd.read_exact(&mut back).await.expect("read back");
        assert_eq!(back, payload);
        assert_eq!(echo.await.expect("echo task"), payload);
        writer.await.expect("writer task");
    }
}
