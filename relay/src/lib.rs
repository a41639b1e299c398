//! Surge relay: RTMP ingest, serialize-once fan-out to RTMP and HTTP-FLV viewers,
//! upstream pulling with failover, stats. The binary in `main.rs` only wires these together.
//!
//! Where a frame goes: [`rtmp::session`] (publisher) or [`upstream`] (pull) →
//! [`hub::Hub::publish`] (serialized once) → [`hub::Subscription`] per viewer →
//! [`rtmp::connection`] or [`http::flv`] (vectored writes).

pub mod config;
pub mod flv;
pub mod http;
pub mod hub;
pub mod integrity;
pub mod listen;
pub mod media;
pub mod metrics;
pub mod placement;
pub mod protocol;
pub mod publish_auth;
pub mod registry;
pub mod resolve;
pub mod rtmp;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod write_cursor;
