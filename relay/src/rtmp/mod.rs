//! RTMP ingest and playback.

pub mod close_reason;
pub mod command_guard;
pub mod connection;
#[cfg(test)]
mod future_sizes;
mod group_writer;
pub mod handshake;
pub mod inbound_driver;
mod inbound_event;
pub mod messages;
pub mod session;
pub mod transport;
pub mod vectored;

pub use connection::{RtmpSettings, serve};
