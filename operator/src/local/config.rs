//! How the fleet runs relays, and what keeps it from running one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::addresses::DEFAULT_FIRST_REGION_OCTET;

/// Where the relays come from and how they are run.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub relay_bin: PathBuf,
    /// One `<relay name>.log` per relay (stdout and stderr).
    pub log_dir: PathBuf,
    /// Emulated scheduling and image pull: a relay is not Ready before this.
    pub ready_delay: Duration,
    /// SIGKILL this long after SIGTERM.
    pub drain_grace: Duration,
    /// From taking a relay out of its Services (stand-ins, hosts file) to its SIGTERM: long
    /// enough for every locator to poll once more (relays poll each second, wall time) and
    /// drop it, so no viewer is sent to a relay that no longer accepts.
    pub deregistration_delay: Duration,
    /// Second octet of the first region's addresses.
    pub first_region_octet: u8,
    /// How long [`Fleet::apply`] waits for a new relay to open its HTTP port.
    pub startup_timeout: Duration,
    /// How often readiness is probed and exits noticed.
    pub poll_interval: Duration,
    /// Wait before replacing a crashed relay; doubles with each crash in a row (at most 30 s).
    pub restart_backoff: Duration,
    /// The hosts file the fleet keeps and its relays read (`--hosts-file`); default
    /// `<log_dir>/hosts`. Fleets running side by side need one each.
    pub hosts_file: PathBuf,
    /// The domain of the Service names in relay arguments (`<service>.<namespace>.svc.<domain>`).
    pub cluster_domain: String,
    /// A link between each region and its parent: relays outside the origin's region read
    /// a hosts file of their region's (`<hosts_file>.<region>`) in which the origin's Service
    /// is `127.<region>.0.0` (the origin tier's address in their own region, which no relay
    /// gets), so their pulls from the origin cross whatever forwards that address to the
    /// Service's stand-in: `surge-netem forward`, a WAN link that faults can stall,
    /// partition or throttle. Nothing listens there unless someone starts one.
    pub parent_links: bool,
    /// Keep what a restarted operator needs to adopt this fleet, and run the Service
    /// stand-ins in a process of their own that outlives this one; `None` (the default):
    /// both stay in this process and nothing is kept on disk.
    pub adoptable: Option<Adoptable>,
}

/// Where an adoptable fleet keeps its records, and what serves its stand-ins.
#[derive(Clone, Debug)]
pub struct Adoptable {
    /// Relay records and the stand-ins' table ([`super::state_dir`]).
    pub state_dir: PathBuf,
    /// The binary that serves `stand-ins --table FILE` (the operator's own).
    pub operator_bin: PathBuf,
    /// The stand-ins' process's output.
    pub stand_ins_log: PathBuf,
}

impl FleetConfig {
    /// The hosts file of `region`'s relays with [`FleetConfig::parent_links`].
    pub fn region_hosts_file(&self, region: &str) -> PathBuf {
        let mut name = self.hosts_file.clone().into_os_string();
        name.push(format!(".{region}"));
        PathBuf::from(name)
    }

    pub fn new(
        relay_bin: PathBuf,
        log_dir: PathBuf,
        ready_delay: Duration,
        drain_grace: Duration,
    ) -> FleetConfig {
        FleetConfig {
            relay_bin,
            hosts_file: log_dir.join("hosts"),
            cluster_domain: "cluster.local".to_string(),
            log_dir,
            ready_delay,
            drain_grace,
            deregistration_delay: Duration::from_millis(1500),
            first_region_octet: DEFAULT_FIRST_REGION_OCTET,
            startup_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(500),
            restart_backoff: Duration::from_secs(1),
            parent_links: false,
            adoptable: None,
        }
    }
}

/// What keeps the fleet from running at all, or a Deployment from being run.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("relay binary {0} not found (build it: cargo build -p surge-relay)")]
    MissingBinary(PathBuf),
    #[error("log directory {path}: {source}")]
    LogDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the fleet runs inside a Tokio runtime")]
    NoRuntime,
    #[error("Deployment {name}: {why}")]
    Unrunnable { name: String, why: String },
    #[error("the fleet is shut down")]
    ShutDown,
    #[error(
        "another surge-operator (pid {pid}) runs the fleet recorded in {dir}: stop it, or give this one its own --log-dir"
    )]
    Owned { pid: u32, dir: PathBuf },
    #[error("cannot start the Service stand-ins' process: {0}")]
    StandInsProcess(std::io::Error),
    #[error("Service {service}: cannot listen on its stand-in {address}: {source}")]
    StandIn {
        service: String,
        address: SocketAddr,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regions_hosts_file_sits_beside_the_fleets() {
        let mut cfg = FleetConfig::new(
            PathBuf::from("/bin/true"),
            PathBuf::from("/tmp/logs"),
            Duration::ZERO,
            Duration::ZERO,
        );
        cfg.hosts_file = PathBuf::from("/tmp/logs/default.demo.hosts");
        assert_eq!(
            cfg.region_hosts_file("eu-west"),
            PathBuf::from("/tmp/logs/default.demo.hosts.eu-west")
        );
        assert!(!cfg.parent_links, "off unless asked for");
    }
}
