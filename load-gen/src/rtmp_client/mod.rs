//! A small RTMP client of our own: publish and play, with a chunk reader that tolerates
//! interleaved chunks and keeps only the first bytes of media messages.

pub mod amf0;
pub mod chunk;
mod session;
mod url;

pub use session::{Control, RtmpConnection, RtmpError, status_code};
pub use url::RtmpUrl;
