//! A bounded, interleave-safe RTMP chunk stream reader for the upstream (pull) side.
//!
//! rml_rtmp's own deserializer keeps one payload buffer for all chunk streams and panics on
//! interleaved chunks; it must never see raw network bytes. This reader keeps a partial payload
//! per chunk stream, enforces limits on every size it is told about, and returns typed errors
//! instead of panicking, so a broken upstream only costs its own connection.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::HashMap;

/// The chunk size every RTMP peer starts with.
pub const DEFAULT_CHUNK_SIZE: usize = 128;

/// Limits on what a peer may make us buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest message accepted (RTMP allows up to 16 MiB - 1).
    pub max_message_len: usize,
    /// Largest chunk size a peer may announce with SetChunkSize.
    pub max_chunk_size: usize,
    /// Most chunk streams that may be known at once.
    pub max_chunk_streams: usize,
    /// Most bytes held in partial (incomplete) messages over all chunk streams.
    pub max_buffered: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_message_len: 8 * 1024 * 1024,
            max_chunk_size: 1024 * 1024,
            max_chunk_streams: 64,
            max_buffered: 16 * 1024 * 1024,
        }
    }
}

/// One complete RTMP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    pub chunk_stream_id: u32,
    pub type_id: u8,
    pub timestamp: u32,
    pub stream_id: u32,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error(
        "chunk on stream {csid} uses a compressed header (format {fmt}) before any full header"
    )]
    UnknownChunkStream { csid: u32, fmt: u8 },
    #[error("more than {max} chunk streams in use")]
    TooManyChunkStreams { max: usize },
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLong { len: usize, max: usize },
    #[error("peer announced chunk size {size}, outside 1..={max}")]
    InvalidChunkSize { size: u32, max: usize },
    #[error("more than {max} bytes buffered in incomplete messages")]
    BufferLimit { max: usize },
    #[error(
        "new message header (format {fmt}) on chunk stream {csid} before its message was complete"
    )]
    HeaderMidMessage { csid: u32, fmt: u8 },
}

#[derive(Clone, Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// The last header carried an extended timestamp, so type-3 chunks carry one too.
    extended: bool,
    partial: BytesMut,
    in_message: bool,
}

/// Incremental chunk reader: `push` bytes as they arrive, then drain `next_message`.
#[derive(Debug)]
pub struct ChunkReader {
    limits: ChunkLimits,
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
    buffered: usize,
    input: BytesMut,
}

enum Step {
    NeedMore,
    Partial,
    Message(RawMessage),
}

struct ParsedHeader {
    fmt: u8,
    csid: u32,
    /// Bytes of basic + message header + extended timestamp.
    header_len: usize,
    timestamp_field: Option<u32>,
    extended: bool,
    length: Option<usize>,
    type_id: Option<u8>,
    stream_id: Option<u32>,
}

