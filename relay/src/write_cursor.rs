//! How far a list of shared buffers has been written: the iovecs to hand the kernel next and
//! how a partial write moves on. Pure; used by every viewer write path.

use std::io::IoSlice;

use bytes::Bytes;

/// Most buffers handed to one writev call (well under IOV_MAX).
pub const MAX_IOVECS: usize = 64;

/// Position in `bufs`: buffer index and the offset inside it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteCursor {
    idx: usize,
    offset: usize,
}

impl WriteCursor {
    /// Whether everything in `bufs` has been written (empty buffers count as written).
    pub fn is_done(&mut self, bufs: &[Bytes]) -> bool {
        while self.idx < bufs.len() && bufs[self.idx].len() == self.offset {
            self.idx += 1;
            self.offset = 0;
        }
        self.idx >= bufs.len()
    }

    /// Fills `out` with the next iovecs; returns how many.
    pub fn slices<'a>(&self, bufs: &'a [Bytes], out: &mut [IoSlice<'a>; MAX_IOVECS]) -> usize {
        let mut count = 0;
        for (i, b) in bufs
            .get(self.idx..)
            .unwrap_or(&[])
            .iter()
            .take(MAX_IOVECS)
            .enumerate()
        {
            out[i] = IoSlice::new(if i == 0 { &b[self.offset..] } else { &b[..] });
            count = i + 1;
        }
        count
    }

    /// Moves past `n` written bytes.
    pub fn advance(&mut self, bufs: &[Bytes], mut n: usize) {
        while n > 0 && self.idx < bufs.len() {
            let left = bufs[self.idx].len() - self.offset;
            if n >= left {
                n -= left;
                self.idx += 1;
                self.offset = 0;
            } else {
                self.offset += n;
                n = 0;
            }
        }
    }

    /// What is left to write, as shared slices of `bufs` (no copy).
    pub fn rest(&self, bufs: &[Bytes]) -> Vec<Bytes> {
        let mut out = Vec::new();
        if let Some(first) = bufs.get(self.idx) {
            out.push(first.slice(self.offset..));
            out.extend(bufs[self.idx + 1..].iter().cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bufs() -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"defg"),
        ]
    }

    #[test]
    fn partial_writes_move_across_buffers_and_rest_is_the_unwritten_tail() {
        let b = bufs();
        let mut c = WriteCursor::default();
        assert!(!c.is_done(&b));
        c.advance(&b, 2);
        assert_eq!(c.rest(&b).concat(), b"cdefg");
        let mut out = [IoSlice::new(&[]); MAX_IOVECS];
        let n = c.slices(&b, &mut out);
        assert_eq!(n, 3);
        assert_eq!(&*out[0], b"c");
        c.advance(&b, 3);
        assert_eq!(c.rest(&b).concat(), b"fg");
        c.advance(&b, 2);
        assert!(c.is_done(&b));
        assert!(c.rest(&b).concat().is_empty());
    }

    #[test]
    fn at_most_max_iovecs_per_call() {
        let b: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i])).collect();
        let c = WriteCursor::default();
        let mut out = [IoSlice::new(&[]); MAX_IOVECS];
        assert_eq!(c.slices(&b, &mut out), MAX_IOVECS);
    }
}
