//! Media payload helpers: the timing SEI and H.264 (AVC) payloads as carried in FLV and RTMP.

pub mod avc;
pub mod sei;

pub use sei::TimingStamp;
