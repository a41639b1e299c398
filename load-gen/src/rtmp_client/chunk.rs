//! RTMP chunk stream: an incremental reader that keeps per-chunk-stream state (so
//! interleaved chunks of different messages are fine) and keeps only the first bytes
//! of audio/video messages; and a writer (type-0 first chunk, type-3 continuations).

use crate::flv::{MediaMessage, PREFIX_CAP, TAG_AUDIO, TAG_VIDEO};

/// Largest non-media message we keep whole (commands, metadata).
const MAX_COMMAND: usize = 1 << 20;
const MAX_CHUNK_SIZE: usize = 1 << 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("invalid chunk size {0}")]
    BadChunkSize(u32),
    #[error("{0}-byte message is larger than allowed for type {1}")]
    TooLarge(usize, u8),
    #[error("type-3 chunk on chunk stream {0} before any header")]
    NoPreviousHeader(u32),
}

#[derive(Default)]
struct ChunkStream {
    csid: u32,
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    msid: u32,
    extended: bool,
    seen_header: bool,
    /// Bytes still to come of the message in progress (0: none in progress).
    remaining: usize,
    /// Whole payload (commands) or the first `PREFIX_CAP` bytes (media).
    payload: Vec<u8>,
}

enum State {
    Header,
    Body { stream: usize, chunk_left: usize },
}

/// Reads a chunk stream fed in arbitrary pieces.
pub struct ChunkReader {
    chunk_size: usize,
    state: State,
    header: [u8; 18],
    header_len: usize,
    streams: Vec<ChunkStream>,
}

impl Default for ChunkReader {
    fn default() -> Self {
        Self::new()
    }
}

/// A complete message: media messages carry only their first bytes in `prefix`.
pub type RtmpMessage<'a> = MediaMessage<'a>;

