//! HTTP/1.1 `Transfer-Encoding: chunked` bodies, decoded sans-IO: push the bytes that came
//! off the socket, in pieces of any size, and pull the body out of them.
//!
//! The body is handed out as slices of the input (no copy, no allocation), so an HTTP-FLV
//! viewer pays for framing only. Size lines and trailers are bounded by
//! [`ChunkedDecoder::with_max_line`]; a malformed body is a [`ChunkedError`], never a panic,
//! and the error sticks: a decoder that failed keeps failing.

/// Longest chunk-size line (with extensions) or trailer line accepted by default.
pub const DEFAULT_MAX_LINE: usize = 4096;
/// Largest chunk accepted (4 GiB - 1: chunks are streamed, never buffered).
pub const MAX_CHUNK_SIZE: u64 = u32::MAX as u64;

/// Why a chunked body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("chunk size line has byte {0:#04x} where a hex digit belongs")]
    BadSize(u8),
    #[error("chunk size line has no digits")]
    EmptySize,
    #[error("chunk larger than {MAX_CHUNK_SIZE} bytes")]
    ChunkTooLarge,
    #[error("chunk size or trailer line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("missing CRLF after chunk data or a size line")]
    MissingCrlf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// In a chunk-size line; `in_ext` once past the digits (extensions are skipped).
    Size {
        value: u64,
        digits: usize,
        in_ext: bool,
        len: usize,
    },
    /// Saw the size line's CR.
    SizeLf {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// After the last (zero-size) chunk: trailer lines until an empty one.
    Trailer {
        len: usize,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
    Failed(ChunkedError),
}

const SIZE_START: State = State::Size {
    value: 0,
    digits: 0,
    in_ext: false,
    len: 0,
};

/// Decodes one chunked body. See the module docs.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    max_line: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder refusing size and trailer lines longer than `max_line` bytes.
    pub fn with_max_line(max_line: usize) -> Self {
        Self {
            state: SIZE_START,
            max_line,
        }
    }

    /// True once the last chunk and the trailer's closing empty line were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing bytes from the front of `input` up to the next run of body bytes, and
    /// returns that run (a slice of `input`, consumed too). `None` when `input` is used up
    /// or the body is complete; bytes after the end of the body stay in `input`.
    pub fn next_data<'a>(
        &mut self,
        input: &mut &'a [u8],
    ) -> Result<Option<&'a [u8]>, ChunkedError> {
        loop {
            match self.state {
                State::Failed(ref e) => return Err(e.clone()),
                State::Done => return Ok(None),
                State::Data { remaining } => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    // Both fit in usize after the `min`.
                    let take = remaining.min(input.len() as u64) as usize;
                    let (data, rest) = input.split_at(take);
                    *input = rest;
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining }
                    };
                    return Ok(Some(data));
                }
                _ => {}
            }
            let Some((&b, rest)) = input.split_first() else {
                return Ok(None);
            };
            *input = rest;
            match self.framing_byte(b) {
                Ok(next) => self.state = next,
                Err(e) => {
                    self.state = State::Failed(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Decodes all of `input`, appending the body to `out`; returns [`is_done`](Self::is_done).
    pub fn decode_to_vec(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool, ChunkedError> {
        let mut input = input;
        while let Some(data) = self.next_data(&mut input)? {
            out.extend_from_slice(data);
        }
        Ok(self.is_done())
    }

    /// The state after framing byte `b`.
    fn framing_byte(&self, b: u8) -> Result<State, ChunkedError> {
        let line = |len: usize| {
            if len > self.max_line {
                Err(ChunkedError::LineTooLong(self.max_line))
            } else {
                Ok(len)
            }
        };
        Ok(match self.state {
            State::Size {
                value,
                digits,
                in_ext,
                len,
            } => match b {
                b'\r' if digits == 0 => return Err(ChunkedError::EmptySize),
                b'\r' => State::SizeLf { value },
                _ => {
                    let len = line(len + 1)?;
                    match b {
                        _ if in_ext => State::Size {
                            value,
                            digits,
                            in_ext,
                            len,
                        },
                        b';' | b' ' | b'\t' => State::Size {
                            value,
                            digits,
                            in_ext: true,
                            len,
                        },
                        _ => {
                            let d = (b as char).to_digit(16).ok_or(ChunkedError::BadSize(b))?;
                            let value = value * 16 + u64::from(d);
                            if value > MAX_CHUNK_SIZE {
                                return Err(ChunkedError::ChunkTooLarge);
                            }
                            State::Size {
                                value,
                                digits: digits + 1,
                                in_ext,
                                len,
                            }
                        }
                    }
                }
            },
            State::SizeLf { value } => match (b, value) {
                (b'\n', 0) => State::Trailer { len: 0 },
                (b'\n', remaining) => State::Data { remaining },
                _ => return Err(ChunkedError::MissingCrlf),
            },
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => SIZE_START,
            State::DataCr | State::DataLf => return Err(ChunkedError::MissingCrlf),
            State::Trailer { len } if b == b'\r' => State::TrailerLf { empty: len == 0 },
            State::Trailer { len } => State::Trailer {
                len: line(len + 1)?,
            },
            State::TrailerLf { empty: true } if b == b'\n' => State::Done,
            State::TrailerLf { empty: false } if b == b'\n' => State::Trailer { len: 0 },
            State::TrailerLf { .. } => return Err(ChunkedError::MissingCrlf),
            // next_data handles these without reading a byte.
            State::Data { .. } | State::Done | State::Failed(_) => self.state.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(body: &[u8], piece: usize) -> Result<(Vec<u8>, bool), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut done = false;
        for c in body.chunks(piece) {
            done = d.decode_to_vec(c, &mut out)?;
        }
        Ok((out, done))
    }

    #[test]
    fn decodes_any_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        for piece in 1..=body.len() {
            assert_eq!(
                decode_in_pieces(body, piece),
                Ok((b"hello world".to_vec(), true)),
                "pieces of {piece}"
            );
        }
        assert_eq!(
            ChunkedDecoder::new().decode_to_vec(b"zz\r\n", &mut Vec::new()),
            Err(ChunkedError::BadSize(b'z'))
        );
    }

    #[test]
    fn hands_out_slices_of_the_input_and_leaves_what_follows_the_body() {
        let mut d = ChunkedDecoder::new();
        let mut input: &[u8] = b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        assert_eq!(d.next_data(&mut input), Ok(Some(&b"abc"[..])));
        assert_eq!(d.next_data(&mut input), Ok(Some(&b"de"[..])));
        assert_eq!(d.next_data(&mut input), Ok(None));
        assert!(d.is_done());
        assert_eq!(input, b"NEXT");
        // A chunk split across inputs comes out in parts; nothing is done yet.
        let mut d = ChunkedDecoder::new();
        let mut first: &[u8] = b"a\r\n01234";
        assert_eq!(d.next_data(&mut first), Ok(Some(&b"01234"[..])));
        assert_eq!(d.next_data(&mut first), Ok(None));
        let mut second: &[u8] = b"56789\r\n";
        assert_eq!(d.next_data(&mut second), Ok(Some(&b"56789"[..])));
        assert_eq!(d.next_data(&mut second), Ok(None));
        assert!(!d.is_done());
        // Upper-case digits and leading zeros are sizes too.
        let mut out = Vec::new();
        assert_eq!(
            ChunkedDecoder::new().decode_to_vec(b"000B\r\nhello world\r\n0\r\n\r\n", &mut out),
            Ok(true)
        );
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn refuses_malformed_framing_and_stays_failed() {
        let cases: [(&[u8], ChunkedError); 7] = [
            (b"\r\n", ChunkedError::EmptySize),
            (b"5\rx", ChunkedError::MissingCrlf),
            (b"2\r\nabX", ChunkedError::MissingCrlf),
            (b"2\r\nab\rX", ChunkedError::MissingCrlf),
            (b"100000000\r\n", ChunkedError::ChunkTooLarge),
            (b"-1\r\n", ChunkedError::BadSize(b'-')),
            (b"0\r\nX\rY", ChunkedError::MissingCrlf),
        ];
        for (input, err) in cases {
            let mut d = ChunkedDecoder::new();
            assert_eq!(d.decode_to_vec(input, &mut Vec::new()), Err(err.clone()));
            assert_eq!(d.decode_to_vec(b"0\r\n\r\n", &mut Vec::new()), Err(err));
        }
    }

    #[test]
    fn bounds_size_and_trailer_lines() {
        let mut d = ChunkedDecoder::with_max_line(16);
        let mut long_ext = b"1;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'x', 100));
        assert_eq!(
            d.decode_to_vec(&long_ext, &mut Vec::new()),
            Err(ChunkedError::LineTooLong(16))
        );
        let mut d = ChunkedDecoder::with_max_line(16);
        let mut long_trailer = b"0\r\n".to_vec();
        long_trailer.extend(std::iter::repeat_n(b'x', 100));
        assert_eq!(
            d.decode_to_vec(&long_trailer, &mut Vec::new()),
            Err(ChunkedError::LineTooLong(16))
        );
        // Leading zeros count against the line, not against the size.
        let mut zeros = vec![b'0'; 15];
        zeros.extend_from_slice(b"1\r\nz\r\n0\r\n\r\n");
        let mut out = Vec::new();
        assert_eq!(
            ChunkedDecoder::with_max_line(16).decode_to_vec(&zeros, &mut out),
            Ok(true)
        );
        assert_eq!(out, b"z");
    }
}
