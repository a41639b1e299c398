//! An incremental FLV tag parser that keeps only the first bytes of each tag (a viewer that
//! inspects media headers and timing, never whole frames).

use crate::flv::{TAG_HEADER_LEN, TagHeader};

/// One complete message (an FLV tag or an RTMP message) of which only the first bytes were
/// kept: its type, timestamp, full length, and the kept prefix.
#[derive(Debug, Clone, Copy)]
pub struct MessagePrefix<'a> {
    pub type_id: u8,
    pub timestamp_ms: u32,
    pub len: usize,
    pub prefix: &'a [u8],
}

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
    prefix: Vec<u8>,
    prefix_cap: usize,
}

/// Largest tag the parser accepts (a cap this large keeps every tag whole).
pub const MAX_TAG: usize = 16 << 20;

impl FlvStreamParser {
    /// A parser keeping the first `prefix_cap` bytes of each tag.
    pub fn new(prefix_cap: usize) -> Self {
        Self {
            state: State::FileHeader,
            header: [0; 13],
            header_len: 0,
            type_id: 0,
            timestamp_ms: 0,
            len: 0,
            // A parser keeping whole tags (a large cap) grows its buffer as tags need.
            prefix: Vec::with_capacity(prefix_cap.min(4096)),
            prefix_cap,
        }
    }

    /// Feeds bytes; calls `on_message` for every complete tag.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        on_message: &mut impl FnMut(MessagePrefix<'_>),
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
                    let take = (TAG_HEADER_LEN - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&data[..take]);
                    self.header_len += take;
                    data = &data[take..];
                    if let Some(h) = TagHeader::parse(&self.header[..self.header_len]) {
                        self.header_len = 0;
                        self.type_id = h.tag_type;
                        self.len = h.data_size;
                        self.timestamp_ms = h.timestamp;
                        if self.len > MAX_TAG {
                            return Err(FlvStreamError::TagTooLarge(self.len));
                        }
                        self.prefix.clear();
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
                    let keep = self.prefix_cap.saturating_sub(self.prefix.len()).min(take);
                    self.prefix.extend_from_slice(&data[..keep]);
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

    fn finish_tag(&mut self, on_message: &mut impl FnMut(MessagePrefix<'_>)) {
        on_message(MessagePrefix {
            type_id: self.type_id,
            timestamp_ms: self.timestamp_ms,
            len: self.len,
            prefix: &self.prefix,
        });
        self.state = State::PrevSize { remaining: 4 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::{FlvTag, write_flv};

    const PREFIX_CAP: usize = 192;

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
            let mut parser = FlvStreamParser::new(PREFIX_CAP);
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
        let mut parser = FlvStreamParser::new(PREFIX_CAP);
        assert_eq!(
            parser.feed(b"<html>", &mut |_| {}),
            Err(FlvStreamError::NotFlv)
        );
    }
}
