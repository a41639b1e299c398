//! A media message serialized once for every protocol a viewer may speak.

use bytes::Bytes;

use crate::media::MediaKind;

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
    /// One FLV tag with its PreviousTagSize.
    pub flv: Bytes,
}

impl Frame {
    pub fn held_bytes(&self) -> usize {
        self.rtmp.len() + self.flv.len()
    }
}

/// Which serialized form a viewer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Rtmp,
    Flv,
}

impl Protocol {
    pub fn bytes_of(self, f: &Frame) -> Bytes {
        match self {
            Protocol::Rtmp => f.rtmp.clone(),
            Protocol::Flv => f.flv.clone(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Flv => "flv",
        }
    }
}
