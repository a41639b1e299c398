//! Video frames that carry their number and send time, so a test viewer can check order,
//! completeness and lag of what it received.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Video body: the frame number and the wall-clock send time (ms), padded to `size` bytes.
pub fn frame_body(seq: u32, size: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(size);
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&now_ms().to_be_bytes());
    b.resize(size, (seq % 251) as u8);
    b
}

/// (frame number, send time) of a video payload made by `frame_body`; `None` for a sequence
/// header.
pub fn parse_video(p: &[u8]) -> Option<(u32, u64)> {
    if p.len() < 17 || p[1] != 1 {
        return None;
    }
    let seq = u32::from_be_bytes(p[5..9].try_into().ok()?);
    let sent = u64::from_be_bytes(p[9..17].try_into().ok()?);
    Some((seq, sent))
}
