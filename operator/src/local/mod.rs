//! `surge-operator local`'s fleet: the planned relay tree run as real `surge-relay` processes
//! on this machine, each on its own loopback address with the standard ports, so the tree,
//! upstream lists and the scrape code are those of the cluster.
//!
//! - [`addresses`] (pure): which loopback address a relay gets, and its pod-like name;
//! - [`rewrite`] (pure): a Deployment's container args and env, with listen addresses and
//!   Downward API values replaced by the relay's own (Service names stay), and which relays
//!   a Service selects;
//! - [`downward`] (pure): a container's environment with its Downward API values filled in
//!   (also used by `surge-operator pods`);
//! - [`hosts_file`] (pure, one atomic write): what each Service name resolves to now, in the
//!   file every relay reads (`surge-relay --hosts-file`);
//! - [`service_proxy`] (IO): a tier Service's stand-in address, forwarding each connection to
//!   a random Ready relay behind it, as kube-proxy;
//! - [`replicaset`] (pure): which relays a scale-down removes, the restart backoff;
//! - [`keys`] (IO, and the pure path rewrite): the signing key and trusted keys as files;
//! - [`process`] (IO): one relay process (started, or adopted from a previous run), its log,
//!   signals, `/readyz`; [`proc_stat`]: a process known by pid and start time;
//! - [`stand_ins`] (IO): where the stand-ins run: here, or in `surge-operator stand-ins`, a
//!   process that outlives the operator; [`state_dir`]: the records a restarted operator
//!   adopts the fleet from;
//! - [`fleet`] (IO): [`Fleet`], the processes matching planned Deployments, configured by
//!   [`config`] and reporting in [`status`].
//!
//! `surge-operator local` runs the operator's reconcile on such fleets:
//! - [`streams`] (pure): Stream YAML files, validated as the operator validates;
//! - [`observed`] (pure): the fleet's reports as the `Observed` and `Applied` of a reconcile;
//! - [`driver`] (IO): one Stream's loop, `reconcile::step` over the fleet, with a sped-up
//!   clock, reporting in log lines and an in-memory status;
//! - [`api`] (IO): `/api/v1/streams`, `/metrics`, `/healthz`;
//! - [`view`] (pure): the live terminal view (the Streams' rows, regions and latest events);
//! - [`run`] (IO): the command: checks, fleets, loops, API, the view, and the stop on a signal.

pub mod addresses;
pub mod api;
pub mod config;
pub mod downward;
pub mod driver;
pub mod fleet;
pub mod hosts_file;
pub mod keys;
pub mod observed;
pub mod proc_stat;
pub mod process;
pub mod replicaset;
pub mod rewrite;
pub mod run;
pub mod service_proxy;
pub mod stand_ins;
pub mod state_dir;
pub mod status;
pub mod streams;
pub mod view;

pub use config::{Adoptable, FleetConfig, FleetError};
pub use fleet::Fleet;
pub use status::{
    ApplyReport, DeploymentStatus, FleetStatus, RelayFailure, RelayStatus, ServiceStatus,
};
