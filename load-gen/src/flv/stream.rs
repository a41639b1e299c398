//! An incremental FLV tag parser that keeps only the first `PREFIX_CAP` bytes of each tag.

use super::{MediaMessage, PREFIX_CAP};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlvStreamError {
    #[error("the response body is not FLV (no `FLV` signature)")]
    NotFlv,
    #[error("FLV tag of {0} bytes is larger than any sane frame")]
    TagTooLarge(usize),
}

enum State {
    /// Collecting the 9-byte file header and PreviousTagSize0.
    FileHeader,
    TagHeader,
    Body {
        remaining: usize,
    },
    PrevSize {
        remaining: usize,
    },
}

/// Parses an FLV byte stream fed in arbitrary pieces.
pub struct FlvStreamParser {
    state: State,
    header: [u8; 13],
    header_len: usize,
    type_id: u8,
    timestamp_ms: u32,
    len: usize,
    prefix: [u8; PREFIX_CAP],
    prefix_len: usize,
}

impl Default for FlvStreamParser {
    fn default() -> Self {
        Self::new()
    }
}

const MAX_TAG: usize = 16 << 20;

impl FlvStreamParser {
    pub fn new() -> Self {
        Self {
            state: State::FileHeader,
            header: [0; 13],
            header_len: 0,
            type_id: 0,
            timestamp_ms: 0,
            len: 0,
            prefix: [0; PREFIX_CAP],
            prefix_len: 0,
        }
    }

    /// Feeds bytes; calls `on_message` for every complete tag.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        on_message: &mut impl FnMut(MediaMessage<'_>),
    ) -> Result<(), FlvStreamError> {
        while !data.is_empty() {
            match self.state {
                State::FileHeader => {
                    let take = (13 - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&data[..take]);
                    self.header_len += take;
                    data = &data[take..];
                    if self.header_len >= 3 && &self.header[..3] != b"FLV" {
                        return Err(FlvStreamError::NotFlv);
                    }
                    if self.header_len == 13 {
                        self.header_len = 0;
                        self.state = State::TagHeader;
                    }
                }
                State::TagHeader => {
                    let take = (11 - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&data[..take]);
                    self.header_len += take;
                    data = &data[take..];
                    if self.header_len == 11 {
                        let h = &self.header;
                        self.header_len = 0;
                        self.type_id = h[0] & 0x1f;
                        self.len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
                        self.timestamp_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
                        if self.len > MAX_TAG {
                            return Err(FlvStreamError::TagTooLarge(self.len));
                        }
                        self.prefix_len = 0;
                        self.state = State::Body {
                            remaining: self.len,
                        };
                        if self.len == 0 {
                            self.finish_tag(on_message);
                        }
                    }
                }
                State::Body { remaining } => {
                    let take = remaining.min(data.len());
                    let keep = (PREFIX_CAP - self.prefix_len).min(take);
                    self.prefix[self.prefix_len..self.prefix_len + keep]
                        .copy_from_slice(&data[..keep]);
                    self.prefix_len += keep;
                    data = &data[take..];
                    if take == remaining {
                        self.finish_tag(on_message);
                    } else {
                        self.state = State::Body {
                            remaining: remaining - take,
                        };
                    }
                }
                State::PrevSize { remaining } => {
                    let take = remaining.min(data.len());
                    data = &data[take..];
                    self.state = if take == remaining {
                        State::TagHeader
                    } else {
                        State::PrevSize {
                            remaining: remaining - take,
                        }
                    };
                }
            }
        }
        Ok(())
    }

    fn finish_tag(&mut self, on_message: &mut impl FnMut(MediaMessage<'_>)) {
        on_message(MediaMessage {
            type_id: self.type_id,
            timestamp_ms: self.timestamp_ms,
            len: self.len,
            prefix: &self.prefix[..self.prefix_len],
        });
        self.state = State::PrevSize { remaining: 4 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::FlvTag;
    use crate::flv::file::write_flv;

    #[test]
    fn parses_any_split_of_the_stream() {
        let big: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let tags = vec![
            FlvTag {
                tag_type: 9,
                timestamp_ms: 5,
                data: big.clone(),
            },
            FlvTag {
                tag_type: 8,
                timestamp_ms: 0x0200_0001,
                data: vec![1, 2, 3],
            },
        ];
        let bytes = write_flv(&tags);
        for piece in [1, 2, 7, 13, 100, bytes.len()] {
            let mut parser = FlvStreamParser::new();
            let mut seen = Vec::new();
            for chunk in bytes.chunks(piece) {
                parser
                    .feed(chunk, &mut |m| {
                        seen.push((m.type_id, m.timestamp_ms, m.len, m.prefix.to_vec()))
                    })
                    .expect("valid");
            }
            assert_eq!(seen.len(), 2, "piece {piece}");
            assert_eq!(seen[0], (9, 5, 1000, big[..PREFIX_CAP].to_vec()));
            assert_eq!(seen[1], (8, 0x0200_0001, 3, vec![1, 2, 3]));
        }
    }

    #[test]
    fn rejects_non_flv() {
        let mut parser = FlvStreamParser::new();
        assert_eq!(
            parser.feed(b"<html>", &mut |_| {}),
            Err(FlvStreamError::NotFlv)
        );
    }
}
