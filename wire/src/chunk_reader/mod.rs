//! Bounded RTMP chunk deserializer for untrusted input.
//!
//! rml_rtmp's deserializer shares one payload buffer between chunk streams (interleaved chunks
//! overflow it) and always expects extended timestamps on type-3 chunks, so raw network bytes
//! never reach it. This reader keeps one partial message per chunk stream, caps chunk size,
//! message length, chunk-stream count and buffered bytes, and never panics on any input.
//! A [`PayloadPolicy`] lets a reader that only inspects media headers (the load generator's
//! viewers) keep the first bytes of each audio/video message and count the rest.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

use crate::message::{MSG_ABORT, MSG_AUDIO, MSG_SET_CHUNK_SIZE, MSG_VIDEO};

pub(crate) const EXTENDED_TIMESTAMP_MARK: u32 = 0x00ff_ffff;
/// Chunk size both directions start with.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// Which payload bytes a reader keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadPolicy {
    /// Every byte of every message.
    #[default]
    Whole,
    /// Only the first `n` bytes of audio and video messages (other messages whole); the
    /// rest is read and dropped. [`RawMessage::length`] still gives the full length.
    MediaPrefix(usize),
}

impl PayloadPolicy {
    /// Bytes kept of a `length`-byte message of type `type_id`.
    fn kept(self, type_id: u8, length: u32) -> usize {
        match self {
            PayloadPolicy::MediaPrefix(n) if type_id == MSG_AUDIO || type_id == MSG_VIDEO => {
                (length as usize).min(n)
            }
            _ => length as usize,
        }
    }
}

/// Limits applied to what a peer may make us hold.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    pub max_chunk_size: u32,
    /// Largest message whose kept payload (see [`PayloadPolicy`]) we buffer.
    pub max_message_len: u32,
    pub max_chunk_streams: usize,
    /// Sum over all chunk streams of partially received payload bytes.
    pub max_pending_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_chunk_size: 1 << 20,
            max_message_len: 8 << 20,
            max_chunk_streams: 64,
            max_pending_bytes: 32 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("peer set chunk size {0}, outside 1..={1}")]
    BadChunkSize(u32, u32),
    #[error("message length {0} exceeds limit {1}")]
    MessageTooLong(u32, u32),
    #[error("more than {0} chunk streams in use")]
    TooManyChunkStreams(usize),
    #[error("chunk stream {0} continues a header that was never sent")]
    MissingPreviousHeader(u32),
    #[error("chunk stream {0} started a new message before finishing the previous one")]
    InterruptedMessage(u32),
    #[error("more than {0} bytes of partial messages buffered")]
    TooMuchPending(usize),
    #[error("set chunk size message has {0} bytes, expected 4")]
    MalformedSetChunkSize(usize),
}

/// One complete RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub chunk_stream_id: u32,
    pub type_id: u8,
    pub message_stream_id: u32,
    /// Absolute timestamp in ms (wrapping arithmetic, as RTMP defines).
    pub timestamp: u32,
    /// Length of the message on the wire; `payload` is shorter only under
    /// [`PayloadPolicy::MediaPrefix`].
    pub length: u32,
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    message_stream_id: u32,
    /// Raw value of the last extended timestamp field, if the last header used one.
    extended: Option<u32>,
    partial: BytesMut,
    /// Bytes of the message in progress read so far (kept or not).
    received: usize,
    /// Bytes of the message in progress that are kept (counted in `pending_bytes`).
    kept: usize,
    in_progress: bool,
    seen_header: bool,
}

/// Reassembles RTMP messages from chunks. Feed bytes with [`push`](Self::push), then call
/// [`next_message`](Self::next_message) until it returns `Ok(None)`.
pub struct ChunkReader {
    input: BytesMut,
    chunk_size: u32,
    limits: ChunkLimits,
    policy: PayloadPolicy,
    streams: HashMap<u32, ChunkStream>,
    pending_bytes: usize,
}

struct Header {
    fmt: u8,
    csid: u32,
    len: usize,
}

impl ChunkReader {
    pub fn new(limits: ChunkLimits) -> Self {
        Self::with_policy(limits, PayloadPolicy::Whole)
    }

    pub fn with_policy(limits: ChunkLimits, policy: PayloadPolicy) -> Self {
        ChunkReader {
            // Small to start: most connections are viewers; a publisher's grows as needed.
            input: BytesMut::with_capacity(1024),
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            policy,
            streams: HashMap::new(),
            pending_bytes: 0,
        }
    }

    /// Changes the limits and which payload bytes are kept. Only between messages of the
    /// affected types (e.g. a player before it asks to play): a message in progress would be
    /// accounted under two policies.
    pub fn set_policy(&mut self, limits: ChunkLimits, policy: PayloadPolicy) {
        self.limits = limits;
        self.policy = policy;
    }

    pub fn push(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
    }

