//! FLV: the file header and tags, the unit of HTTP-FLV, of FLV files and of the runs of tags
//! inside RTMP aggregate messages. Tag type ids equal the RTMP message type ids.

use bytes::{BufMut, Bytes, BytesMut};

use crate::message::{MSG_AMF0_DATA, MSG_AUDIO, MSG_VIDEO};

pub const TAG_AUDIO: u8 = MSG_AUDIO;
pub const TAG_VIDEO: u8 = MSG_VIDEO;
pub const TAG_SCRIPT: u8 = MSG_AMF0_DATA;
/// Type, data size (24 bits), timestamp (24 + 8 bits), stream id (always 0).
pub const TAG_HEADER_LEN: usize = 11;
/// FLV header (version 1, audio + video flags, header size 9) followed by PreviousTagSize0.
pub const FILE_HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0];

/// FLV file header followed by PreviousTagSize0.
pub fn file_header() -> Bytes {
    Bytes::from_static(&FILE_HEADER)
}

/// One tag including its trailing PreviousTagSize. Bodies longer than 24 bits are cut to what
/// the format can describe; RTMP limits messages far below that.
pub fn tag(tag_type: u8, timestamp: u32, body: &[u8]) -> Bytes {
    let len = body.len().min(0x00ff_ffff);
    let mut b = BytesMut::with_capacity(TAG_HEADER_LEN + len + 4);
    b.put_u8(tag_type);
    b.put_slice(&(len as u32).to_be_bytes()[1..]);
    b.put_slice(&(timestamp & 0x00ff_ffff).to_be_bytes()[1..]);
    b.put_u8((timestamp >> 24) as u8);
    b.put_slice(&[0, 0, 0]);
    b.put_slice(&body[..len]);
    b.put_u32((TAG_HEADER_LEN + len) as u32);
    b.freeze()
}

/// One tag's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagHeader {
    /// Tag type with the reserved and filter bits masked off.
    pub tag_type: u8,
    pub data_size: usize,
    pub timestamp: u32,
}

impl TagHeader {
    /// Parses the first [`TAG_HEADER_LEN`] bytes of `h`; `None` when there are fewer.
    pub fn parse(h: &[u8]) -> Option<TagHeader> {
        let h = h.get(..TAG_HEADER_LEN)?;
        Some(TagHeader {
            tag_type: h[0] & 0x1f,
            data_size: u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize,
            timestamp: u32::from_be_bytes([h[7], h[4], h[5], h[6]]),
        })
    }
}

/// A tag borrowed from the bytes it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    pub tag_type: u8,
    pub timestamp: u32,
    pub data: &'a [u8],
}

/// Parses the tag at the start of `bytes`: the tag and the offset just past its data (where
/// its PreviousTagSize starts). `None` when the header or the data is incomplete.
pub fn parse_tag(bytes: &[u8]) -> Option<(Tag<'_>, usize)> {
    let h = TagHeader::parse(bytes)?;
    let end = TAG_HEADER_LEN.checked_add(h.data_size)?;
    let data = bytes.get(TAG_HEADER_LEN..end)?;
    Some((
        Tag {
            tag_type: h.tag_type,
            timestamp: h.timestamp,
            data,
        },
        end,
    ))
}

/// One tag of an FLV file, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct FlvTag {
    pub tag_type: u8,
    pub timestamp_ms: u32,
    pub data: Vec<u8>,
}

/// Why FLV file bytes could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("not an FLV file (missing the `FLV` signature)")]
    NotFlv,
    #[error("truncated FLV at byte {0}")]
    Truncated(usize),
    #[error("the FLV file has no video tags")]
    NoVideo,
}

/// Parses a whole FLV file into its audio, video and script tags. A truncated last tag (a
/// recording cut short) is dropped; a file with no complete tag, or no video, is an error.
pub fn parse_flv(bytes: &[u8]) -> Result<Vec<FlvTag>, FlvError> {
    if bytes.len() < 9 || &bytes[..3] != b"FLV" {
        return Err(FlvError::NotFlv);
    }
    let header_len = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    let mut at = header_len + 4; // header + PreviousTagSize0
    let mut tags = Vec::new();
    while let Some((tag, end)) = bytes.get(at..).and_then(parse_tag) {
        if matches!(tag.tag_type, TAG_AUDIO | TAG_VIDEO | TAG_SCRIPT) {
            tags.push(FlvTag {
                tag_type: tag.tag_type,
                timestamp_ms: tag.timestamp,
                data: tag.data.to_vec(),
            });
        }
        at += end + 4;
    }
    if tags.is_empty() {
        return Err(FlvError::Truncated(at));
    }
    if !tags.iter().any(|t| t.tag_type == TAG_VIDEO) {
        return Err(FlvError::NoVideo);
    }
    Ok(tags)
}

