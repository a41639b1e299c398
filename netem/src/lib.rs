//! Network emulation for Surge's tests and benchmarks. `scripts/netem/` builds the network
//! namespaces and veth links; this crate checks topologies, runs the transparent proxy that
//! adds each route's delay, jitter, stalls, partitions and resets, forwards fixed addresses
//! across named links without namespaces (`forward`), and measures links.

pub mod control;
pub mod forward;
pub mod link;
pub mod probe;
pub mod proxy;
pub mod topology;
