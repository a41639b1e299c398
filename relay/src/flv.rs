//! FLV encoding (pure): the file header and one tag per media message.

use bytes::{BufMut, Bytes, BytesMut};

use crate::media::MediaKind;

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;
const TAG_HEADER_LEN: usize = 11;

/// FLV file header (audio + video flags) followed by PreviousTagSize0.
pub fn file_header() -> Bytes {
    Bytes::from_static(&[b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0])
}

pub fn tag_type(kind: MediaKind) -> u8 {
    match kind {
        MediaKind::Audio => TAG_AUDIO,
        MediaKind::Video => TAG_VIDEO,
        MediaKind::Data => TAG_SCRIPT,
    }
}

/// One FLV tag including its trailing PreviousTagSize. Bodies longer than 24 bits are cut to
/// what the format can describe; the RTMP side already limits messages far below that.
pub fn tag(kind: MediaKind, timestamp: u32, body: &[u8]) -> Bytes {
    let len = body.len().min(0x00ff_ffff);
    let mut b = BytesMut::with_capacity(TAG_HEADER_LEN + len + 4);
    b.put_u8(tag_type(kind));
    b.put_slice(&(len as u32).to_be_bytes()[1..]);
    b.put_slice(&(timestamp & 0x00ff_ffff).to_be_bytes()[1..]);
    b.put_u8((timestamp >> 24) as u8);
    b.put_slice(&[0, 0, 0]);
    b.put_slice(&body[..len]);
    b.put_u32((TAG_HEADER_LEN + len) as u32);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_13_bytes() {
        let h = file_header();
        assert_eq!(&h[..3], b"FLV");
        assert_eq!(h.len(), 13);
    }

    #[test]
    fn tag_layout_with_extended_timestamp() {
        let t = tag(MediaKind::Video, 0x0123_4567, &[0x17, 0, 0, 0, 0]);
        assert_eq!(t[0], TAG_VIDEO);
        assert_eq!(&t[1..4], &[0, 0, 5]);
        assert_eq!(&t[4..7], &[0x23, 0x45, 0x67]);
        assert_eq!(t[7], 0x01);
        assert_eq!(&t[8..11], &[0, 0, 0]);
        assert_eq!(&t[11..16], &[0x17, 0, 0, 0, 0]);
        assert_eq!(&t[16..], &16u32.to_be_bytes());
    }
}
