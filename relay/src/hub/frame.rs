//! A media message serialized once for every protocol a viewer may speak.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::PLAY_MESSAGE_STREAM_ID;

use crate::media::MediaKind;
use crate::protocol::Protocol;

/// Shared by every viewer through refcounted `Bytes` clones; never copied per viewer.
#[derive(Debug)]
pub struct Frame {
    /// Position in the stream (strictly increasing, never reused within a hub).
    pub seq: u64,
    pub kind: MediaKind,
    pub timestamp: u32,
    pub keyframe: bool,
    /// RTMP chunks starting with a type-0 header, for message stream id 1.
    pub rtmp: Bytes,
    /// One FLV tag with its PreviousTagSize (a slice of `flv_chunk`).
    pub flv: Bytes,
    /// The same tag as one HTTP/1.1 chunk (`SIZE\r\n TAG \r\n`): what the relay's own
    /// HTTP-FLV writer sends, so every viewer of a chunked response shares these bytes too.
    pub flv_chunk: Bytes,
    /// When the hub got it (from the publisher or the upstream), for the delay histogram.
    pub arrived: Instant,
}

impl Frame {
    pub fn held_bytes(&self) -> usize {
        // `flv` shares `flv_chunk`'s allocation.
        self.rtmp.len() + self.flv_chunk.len()
    }

    /// This frame's bytes as `protocol`'s viewers get them (a refcounted clone); with
    /// `http_chunks`, an FLV viewer gets the tag framed as an HTTP chunk.
    pub fn bytes_for(&self, protocol: Protocol, http_chunks: bool) -> Bytes {
        match protocol {
            Protocol::Rtmp => self.rtmp.clone(),
            Protocol::Flv if http_chunks => self.flv_chunk.clone(),
            Protocol::Flv => self.flv.clone(),
        }
    }
}

/// Shared chunks carry message stream id 1. For a viewer that plays on another stream id, give
/// it a private copy of each message's 12-byte type-0 header with its id and share the rest
/// (continuation chunks are type 3 and carry no stream id).
pub fn retarget_stream_id(bufs: Vec<Bytes>, stream_id: u32) -> Vec<Bytes> {
    if stream_id == PLAY_MESSAGE_STREAM_ID {
        return bufs;
    }
    let mut out = Vec::with_capacity(bufs.len() * 2);
    for b in bufs {
        let one_byte_type0 = b.len() >= 12 && b[0] >> 6 == 0 && (b[0] & 0x3f) >= 2;
        if one_byte_type0 {
            let mut header = BytesMut::from(&b[..12]);
            header[8..12].copy_from_slice(&stream_id.to_le_bytes());
            out.push(header.freeze());
            out.push(b.slice(12..));
        } else {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::messages::unpublish_notify;

    #[test]
    fn retargets_only_the_type0_header() {
        let shared = unpublish_notify(1, "cam").expect("packet");
        let out = retarget_stream_id(vec![shared.clone()], 3);
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0][8..12], &3u32.to_le_bytes());
        assert_eq!(&out[0][..8], &shared[..8]);
        assert_eq!(
            out[1].as_ptr(),
            shared[12..].as_ptr(),
            "payload stays shared"
        );
        assert_eq!(retarget_stream_id(vec![shared.clone()], 1), vec![shared]);
    }
}