    /// Bytes received but not yet parsed into a chunk.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Parses chunks until one message completes. Set-chunk-size and abort messages are
    /// applied here and still returned so the caller can log them.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            match self.next_chunk()? {
                None => return Ok(None),
                Some(None) => continue,
                Some(Some(msg)) => {
                    self.apply_control(&msg)?;
                    return Ok(Some(msg));
                }
            }
        }
    }

    fn apply_control(&mut self, msg: &RawMessage) -> Result<(), ChunkError> {
        match msg.type_id {
            MSG_SET_CHUNK_SIZE => {
                let p = &msg.payload;
                if p.len() < 4 {
                    return Err(ChunkError::MalformedSetChunkSize(p.len()));
                }
                let size = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                if size == 0 || size > self.limits.max_chunk_size {
                    return Err(ChunkError::BadChunkSize(size, self.limits.max_chunk_size));
                }
                self.chunk_size = size;
            }
            MSG_ABORT => {
                let p = &msg.payload;
                if p.len() >= 4 {
                    let csid = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                    if let Some(s) = self.streams.get_mut(&csid) {
                        if s.in_progress {
                            self.pending_bytes -= s.kept;
                        }
                        s.partial = BytesMut::new();
                        s.received = 0;
                        s.in_progress = false;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `Ok(None)`: need more bytes. `Ok(Some(None))`: consumed a chunk, message incomplete.
    fn next_chunk(&mut self) -> Result<Option<Option<RawMessage>>, ChunkError> {
        let Some(h) = parse_basic_header(&self.input) else {
            return Ok(None);
        };
        let msg_header_len = match h.fmt {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        if self.input.len() < h.len + msg_header_len {
            return Ok(None);
        }
        if !self.streams.contains_key(&h.csid) {
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams(
                    self.limits.max_chunk_streams,
                ));
            }
            if h.fmt != 0 {
                return Err(ChunkError::MissingPreviousHeader(h.csid));
            }
        }
        let mh = &self.input[h.len..h.len + msg_header_len];
        let field = |i: usize| u32::from_be_bytes([0, mh[i], mh[i + 1], mh[i + 2]]);
        let mut pos = h.len + msg_header_len;
        let stream = self.streams.entry(h.csid).or_default();

        // Read the timestamp field and decide whether an extended timestamp follows.
        let ts_field = if h.fmt <= 2 { Some(field(0)) } else { None };
        let mut extended = None;
        match ts_field {
            Some(v) if v == EXTENDED_TIMESTAMP_MARK => {
                if self.input.len() < pos + 4 {
                    return Ok(None);
                }
                let e = &self.input[pos..pos + 4];
                extended = Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
                pos += 4;
            }
            Some(_) => {}
            None => {
                // Type 3: the spec repeats the extended field when the previous header had one;
                // some encoders omit it. Consume it only when it matches.
                if let Some(prev) = stream.extended {
                    if self.input.len() < pos + 4 {
                        return Ok(None);
                    }
                    let e = &self.input[pos..pos + 4];
                    if u32::from_be_bytes([e[0], e[1], e[2], e[3]]) == prev {
                        pos += 4;
                    }
                }
            }
        }

        let starts_message = !stream.in_progress;
        if h.fmt <= 2 && stream.in_progress {
            return Err(ChunkError::InterruptedMessage(h.csid));
        }

        // Work out the header this chunk implies, without committing yet.
        let mut length = stream.length;
        let mut type_id = stream.type_id;
        let mut msid = stream.message_stream_id;
        let mut timestamp = stream.timestamp;
        let mut delta = stream.delta;
        let ts_value = extended.or(ts_field);
        match h.fmt {
            0 => {
                length = field(3);
                type_id = mh[6];
                msid = u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]);
                timestamp = ts_value.unwrap_or(0);
                delta = 0;
            }
            1 | 2 => {
                if h.fmt == 1 {
                    length = field(3);
                    type_id = mh[6];
                }
                delta = ts_value.unwrap_or(0);
                timestamp = timestamp.wrapping_add(delta);
            }
            _ => {
                if !stream.seen_header {
                    return Err(ChunkError::MissingPreviousHeader(h.csid));
                }
                if starts_message {
                    timestamp = timestamp.wrapping_add(delta);
                }
            }
        }
        let kept = self.policy.kept(type_id, length);
        if kept > self.limits.max_message_len as usize {
            return Err(ChunkError::MessageTooLong(
                length,
                self.limits.max_message_len,
            ));
        }
        let already = if starts_message { 0 } else { stream.received };
        let remaining = (length as usize).saturating_sub(already);
        let take = remaining.min(self.chunk_size as usize);
        if self.input.len() < pos + take {
            return Ok(None);
        }
        if starts_message && self.pending_bytes + kept > self.limits.max_pending_bytes {
            return Err(ChunkError::TooMuchPending(self.limits.max_pending_bytes));
        }

        // Commit.
        stream.seen_header = true;
        stream.length = length;
        stream.type_id = type_id;
        stream.message_stream_id = msid;
        stream.timestamp = timestamp;
        stream.delta = delta;
        if h.fmt <= 2 {
            stream.extended = extended;
        }
        if starts_message {
            stream.partial = BytesMut::with_capacity(kept.min(64 * 1024));
            stream.in_progress = true;
            stream.received = 0;
            stream.kept = kept;
            self.pending_bytes += kept;
        }
        self.input.advance(pos);
        let keep = stream.kept.saturating_sub(stream.partial.len()).min(take);
        stream.partial.extend_from_slice(&self.input[..keep]);
        stream.received += take;
        self.input.advance(take);

        if stream.received >= length as usize {
            stream.in_progress = false;
            self.pending_bytes -= stream.kept;
            let payload = std::mem::take(&mut stream.partial).freeze();
            return Ok(Some(Some(RawMessage {
                chunk_stream_id: h.csid,
                type_id,
                message_stream_id: msid,
                timestamp,
                length,
                payload,
            })));
        }
        Ok(Some(None))
    }
}

fn parse_basic_header(b: &[u8]) -> Option<Header> {
    let b0 = *b.first()?;
    let fmt = b0 >> 6;
    match b0 & 0x3f {
        0 => Some(Header {
            fmt,
            csid: 64 + *b.get(1)? as u32,
            len: 2,
        }),
        1 => Some(Header {
            fmt,
            csid: 64 + *b.get(1)? as u32 + (*b.get(2)? as u32) * 256,
            len: 3,
        }),
        c => Some(Header {
            fmt,
            csid: c as u32,
            len: 1,
        }),
    }
}

#[cfg(test)]
mod tests;
