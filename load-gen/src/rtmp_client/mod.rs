//! A small RTMP client of our own: publish and play. The wire formats (chunks, AMF0, control
//! messages) are `surge_wire`'s; the chunk reader keeps only the first bytes of media.

mod session;
mod url;

pub use session::{Control, RtmpConnection, RtmpError, status_code};
pub use url::RtmpUrl;
