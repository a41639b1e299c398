//! RTMP chunk writer: one message as a type-0 chunk followed by type-3 continuations.

use crate::chunk_reader::EXTENDED_TIMESTAMP_MARK;

/// Appends one message as chunks: a type-0 header, then type-3 continuation headers (which
/// repeat the extended timestamp when the message has one).
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
    let extended = timestamp >= EXTENDED_TIMESTAMP_MARK;
    out.push(csid);
    let ts_field = if extended {
        EXTENDED_TIMESTAMP_MARK
    } else {
        timestamp
    };
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
