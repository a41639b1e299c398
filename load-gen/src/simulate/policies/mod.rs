//! The scaling policies compared by the simulator.

mod hpa;
mod livejack;
mod oracle;
mod reactive;
mod surge;

pub use hpa::Hpa;
pub use livejack::LiveJack;
pub use oracle::Oracle;
pub use reactive::Reactive;
pub use surge::{Surge, edge_holds, edge_load, idle_relays};

/// Which policy, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyName {
    Surge,
    Hpa,
    Livejack,
    /// Perfect reaction: exactly the newest sample's demand, as surge samples it.
    Reactive,
    Oracle,
    All,
}