/// An FLV file of `tags` (the inverse of [`parse_flv`]).
pub fn write_flv(tags: &[FlvTag]) -> Vec<u8> {
    let mut out = FILE_HEADER.to_vec();
    for t in tags {
        out.extend_from_slice(&tag(t.tag_type, t.timestamp_ms, &t.data));
    }
    out
}

/// One sub-message of an aggregate message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubMessage {
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed aggregate message at byte {0}")]
pub struct AggregateError(pub usize);

/// Splits an aggregate message (a run of FLV tags) into messages. Sub-message timestamps are
/// rebased so the first one equals the aggregate's own timestamp.
pub fn split_aggregate(timestamp: u32, payload: &Bytes) -> Result<Vec<SubMessage>, AggregateError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut first_ts: Option<u32> = None;
    while pos < payload.len() {
        let (tag, end) = parse_tag(&payload[pos..]).ok_or(AggregateError(pos))?;
        let body_end = pos + end;
        if body_end + 4 > payload.len() {
            return Err(AggregateError(pos));
        }
        let base = *first_ts.get_or_insert(tag.timestamp);
        out.push(SubMessage {
            type_id: tag.tag_type,
            timestamp: timestamp.wrapping_add(tag.timestamp.wrapping_sub(base)),
            payload: payload.slice(pos + TAG_HEADER_LEN..body_end),
        });
        pos = body_end + 4; // skip PreviousTagSize
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flv_tag(type_id: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        tag(type_id, ts, body).to_vec()
    }

    #[test]
    fn splits_aggregates() {
        let mut p = flv_tag(9, 5000, b"vid");
        p.extend(flv_tag(8, 5020, b"au"));
        let subs = split_aggregate(100, &Bytes::from(p.clone())).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!(
            (subs[0].type_id, subs[0].timestamp, &subs[0].payload[..]),
            (9, 100, &b"vid"[..])
        );
        assert_eq!(
            (subs[1].type_id, subs[1].timestamp, &subs[1].payload[..]),
            (8, 120, &b"au"[..])
        );
        p.truncate(p.len() - 3);
        assert!(split_aggregate(0, &Bytes::from(p)).is_err());
        assert_eq!(split_aggregate(0, &Bytes::new()), Ok(vec![]));
    }
    #[test]
    fn header_is_13_bytes() {
        let h = file_header();
        assert_eq!(&h[..3], b"FLV");
        assert_eq!(h.len(), 13);
    }

    #[test]
    fn tag_layout_with_extended_timestamp() {
        let t = tag(TAG_VIDEO, 0x0123_4567, &[0x17, 0, 0, 0, 0]);
        assert_eq!(t[0], TAG_VIDEO);
        assert_eq!(&t[1..4], &[0, 0, 5]);
        assert_eq!(&t[4..7], &[0x23, 0x45, 0x67]);
        assert_eq!(t[7], 0x01);
        assert_eq!(&t[8..11], &[0, 0, 0]);
        assert_eq!(&t[11..16], &[0x17, 0, 0, 0, 0]);
        assert_eq!(&t[16..], &16u32.to_be_bytes());
    }

    fn sample() -> Vec<FlvTag> {
        vec![
            FlvTag {
                tag_type: 18,
                timestamp_ms: 0,
                data: vec![2, 0, 1, b'x'],
            },
            FlvTag {
                tag_type: 9,
                timestamp_ms: 0x0100_0020,
                data: vec![0x17, 0, 0, 0, 0, 1],
            },
            FlvTag {
                tag_type: 8,
                timestamp_ms: 40,
                data: vec![0xaf, 1, 2],
            },
        ]
    }

    #[test]
    fn parses_tags_with_extended_timestamps() {
        let bytes = write_flv(&sample());
        assert_eq!(parse_flv(&bytes).expect("valid"), sample());
        // A cut-off last tag is dropped, not an error.
        let cut = &bytes[..bytes.len() - 5];
        assert_eq!(parse_flv(cut).expect("valid").len(), 2);
    }

    #[test]
    fn rejects_non_flv_and_videoless_files() {
        assert!(matches!(parse_flv(b"GIF89a..."), Err(FlvError::NotFlv)));
        let audio_only = write_flv(&sample()[2..]);
        assert!(matches!(parse_flv(&audio_only), Err(FlvError::NoVideo)));
        let header_only = write_flv(&[]);
        assert!(matches!(
            parse_flv(&header_only),
            Err(FlvError::Truncated(_))
        ));
    }
}