impl ChunkReader {
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkReader {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            buffered: 0,
            input: BytesMut::new(),
        }
    }

    /// Appends bytes received from the peer.
    pub fn push(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
    }

    /// Bytes received but not yet parsed into a chunk.
    pub fn pending_input(&self) -> usize {
        self.input.len()
    }

    /// Applies a SetChunkSize from the peer.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        let s = (size & 0x7fff_ffff) as usize;
        if s == 0 || s > self.limits.max_chunk_size {
            return Err(ChunkError::InvalidChunkSize {
                size,
                max: self.limits.max_chunk_size,
            });
        }
        self.chunk_size = s;
        Ok(())
    }

    /// Applies an Abort message: drops the partial message of one chunk stream.
    pub fn abort(&mut self, csid: u32) {
        if let Some(st) = self.streams.get_mut(&csid) {
            self.buffered -= st.partial.len();
            st.partial = BytesMut::new();
            st.in_message = false;
        }
    }

    /// Returns the next complete message, `Ok(None)` when more input is needed.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let Some(header) = self.parse_header()? else {
                return Ok(None);
            };
            match self.consume_chunk(header)? {
                Step::NeedMore => return Ok(None),
                Step::Message(msg) => return Ok(Some(msg)),
                // Chunk consumed, message not complete yet: try the next chunk.
                Step::Partial => {}
            }
        }
    }

    fn parse_header(&self) -> Result<Option<ParsedHeader>, ChunkError> {
        let buf = &self.input[..];
        if buf.is_empty() {
            return Ok(None);
        }
        let fmt = buf[0] >> 6;
        let (csid, mut pos) = match buf[0] & 0x3f {
            0 => {
                if buf.len() < 2 {
                    return Ok(None);
                }
                (64 + buf[1] as u32, 2)
            }
            1 => {
                if buf.len() < 3 {
                    return Ok(None);
                }
                (64 + buf[1] as u32 + 256 * buf[2] as u32, 3)
            }
            n => (n as u32, 1),
        };
        let prev = self.streams.get(&csid);
        if fmt != 0 && prev.is_none() {
            return Err(ChunkError::UnknownChunkStream { csid, fmt });
        }
        if fmt != 3 && prev.is_some_and(|p| p.in_message) {
            return Err(ChunkError::HeaderMidMessage { csid, fmt });
        }
        let mh_len = [11usize, 7, 3, 0][fmt as usize];
        if buf.len() < pos + mh_len {
            return Ok(None);
        }
        let mh = &buf[pos..pos + mh_len];
        let mut timestamp_field = None;
        let mut length = None;
        let mut type_id = None;
        let mut stream_id = None;
        if fmt <= 2 {
            timestamp_field = Some(u24(&mh[0..3]));
        }
        if fmt <= 1 {
            length = Some(u24(&mh[3..6]) as usize);
            type_id = Some(mh[6]);
        }
        if fmt == 0 {
            stream_id = Some(u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]));
        }
        pos += mh_len;
        let extended = match timestamp_field {
            Some(t) => t == 0x00ff_ffff,
            None => prev.is_some_and(|p| p.extended),
        };
        if extended {
            if buf.len() < pos + 4 {
                return Ok(None);
            }
            let ext = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
            if fmt <= 2 {
                timestamp_field = Some(ext);
            }
            pos += 4;
        }
        Ok(Some(ParsedHeader {
            fmt,
            csid,
            header_len: pos,
            timestamp_field,
            extended,
            length,
            type_id,
            stream_id,
        }))
    }

    fn consume_chunk(&mut self, h: ParsedHeader) -> Result<Step, ChunkError> {
        if !self.streams.contains_key(&h.csid)
            && self.streams.len() >= self.limits.max_chunk_streams
        {
            return Err(ChunkError::TooManyChunkStreams {
                max: self.limits.max_chunk_streams,
            });
        }
        // Work out the message this chunk belongs to without committing anything yet, so that
        // an incomplete chunk leaves the state untouched.
        let prev = self.streams.get(&h.csid).cloned().unwrap_or_default();
        let continuing = prev.in_message;
        let length = h.length.unwrap_or(prev.length);
        if length > self.limits.max_message_len {
            return Err(ChunkError::MessageTooLong {
                len: length,
                max: self.limits.max_message_len,
            });
        }
        let already = if continuing { prev.partial.len() } else { 0 };
        let take = (length - already).min(self.chunk_size);
        if self.input.len() < h.header_len + take {
            return Ok(Step::NeedMore);
        }
        if !continuing && take < length && self.buffered + length > self.limits.max_buffered {
            return Err(ChunkError::BufferLimit {
                max: self.limits.max_buffered,
            });
        }

        let st = self.streams.entry(h.csid).or_default();
        if !continuing {
            match h.fmt {
                0 => {
                    st.timestamp = h.timestamp_field.unwrap_or(0);
                    st.delta = 0;
                }
                1 | 2 => {
                    st.delta = h.timestamp_field.unwrap_or(0);
                    st.timestamp = st.timestamp.wrapping_add(st.delta);
                }
                _ => st.timestamp = st.timestamp.wrapping_add(st.delta),
            }
            st.length = length;
            if let Some(t) = h.type_id {
                st.type_id = t;
            }
            if let Some(s) = h.stream_id {
                st.stream_id = s;
            }
        }
        if h.fmt <= 2 {
            st.extended = h.extended;
        }
        self.input.advance(h.header_len);

        let payload = if !continuing && take == length {
            // Whole message in one chunk: hand out the received bytes without copying.
            self.input.split_to(take).freeze()
        } else {
            if !continuing {
                st.partial = BytesMut::with_capacity(length);
                st.in_message = true;
            }
            st.partial.extend_from_slice(&self.input[..take]);
            self.input.advance(take);
            self.buffered += take;
            if st.partial.len() < length {
                return Ok(Step::Partial);
            }
            st.in_message = false;
            self.buffered -= st.partial.len();
            std::mem::take(&mut st.partial).freeze()
        };
        Ok(Step::Message(RawMessage {
            chunk_stream_id: h.csid,
            type_id: st.type_id,
            timestamp: st.timestamp,
            stream_id: st.stream_id,
            payload,
        }))
    }
}

