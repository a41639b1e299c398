//! `surge-operator local`'s fleet: the planned relay tree run as real `surge-relay` processes
//! on this machine, each on its own loopback address with the standard ports, so the tree,
//! upstream lists and the scrape code are those of the cluster.
//!
//! - [`addresses`] (pure): which loopback address a relay gets, and its pod-like name;
//! - [`rewrite`] (pure): a Deployment's container args and env, with Service names and
//!   Downward API values replaced by relay addresses;
//! - [`process`] (IO): one relay process, its log, signals, `/readyz`;
//! - [`fleet`] (IO): [`Fleet`], the processes matching planned Deployments.

pub mod addresses;
pub mod fleet;
pub mod process;
pub mod rewrite;

pub use fleet::{
    ApplyReport, DeploymentStatus, Fleet, FleetConfig, FleetError, FleetStatus, RelayFailure,
    RelayStatus,
};
