//! FLV tags of the relay's media messages; the format itself is `surge_wire::flv`.

use bytes::Bytes;
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
