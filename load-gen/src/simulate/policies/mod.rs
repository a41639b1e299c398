//! The scaling policies compared by the simulator.

mod hpa;
mod livejack;
mod oracle;
mod surge;

pub use hpa::Hpa;
pub use livejack::LiveJack;
pub use oracle::Oracle;
pub use surge::Surge;

/// Which policy, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyName {
    Surge,
    Hpa,
    Livejack,
    Oracle,
    All,
}
