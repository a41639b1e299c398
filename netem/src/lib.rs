//! Network emulation for Surge's tests and benchmarks. `scripts/netem/` builds the network
//! namespaces and veth links; this crate checks topologies, runs the transparent proxy that
//! adds each route's delay, jitter, stalls, partitions and resets, and measures links.

pub mod control;
pub mod link;
pub mod probe;
pub mod proxy;
pub mod topology;
