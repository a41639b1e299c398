//! Operator-wide settings: relay defaults and how relays are reached. Filled from the command
//! line (`surge-operator run --help`), passed to the pure builders.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::policy::ScalingPolicy;

/// Defaults and wiring shared by every Stream this operator manages.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorConfig {
    /// Relay image used when a Stream sets none.
    pub relay_image: String,
    /// `imagePullPolicy` of relay containers.
    pub relay_image_pull_policy: String,
    /// Default relay resource requests (e.g. `cpu=250m`, `memory=128Mi`).
    pub relay_requests: BTreeMap<String, String>,
    /// Default relay resource limits.
    pub relay_limits: BTreeMap<String, String>,
    /// RTMP port of relay containers and Services.
    pub relay_rtmp_port: u16,
    /// HTTP port of relay containers (HTTP-FLV, `/api/v1/streams`, `/readyz`, `/healthz`).
    pub relay_http_port: u16,
    /// Node label whose value is a region name.
    pub region_label: String,
    /// Cluster DNS domain, for the upstream and endpoint URLs.
    pub cluster_domain: String,
    /// Seconds a relay keeps serving after SIGTERM (`--shutdown-grace`).
    pub relay_shutdown_grace_seconds: u32,
    /// Seconds the preStop hook waits so Services stop routing to the pod before SIGTERM.
    pub relay_prestop_seconds: u32,
    /// How often relays are scraped and the tree re-planned.
    pub scrape_interval: Duration,
    /// Timeout of one relay scrape.
    pub scrape_timeout: Duration,
    /// Server-side apply field manager.
    pub field_manager: String,
    /// Which autoscaler sizes the edge tiers (`--policy`).
    pub policy: ScalingPolicy,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            relay_image: "ghcr.io/surge-dev/surge-relay:0.1.0".to_string(),
            relay_image_pull_policy: "IfNotPresent".to_string(),
            relay_requests: BTreeMap::from([
                ("cpu".to_string(), "250m".to_string()),
                ("memory".to_string(), "128Mi".to_string()),
            ]),
            relay_limits: BTreeMap::from([("memory".to_string(), "512Mi".to_string())]),
            relay_rtmp_port: 1935,
            relay_http_port: 8080,
            region_label: "topology.kubernetes.io/region".to_string(),
            cluster_domain: "cluster.local".to_string(),
            relay_shutdown_grace_seconds: 30,
            relay_prestop_seconds: 5,
            scrape_interval: Duration::from_secs(5),
            scrape_timeout: Duration::from_secs(2),
            field_manager: "surge-operator".to_string(),
            policy: ScalingPolicy::Surge,
        }
    }
}

/// Parses `key=value,key=value` (resource lists on the command line).
pub fn parse_key_values(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not key=value"))?;
        if k.trim().is_empty() || v.trim().is_empty() {
            return Err(format!("`{part}` has an empty key or value"));
        }
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_parse_and_reject_garbage() {
        let m = parse_key_values("cpu=250m, memory=128Mi").unwrap();
        assert_eq!(m["cpu"], "250m");
        assert_eq!(m["memory"], "128Mi");
        assert!(parse_key_values("").unwrap().is_empty());
        assert!(parse_key_values("cpu").is_err());
        assert!(parse_key_values("=1").is_err());
    }
}
