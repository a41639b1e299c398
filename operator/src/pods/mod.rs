//! `surge-operator pods`: a real `surge-relay` process for every relay pod of a cluster whose
//! pod IPs are local addresses (the kwok cluster of `scripts/k8s`, where no container runs),
//! so the tests and the demo drive real relays through `surge-operator run`.
//!
//! - [`launch`] (pure): which pods get a relay, and a pod's container as the relay's
//!   arguments and environment (listen addresses on the pod IP, Downward API values filled,
//!   `--hosts-file` added);
//! - [`hosts`] (pure): what each Service's names resolve to from its pods, as cluster DNS
//!   answers, in the hosts file every relay reads (`surge-relay --hosts-file`);
//! - [`runner`] (IO): the loop over the API (pods and Services every interval), the hosts
//!   file, and starting and stopping relay processes by pid (with `local`'s
//!   [`crate::local::process`]).

pub mod hosts;
pub mod launch;
pub mod runner;

pub use runner::{PodsOptions, run};
