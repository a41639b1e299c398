//! Workload traces in the `livetrace v1` long-CSV format: a `# livetrace v1; ...` header line, then
//! `broadcast_id,t_s,region,viewers,arrivals,departures`, one row per
//! (broadcast, time, region); region `*` is the total.

mod command;
pub mod generate;
mod model;
mod reader;

pub use command::{TraceCommand, run};
pub use model::{Sample, TOTAL_REGION, Trace, TraceRow};
pub use reader::{TraceError, parse_trace, read_trace};
