//! What the fleet reports: one apply's outcome, and what runs. Plain values.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::labels::TierKind;

/// A relay that could not start, or exited without being asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayFailure {
    pub relay: String,
    pub deployment: String,
    /// One line: what happened and what the relay said last.
    pub reason: String,
}

impl std::fmt::Display for RelayFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "relay {}: {}", self.relay, self.reason)
    }
}

/// What one [`Fleet::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Relays started (and listening).
    pub started: Vec<String>,
    /// Relays told to stop (SIGTERM), in the order they were picked.
    pub stopping: Vec<String>,
    /// Deployments no longer planned (their relays are stopping), as the operator's orphan
    /// Deployments deleted.
    pub removed: Vec<String>,
    /// Relays that could not start or exited at start.
    pub failures: Vec<RelayFailure>,
}

/// One relay as [`Fleet::observe`] sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RelayStatus {
    /// Pod-like name, the key of deletion costs.
    pub name: String,
    pub deployment: String,
    pub region: String,
    pub tier: TierKind,
    pub address: Ipv4Addr,
    pub rtmp: SocketAddr,
    /// Where HTTP-FLV plays and the locator answer.
    pub http: SocketAddr,
    /// Where `/api/v1/streams`, `/readyz` and `/metrics` answer: the admin address (the HTTP
    /// one when the relay has none).
    pub admin: SocketAddr,
    pub pid: u32,
    pub ready: bool,
    /// Told to stop (SIGTERM), draining.
    pub draining: bool,
    /// Since the relay was started.
    pub age: Duration,
    /// From start to its first Ready.
    pub ready_after: Option<Duration>,
    pub deletion_cost: Option<String>,
    pub args: Vec<String>,
    pub log: PathBuf,
}

/// One Deployment as [`Fleet::observe`] sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentStatus {
    pub name: String,
    pub region: String,
    pub tier: TierKind,
    pub desired: u32,
    /// Relays running and not draining.
    pub running: u32,
    pub ready: u32,
    /// Relays replaced after exiting without being asked.
    pub restarts: u32,
    pub last_failure: Option<RelayFailure>,
    /// Why a missing relay is not started yet (e.g. its upstream Service has no relay).
    pub waiting: Option<String>,
    /// The stand-in address of the tier's Service, where players and publishers reach it.
    pub service_address: Option<Ipv4Addr>,
    /// Its relays, draining ones included, by name.
    pub relays: Vec<RelayStatus>,
}

/// A Service's stand-in and where it forwards new connections now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: String,
    pub address: Ipv4Addr,
    /// `(listen port, relay port)`.
    pub ports: Vec<(u16, u16)>,
    /// Ready relays behind it, by address.
    pub backends: Vec<Ipv4Addr>,
}

/// Everything running, by Deployment (in the order of the last apply).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetStatus {
    pub deployments: Vec<DeploymentStatus>,
    /// Draining relays of Deployments no longer planned.
    pub orphans: Vec<RelayStatus>,
    /// The Services' stand-ins, by name.
    pub services: Vec<ServiceStatus>,
}

impl FleetStatus {
    pub fn deployment(&self, name: &str) -> Option<&DeploymentStatus> {
        self.deployments.iter().find(|d| d.name == name)
    }

    /// Every relay, draining ones included.
    pub fn relays(&self) -> impl Iterator<Item = &RelayStatus> {
        self.deployments
            .iter()
            .flat_map(|d| d.relays.iter())
            .chain(self.orphans.iter())
    }
}