fn u24(b: &[u8]) -> u32 {
    ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one chunk by hand.
    fn chunk(
        fmt: u8,
        csid: u8,
        ts: Option<u32>,
        len_type: Option<(u32, u8)>,
        msid: Option<u32>,
        body: &[u8],
    ) -> Vec<u8> {
        let mut v = vec![(fmt << 6) | csid];
        if let Some(t) = ts {
            let field = t.min(0x00ff_ffff);
            v.extend_from_slice(&field.to_be_bytes()[1..]);
            if let Some((len, ty)) = len_type {
                v.extend_from_slice(&len.to_be_bytes()[1..]);
                v.push(ty);
            }
            if let Some(m) = msid {
                v.extend_from_slice(&m.to_le_bytes());
            }
            if t >= 0x00ff_ffff {
                v.extend_from_slice(&t.to_be_bytes());
            }
        }
        v.extend_from_slice(body);
        v
    }

    fn drain(r: &mut ChunkReader) -> Vec<RawMessage> {
        let mut out = vec![];
        while let Some(m) = r.next_message().unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn single_chunk_message() {
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.push(&chunk(0, 4, Some(1000), Some((3, 9)), Some(1), b"abc"));
        let m = drain(&mut r);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].type_id, 9);
        assert_eq!(m[0].timestamp, 1000);
        assert_eq!(m[0].stream_id, 1);
        assert_eq!(&m[0].payload[..], b"abc");
    }

    #[test]
    fn byte_by_byte_input_gives_same_result() {
        let mut bytes = chunk(0, 4, Some(10), Some((200, 9)), Some(1), &[7u8; 128]);
        bytes.extend(chunk(3, 4, None, None, None, &[8u8; 72]));
        bytes.extend(chunk(1, 4, Some(33), Some((2, 9)), None, b"zz"));
        let mut r = ChunkReader::new(ChunkLimits::default());
        let mut got = vec![];
        for b in bytes {
            r.push(&[b]);
            while let Some(m) = r.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload.len(), 200);
        assert_eq!(&got[0].payload[..128], &[7u8; 128][..]);
        assert_eq!(&got[0].payload[128..], &[8u8; 72][..]);
        assert_eq!(got[1].timestamp, 43);
        assert_eq!(&got[1].payload[..], b"zz");
        assert_eq!(r.pending_input(), 0);
    }

    #[test]
    fn interleaved_chunk_streams() {
        // An audio message (csid 5) arrives between two chunks of a video message (csid 4).
        let mut bytes = chunk(0, 4, Some(100), Some((150, 9)), Some(1), &[1u8; 128]);
        bytes.extend(chunk(0, 5, Some(90), Some((4, 8)), Some(1), b"aaaa"));
        bytes.extend(chunk(3, 4, None, None, None, &[2u8; 22]));
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.push(&bytes);
        let m = drain(&mut r);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].type_id, m[0].timestamp), (8, 90));
        assert_eq!(
            (m[1].type_id, m[1].timestamp, m[1].payload.len()),
            (9, 100, 150)
        );
    }

    #[test]
    fn compressed_headers_and_deltas() {
        let mut bytes = chunk(0, 6, Some(1000), Some((1, 20)), Some(0), b"x");
        bytes.extend(chunk(2, 6, Some(40), None, None, b"y")); // delta 40
        bytes.extend(chunk(3, 6, None, None, None, b"z")); // new message, same delta
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.push(&bytes);
        let ts: Vec<u32> = drain(&mut r).iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![1000, 1040, 1080]);
    }

    #[test]
    fn extended_timestamps_including_on_type3() {
        let big = 0x0100_0000u32;
        let mut bytes = chunk(0, 4, Some(big), Some((130, 9)), Some(1), &[0u8; 128]);
        // Continuation chunk repeats the extended timestamp.
        bytes.push(0xc4);
        bytes.extend_from_slice(&big.to_be_bytes());
        bytes.extend_from_slice(&[0u8; 2]);
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.push(&bytes);
        let m = drain(&mut r);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].timestamp, big);
        assert_eq!(m[0].payload.len(), 130);
    }

    #[test]
    fn two_and_three_byte_chunk_stream_ids() {
        let mut bytes = vec![0x00, 10]; // csid 74
        bytes.extend_from_slice(&chunk(0, 0, Some(5), Some((1, 8)), Some(1), b"q")[1..]);
        bytes.extend_from_slice(&[0x01, 0x00, 0x01]); // csid 64 + 256 = 320
        bytes.extend_from_slice(&chunk(0, 0, Some(6), Some((1, 9)), Some(1), b"r")[1..]);
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.push(&bytes);
        let m = drain(&mut r);
        assert_eq!(m[0].chunk_stream_id, 74);
        assert_eq!(m[1].chunk_stream_id, 320);
    }

    #[test]
    fn larger_chunk_size() {
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.set_chunk_size(4096).unwrap();
        r.push(&chunk(
            0,
            4,
            Some(0),
            Some((3000, 9)),
            Some(1),
            &[3u8; 3000],
        ));
        assert_eq!(drain(&mut r)[0].payload.len(), 3000);
    }

    #[test]
    fn zero_length_message() {
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.push(&chunk(0, 4, Some(7), Some((0, 9)), Some(1), b""));
        let m = drain(&mut r);
        assert_eq!(m.len(), 1);
        assert!(m[0].payload.is_empty());
    }

    #[test]
    fn abort_drops_partial() {
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.push(&chunk(0, 4, Some(0), Some((300, 9)), Some(1), &[0u8; 128]));
        assert!(drain(&mut r).is_empty());
        r.abort(4);
        r.push(&chunk(1, 4, Some(40), Some((1, 9)), None, b"k"));
        let m = drain(&mut r);
        assert_eq!(&m[0].payload[..], b"k");
    }

    #[test]
    fn hostile_inputs_are_errors_not_panics() {
        let limits = ChunkLimits {
            max_message_len: 1000,
            max_chunk_size: 65536,
            max_chunk_streams: 2,
            max_buffered: 1000,
        };
        let mut r = ChunkReader::new(limits.clone());
        r.push(&chunk(3, 4, None, None, None, b""));
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::UnknownChunkStream { .. })
        ));

        let mut r = ChunkReader::new(limits.clone());
        r.push(&chunk(0, 4, Some(0), Some((0xff_ffff, 9)), Some(1), b""));
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::MessageTooLong { .. })
        ));

        let mut r = ChunkReader::new(limits.clone());
        assert!(r.set_chunk_size(0).is_err());
        assert!(r.set_chunk_size(0x7fff_ffff).is_err());

        let mut r = ChunkReader::new(limits.clone());
        for csid in 3..6 {
            r.push(&chunk(0, csid, Some(0), Some((1, 9)), Some(1), b"x"));
        }
        assert!(r.next_message().unwrap().is_some());
        assert!(r.next_message().unwrap().is_some());
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::TooManyChunkStreams { .. })
        ));

        let mut r = ChunkReader::new(limits.clone());
        r.push(&chunk(0, 4, Some(0), Some((900, 9)), Some(1), &[0u8; 128]));
        r.push(&chunk(0, 5, Some(0), Some((900, 8)), Some(1), &[0u8; 128]));
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::BufferLimit { .. })
        ));

        let mut r = ChunkReader::new(limits);
        r.push(&chunk(0, 4, Some(0), Some((300, 9)), Some(1), &[0u8; 128]));
        r.push(&chunk(0, 4, Some(0), Some((300, 9)), Some(1), &[0u8; 128]));
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::HeaderMidMessage { .. })
        ));
    }

    #[test]
    fn bounded_random_input_never_panics() {
        // A small deterministic fuzz loop (xorshift) over arbitrary bytes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            let mut r = ChunkReader::new(ChunkLimits::default());
            let n = (x % 512) as usize;
            let mut bytes = Vec::with_capacity(n);
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(x as u8);
            }
            r.push(&bytes);
            for _ in 0..64 {
                match r.next_message() {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }
    }
}
