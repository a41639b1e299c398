//! FLV tags of the relay's media messages; the format itself is `surge_wire::flv`.

use bytes::{BufMut, Bytes, BytesMut};
pub use surge_wire::flv::{TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO, file_header};

use crate::media::MediaKind;

pub fn tag_type(kind: MediaKind) -> u8 {
    match kind {
        MediaKind::Audio => TAG_AUDIO,
        MediaKind::Video => TAG_VIDEO,
        MediaKind::Data => TAG_SCRIPT,
    }
}

/// One FLV tag including its trailing PreviousTagSize.
pub fn tag(kind: MediaKind, timestamp: u32, body: &[u8]) -> Bytes {
    surge_wire::flv::tag(tag_type(kind), timestamp, body)
}

/// `bytes` as one HTTP/1.1 chunk: its size in hex, CRLF, the bytes, CRLF.
pub fn http_chunk(bytes: &[u8]) -> Bytes {
    let size = format!("{:x}\r\n", bytes.len());
    let mut b = BytesMut::with_capacity(size.len() + bytes.len() + 2);
    b.put_slice(size.as_bytes());
    b.put_slice(bytes);
    b.put_slice(b"\r\n");
    b.freeze()
}

/// One FLV tag framed as an HTTP chunk, and the tag alone as a slice of the same bytes.
pub fn tag_and_chunk(kind: MediaKind, timestamp: u32, body: &[u8]) -> (Bytes, Bytes) {
    let chunk = http_chunk(&tag(kind, timestamp, body));
    let start = chunk.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
    let tag = chunk.slice(start..chunk.len() - 2);
    (tag, chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_frames_exactly_the_tag() {
        let body = vec![0x17u8; 300];
        let (t, chunk) = tag_and_chunk(MediaKind::Video, 40, &body);
        assert_eq!(t, tag(MediaKind::Video, 40, &body));
        let mut want = format!("{:x}\r\n", t.len()).into_bytes();
        want.extend_from_slice(&t);
        want.extend_from_slice(b"\r\n");
        assert_eq!(&chunk[..], &want[..]);
        assert_eq!(
            t.as_ptr(),
            chunk[chunk.len() - 2 - t.len()..].as_ptr(),
            "one allocation"
        );
    }
}
