//! `surge-operator pods`: a real `surge-relay` process for every relay pod of a cluster whose
//! pod IPs are local addresses (the kwok cluster of `scripts/k8s`, where no container runs),
//! so the tests and the demo drive real relays through `surge-operator run`.
//!
//! - [`launch`] (pure): which pods get a relay, and a pod's container as the relay's
//!   arguments and environment (listen addresses on the pod IP, Downward API values filled,
//!   `--hosts-file` added);
//! - [`hosts`] (pure): what each Service's names resolve to from its pods, as cluster DNS
//!   answers, in the hosts file every relay reads (`surge-relay --hosts-file`);
//! - [`pod_files`] (pure): the pod's Downward API volumes as files (the kubelet's
//!   projection), so `--advertise-host-file` follows the pod's annotation;
//! - [`exposure`] (pure): with `--host-ports` / `--load-balancers`, the node host ports and
//!   cloud load balancers of the cluster as loopback listeners forwarding to the pods;
//! - [`runner`] (IO): the loop over the API (pods and Services every interval), the hosts
//!   file, and starting and stopping relay processes by pid (with `local`'s
//!   [`crate::local::process`]).

pub mod exposure;
pub mod hosts;
pub mod launch;
pub mod pod_files;
pub mod runner;

pub use runner::{PodsOptions, run};
