//! `surge-operator local`'s fleet: the planned relay tree run as real `surge-relay` processes
//! on this machine, each on its own loopback address with the standard ports, so the tree,
//! upstream lists and the scrape code are those of the cluster.
//!
//! - [`addresses`] (pure): which loopback address a relay gets, and its pod-like name;
//! - [`rewrite`] (pure): a Deployment's container args and env, with Service names and
//!   Downward API values replaced by relay addresses;
//! - [`replicaset`] (pure): which relays a scale-down removes, the restart backoff;
//! - [`process`] (IO): one relay process, its log, signals, `/readyz`;
//! - [`fleet`] (IO): [`Fleet`], the processes matching planned Deployments, configured by
//!   [`config`] and reporting in [`status`].

pub mod addresses;
pub mod config;
pub mod fleet;
pub mod process;
pub mod replicaset;
pub mod rewrite;
pub mod status;

pub use config::{FleetConfig, FleetError};
pub use fleet::Fleet;
pub use status::{ApplyReport, DeploymentStatus, FleetStatus, RelayFailure, RelayStatus};
