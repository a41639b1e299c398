//! Writes a list of shared buffers with as few syscalls as possible (writev).

use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;

use crate::write_cursor::{MAX_IOVECS, WriteCursor};

/// Writes every buffer in order. Fails with `TimedOut` when the peer accepts nothing for
/// `stall` (a slow but moving reader is fine). Returns the number of bytes written.
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &[Bytes],
    stall: Duration,
) -> io::Result<usize> {
    let mut cursor = WriteCursor::default();
    let mut total = 0usize;
    while !cursor.is_done(bufs) {
        // The iovec array lives only inside one poll (on the stack), not in the future: this
        // future is part of every viewer connection's memory.
        let at = cursor;
        let write = std::future::poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let count = at.slices(bufs, &mut slices);
            std::pin::Pin::new(&mut *w).poll_write_vectored(cx, &slices[..count])
        });
        let n = tokio::time::timeout(stall, write)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer accepted nothing"))??;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        total += n;
        cursor.advance(bufs, n);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_everything_in_order() {
        let bufs: Vec<Bytes> = (0..200u8)
            .map(|i| Bytes::from(vec![i; (i as usize % 7) + 1]))
            .collect();
        let expected: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        let (mut a, mut b) = tokio::io::duplex(17);
        let reader = tokio::spawn(async move {
            let mut v = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut v)
                .await
                .map(|_| v)
        });
        let n = write_all_vectored(&mut a, &bufs, Duration::from_secs(5))
            .await
            .expect("write");
        drop(a);
        assert_eq!(n, expected.len());
        assert_eq!(reader.await.expect("join").expect("read"), expected);
    }
}
