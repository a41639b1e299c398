//! surge-load: the publisher, the trace-replaying viewers, the simulator and the trace tools.

pub mod publish;
pub mod replay;
pub mod simulate;
pub mod trace;
