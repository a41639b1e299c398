//! Surge relay: RTMP ingest, serialize-once fan-out to RTMP and HTTP-FLV viewers,
//! upstream pulling with failover, stats. The binary in `main.rs` only wires these together.

pub mod media;
