//! The HTTP side of an HTTP-FLV viewer: the request, the response head, and a decoder
//! for `Transfer-Encoding: chunked` bodies.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("response head larger than 16 KiB")]
    HeadTooLarge,
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("malformed chunked encoding")]
    BadChunk,
}

pub fn request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: surge-load\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// The parts of a response head a viewer needs.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub chunked: bool,
    /// Length of the head including the blank line.
    pub len: usize,
}

/// Parses the head if `buf` holds all of it.
pub fn parse_head(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > 16 * 1024 {
            Err(HttpError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed(format!("status line `{status_line}`")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line `{status_line}`")))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    Ok(Some(ResponseHead {
        status,
        chunked,
        len: end + 4,
    }))
}

enum ChunkState {
    Size {
        value: usize,
        digits: usize,
        in_ext: bool,
    },
    SizeLf {
        value: usize,
    },
    Data {
        remaining: usize,
    },
    DataCr,
    DataLf,
    Done,
}

/// Decodes a chunked body fed in arbitrary pieces.
pub struct Dechunker {
    state: ChunkState,
}

impl Default for Dechunker {
    fn default() -> Self {
        Self {
            state: ChunkState::Size {
                value: 0,
                digits: 0,
                in_ext: false,
            },
        }
    }
}

impl Dechunker {
    /// Feeds encoded bytes; `on_data` gets the decoded pieces. Returns true at the end.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        on_data: &mut impl FnMut(&[u8]),
    ) -> Result<bool, HttpError> {
        while !data.is_empty() {
            match self.state {
                ChunkState::Size {
                    value,
                    digits,
                    in_ext,
                } => {
                    let b = data[0];
                    data = &data[1..];
                    self.state = match b {
                        b'\r' => ChunkState::SizeLf { value },
                        _ if in_ext => ChunkState::Size {
                            value,
                            digits,
                            in_ext,
                        },
                        b';' | b' ' | b'\t' => ChunkState::Size {
                            value,
                            digits,
                            in_ext: true,
                        },
                        _ => {
                            let d = (b as char).to_digit(16).ok_or(HttpError::BadChunk)? as usize;
                            if digits >= 8 {
                                return Err(HttpError::BadChunk);
                            }
                            ChunkState::Size {
                                value: value * 16 + d,
                                digits: digits + 1,
                                in_ext,
                            }
                        }
                    };
                }
                ChunkState::SizeLf { value } => {
                    if data[0] != b'\n' {
                        return Err(HttpError::BadChunk);
                    }
                    data = &data[1..];
                    self.state = if value == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data { remaining: value }
                    };
                }
                ChunkState::Data { remaining } => {
                    let take = remaining.min(data.len());
                    on_data(&data[..take]);
                    data = &data[take..];
                    self.state = if take == remaining {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data {
                            remaining: remaining - take,
                        }
                    };
                }
                ChunkState::DataCr | ChunkState::DataLf => {
                    let expected = if matches!(self.state, ChunkState::DataCr) {
                        b'\r'
                    } else {
                        b'\n'
                    };
                    if data[0] != expected {
                        return Err(HttpError::BadChunk);
                    }
                    data = &data[1..];
                    self.state = if expected == b'\r' {
                        ChunkState::DataLf
                    } else {
                        ChunkState::Size {
                            value: 0,
                            digits: 0,
                            in_ext: false,
                        }
                    };
                }
                ChunkState::Done => return Ok(true),
            }
        }
        Ok(matches!(self.state, ChunkState::Done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\nFLV";
        assert_eq!(
            parse_head(head),
            Ok(Some(ResponseHead {
                status: 200,
                chunked: true,
                len: head.len() - 3
            }))
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert!(matches!(
            parse_head(b"SSH-2.0-x\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        let plain = parse_head(b"HTTP/1.0 404 Not Found\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!((plain.status, plain.chunked), (404, false));
    }

    #[test]
    fn dechunks_any_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        for piece in [1, 2, 5, body.len()] {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            let mut done = false;
            for c in body.chunks(piece) {
                done = d.feed(c, &mut |b| out.extend_from_slice(b)).expect("valid");
            }
            assert!(done);
            assert_eq!(out, b"hello world");
        }
        assert_eq!(
            Dechunker::default().feed(b"zz\r\n", &mut |_| {}),
            Err(HttpError::BadChunk)
        );
    }
}
