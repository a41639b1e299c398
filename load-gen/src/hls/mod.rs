//! HLS as a polling player sees it: the media playlist (`m3u8`), MPEG-TS segments (`ts`) and
//! the H.264 Annex-B access units inside them (`annexb`). Pure parsing, no IO: the replay's
//! HLS viewer (`replay::hls`) does the fetching.

pub mod annexb;
pub mod m3u8;
pub mod ts;
