//! Writes a list of shared buffers with as few syscalls as possible (writev).

use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;

/// Most buffers handed to one writev call (well under IOV_MAX).
const MAX_IOVECS: usize = 64;

/// Writes every buffer in order. Fails with `TimedOut` when the peer accepts nothing for
/// `stall` (a slow but moving reader is fine). Returns the number of bytes written.
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &[Bytes],
    stall: Duration,
) -> io::Result<usize> {
    let mut idx = 0usize;
    let mut offset = 0usize;
    let mut total = 0usize;
    while idx < bufs.len() {
        if bufs[idx].len() == offset {
            idx += 1;
            offset = 0;
            continue;
        }
        // The iovec array lives only inside one poll (on the stack), not in the future: this
        // future is part of every viewer connection's memory.
        let (from, first_offset) = (idx, offset);
        let write = std::future::poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, b) in bufs[from..].iter().take(MAX_IOVECS).enumerate() {
                slices[i] = IoSlice::new(if i == 0 { &b[first_offset..] } else { &b[..] });
                count = i + 1;
            }
            std::pin::Pin::new(&mut *w).poll_write_vectored(cx, &slices[..count])
        });
        let mut n = tokio::time::timeout(stall, write)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer accepted nothing"))??;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        total += n;
        while n > 0 && idx < bufs.len() {
            let left = bufs[idx].len() - offset;
            if n >= left {
                n -= left;
                idx += 1;
                offset = 0;
            } else {
                offset += n;
                n = 0;
            }
        }
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
