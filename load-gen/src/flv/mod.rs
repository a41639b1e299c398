//! FLV: whole files (for `publish --input`) and an incremental tag parser (for HTTP-FLV viewers).

mod file;
mod stream;

pub use file::{FlvError, FlvTag, parse_flv, read_flv};
pub use stream::{FlvStreamError, FlvStreamParser};

/// FLV/RTMP message type ids of media.
pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// How many leading bytes of each media message a viewer keeps: enough for the
/// video header and the timing SEI (and a few NALs before it), never the whole frame.
pub const PREFIX_CAP: usize = 192;

/// One complete media message as a viewer sees it: its type, timestamp, full
/// length, and only its first bytes.
#[derive(Debug, Clone, Copy)]
pub struct MediaMessage<'a> {
    pub type_id: u8,
    pub timestamp_ms: u32,
    pub len: usize,
    pub prefix: &'a [u8],
}