impl ChunkReader {
    pub fn new() -> Self {
        Self {
            chunk_size: 128,
            state: State::Header,
            header: [0; 18],
            header_len: 0,
            streams: Vec::with_capacity(6),
        }
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    fn stream_index(&mut self, csid: u32) -> usize {
        if let Some(i) = self.streams.iter().position(|s| s.csid == csid) {
            return i;
        }
        self.streams.push(ChunkStream {
            csid,
            ..Default::default()
        });
        self.streams.len() - 1
    }

    /// Header length needed so far, or `None` when more bytes are needed to know it.
    fn needed_header_len(&self) -> Option<usize> {
        let b0 = *self.header.first()?;
        if self.header_len == 0 {
            return None;
        }
        let fmt = b0 >> 6;
        let basic = match b0 & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let msg = [11, 7, 3, 0][fmt as usize];
        let base = basic + msg;
        if self.header_len < basic {
            return Some(base.max(basic));
        }
        let extended = if fmt < 3 {
            if self.header_len < base {
                return Some(base);
            }
            self.header[basic..basic + 3] == [0xff, 0xff, 0xff]
        } else {
            let csid = self.csid(basic);
            self.streams
                .iter()
                .find(|s| s.csid == csid)
                .is_some_and(|s| s.extended)
        };
        Some(base + if extended { 4 } else { 0 })
    }

    fn csid(&self, basic: usize) -> u32 {
        match basic {
            2 => 64 + self.header[1] as u32,
            3 => 64 + self.header[1] as u32 + ((self.header[2] as u32) << 8),
            _ => (self.header[0] & 0x3f) as u32,
        }
    }

    /// Feeds bytes; calls `on_message` for every complete message. Set Chunk Size
    /// messages are applied here, before the bytes after them are parsed.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        on_message: &mut impl FnMut(RtmpMessage<'_>),
    ) -> Result<(), ChunkError> {
        while !data.is_empty() {
            match self.state {
                State::Header => {
                    // Collect one byte at a time until the header length is known and met.
                    self.header[self.header_len] = data[0];
                    self.header_len += 1;
                    data = &data[1..];
                    if let Some(need) = self.needed_header_len()
                        && self.header_len == need
                        && let Some(empty) = self.start_chunk(need)?
                    {
                        self.finish_message(empty, on_message)?;
                    }
                }
                State::Body { stream, chunk_left } => {
                    let take = chunk_left.min(data.len());
                    let cs = &mut self.streams[stream];
                    let keep_limit = if is_media(cs.type_id) {
                        PREFIX_CAP
                    } else {
                        usize::MAX
                    };
                    let keep = keep_limit.saturating_sub(cs.payload.len()).min(take);
                    cs.payload.extend_from_slice(&data[..keep]);
                    cs.remaining -= take;
                    data = &data[take..];
                    if cs.remaining == 0 {
                        self.state = State::Header;
                        self.finish_message(stream, on_message)?;
                    } else if take == chunk_left {
                        self.state = State::Header;
                    } else {
                        self.state = State::Body {
                            stream,
                            chunk_left: chunk_left - take,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts a chunk; returns the stream index when it completed an empty message.
    fn start_chunk(&mut self, header_len: usize) -> Result<Option<usize>, ChunkError> {
        let h = self.header;
        self.header_len = 0;
        let fmt = h[0] >> 6;
        let basic = match h[0] & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let csid = self.csid(basic);
        let i = self.stream_index(csid);
        let cs = &mut self.streams[i];
        let m = &h[basic..];
        let u24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let ext = (header_len >= basic + [11, 7, 3, 0][fmt as usize] + 4).then(|| {
            let e = &h[header_len - 4..header_len];
            u32::from_be_bytes([e[0], e[1], e[2], e[3]])
        });
        let new_message = match fmt {
            0 => {
                let ts = u24(&m[0..3]);
                cs.length = u24(&m[3..6]) as usize;
                cs.type_id = m[6];
                cs.msid = u32::from_le_bytes([m[7], m[8], m[9], m[10]]);
                cs.extended = ts == 0xff_ffff;
                cs.timestamp = ext.unwrap_or(ts);
                cs.delta = 0;
                true
            }
            1 | 2 => {
                let d = u24(&m[0..3]);
                if fmt == 1 {
                    cs.length = u24(&m[3..6]) as usize;
                    cs.type_id = m[6];
                }
                cs.extended = d == 0xff_ffff;
                cs.delta = ext.unwrap_or(d);
                cs.timestamp = cs.timestamp.wrapping_add(cs.delta);
                true
            }
            _ => {
                if !cs.seen_header {
                    return Err(ChunkError::NoPreviousHeader(csid));
                }
                if cs.remaining == 0 {
                    cs.timestamp = cs.timestamp.wrapping_add(cs.delta);
                    true
                } else {
                    false
                }
            }
        };
        cs.seen_header = true;
        if new_message {
            if !is_media(cs.type_id) && cs.length > MAX_COMMAND {
                return Err(ChunkError::TooLarge(cs.length, cs.type_id));
            }
            cs.remaining = cs.length;
            cs.payload.clear();
        }
        if cs.remaining == 0 {
            self.state = State::Header;
            return Ok(Some(i));
        }
        let chunk_left = self.chunk_size.min(cs.remaining);
        self.state = State::Body {
            stream: i,
            chunk_left,
        };
        Ok(None)
    }

    fn finish_message(
        &mut self,
        stream: usize,
        on_message: &mut impl FnMut(RtmpMessage<'_>),
    ) -> Result<(), ChunkError> {
        let cs = &self.streams[stream];
        if cs.type_id == 1 && cs.payload.len() >= 4 {
            let size =
                u32::from_be_bytes([cs.payload[0], cs.payload[1], cs.payload[2], cs.payload[3]])
                    & 0x7fff_ffff;
            if size == 0 || size as usize > MAX_CHUNK_SIZE {
                return Err(ChunkError::BadChunkSize(size));
            }
            self.chunk_size = size as usize;
        }
        on_message(RtmpMessage {
            type_id: cs.type_id,
            timestamp_ms: cs.timestamp,
            len: cs.length,
            prefix: &cs.payload,
        });
        Ok(())
    }
}

fn is_media(type_id: u8) -> bool {
    type_id == TAG_AUDIO || type_id == TAG_VIDEO
}

/// Appends one message as chunks: a type-0 header, then type-3 continuation headers.
pub fn write_message(
    out: &mut Vec<u8>,
    csid: u8,
    type_id: u8,
    msid: u32,
    timestamp: u32,
    payload: &[u8],
    chunk_size: usize,
) {
    debug_assert!((2..64).contains(&csid));
    let extended = timestamp >= 0xff_ffff;
    out.push(csid);
    let ts_field = if extended { 0xff_ffff } else { timestamp };
    out.extend_from_slice(&ts_field.to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&msid.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    let mut chunks = payload.chunks(chunk_size.max(1));
    if let Some(first) = chunks.next() {
        out.extend_from_slice(first);
    }
    for c in chunks {
        out.push(0xc0 | csid);
        if extended {
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        out.extend_from_slice(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(
        reader: &mut ChunkReader,
        bytes: &[u8],
        piece: usize,
    ) -> Vec<(u8, u32, usize, Vec<u8>)> {
        let mut seen = Vec::new();
        for c in bytes.chunks(piece) {
            reader
                .feed(c, &mut |m| {
                    seen.push((m.type_id, m.timestamp_ms, m.len, m.prefix.to_vec()))
                })
                .expect("valid chunks");
        }
        seen
    }

    #[test]
    fn reads_what_the_writer_writes_at_any_split() {
        let video: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut bytes = Vec::new();
        write_message(&mut bytes, 6, 9, 1, 40, &video, 128);
        write_message(&mut bytes, 3, 20, 0, 0x0100_0000, &[7; 300], 128);
        for piece in [1, 3, 128, 5000] {
            let seen = collect(&mut ChunkReader::new(), &bytes, piece);
            assert_eq!(seen.len(), 2);
            assert_eq!(seen[0], (9, 40, 1000, video[..PREFIX_CAP].to_vec()));
            assert_eq!(
                seen[1],
                (20, 0x0100_0000, 300, vec![7; 300]),
                "extended ts, piece {piece}"
            );
        }
    }

    #[test]
    fn survives_interleaved_chunks_of_two_messages() {
        // Video message (csid 6) of 200 bytes split in 128-byte chunks, with a whole
        // audio message (csid 4) between its two chunks.
        let video = vec![0x27u8; 200];
        let mut v = Vec::new();
        write_message(&mut v, 6, 9, 1, 100, &video, 128);
        let mut a = Vec::new();
        write_message(&mut a, 4, 8, 1, 90, &[0xaf; 10], 128);
        let split = 12 + 128;
        let mut bytes = v[..split].to_vec();
        bytes.extend_from_slice(&a);
        bytes.extend_from_slice(&v[split..]);
        let seen = collect(&mut ChunkReader::new(), &bytes, 7);
        assert_eq!(seen.len(), 2);
        assert_eq!((seen[0].0, seen[0].1, seen[0].2), (8, 90, 10));
        assert_eq!((seen[1].0, seen[1].1, seen[1].2), (9, 100, 200));
    }

    #[test]
    fn applies_set_chunk_size_and_header_compression() {
        let mut bytes = Vec::new();
        write_message(&mut bytes, 2, 1, 0, 0, &4096u32.to_be_bytes(), 128);
        let payload = vec![1u8; 3000];
        write_message(&mut bytes, 6, 9, 1, 1000, &payload, 4096);
        // Type-2 header (delta 33) and a type-3 new message (same delta again).
        bytes.extend_from_slice(&[0x80 | 6, 0, 0, 33]);
        bytes.extend_from_slice(&payload);
        bytes.push(0xc0 | 6);
        bytes.extend_from_slice(&payload);
        let mut reader = ChunkReader::new();
        let seen = collect(&mut reader, &bytes, 1000);
        assert_eq!(reader.chunk_size(), 4096);
        let times: Vec<u32> = seen.iter().map(|s| s.1).collect();
        assert_eq!(times, vec![0, 1000, 1033, 1066]);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        let mut reader = ChunkReader::new();
        assert_eq!(
            reader.feed(&[0xc0 | 9, 1, 2, 3], &mut |_| {}),
            Err(ChunkError::NoPreviousHeader(9))
        );
        let mut bytes = Vec::new();
        write_message(&mut bytes, 2, 1, 0, 0, &0u32.to_be_bytes(), 128);
        assert_eq!(
            ChunkReader::new().feed(&bytes, &mut |_| {}),
            Err(ChunkError::BadChunkSize(0))
        );
        // A 16 MB command is refused before it is buffered.
        let huge = [3u8, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0];
        assert!(matches!(
            ChunkReader::new().feed(&huge, &mut |_| {}),
            Err(ChunkError::TooLarge(_, 20))
        ));
    }
}
