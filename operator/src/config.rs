//! Operator-wide settings: relay defaults and how relays are reached. Filled from the command
//! line (`surge-operator run --help`), passed to the pure builders.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, PodSecurityContext, SeccompProfile, SecurityContext, Toleration,
    TopologySpreadConstraint,
};

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
    /// HTTP port of relay containers and playback Services (HTTP-FLV, the locator).
    pub relay_http_port: u16,
    /// Admin port of relay containers (`--admin-listen`: `/api/v1/streams`, `/metrics`,
    /// `/readyz`, `/healthz`): scraped, probed and polled by peers at the pod IP; no Service
    /// exposes it.
    pub relay_admin_port: u16,
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
    /// Relay pod defaults: security contexts and scheduling (a Stream's own fields win).
    pub relay_pod: RelayPodDefaults,
    /// Images a Stream's `spec.relay.image` may name (`--allowed-relay-images`; empty: any).
    pub allowed_relay_images: Vec<String>,
}

/// Operator-wide defaults of relay pods (`--relay-pod-security-context`,
/// `--relay-security-context`, `--relay-image-pull-secrets`, `--relay-tolerations`,
/// `--relay-affinity`, `--relay-topology-spread-constraints`).
#[derive(Clone, Debug, PartialEq)]
pub struct RelayPodDefaults {
    pub pod_security_context: PodSecurityContext,
    pub security_context: SecurityContext,
    pub image_pull_secrets: Vec<String>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Option<Affinity>,
    /// `None`: each reflector and edge tier spread over the zones, then the nodes, of its
    /// region.
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}

/// The user and group of the relay image (distroless `nonroot`, see Containerfile).
pub const RELAY_UID: i64 = 65532;

/// Pod-level settings of the Pod Security Standards' `restricted` level: a non-root user
/// (the image's own) and the runtime's default seccomp profile.
pub fn restricted_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RELAY_UID),
        run_as_group: Some(RELAY_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// Container-level settings of `restricted`, plus a read-only root filesystem: the relay
/// writes no files (its only files are read-only mounts: publish keys, pod annotations).
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

impl Default for RelayPodDefaults {
    fn default() -> Self {
        RelayPodDefaults {
            pod_security_context: restricted_pod_security_context(),
            security_context: restricted_security_context(),
            image_pull_secrets: Vec::new(),
            tolerations: Vec::new(),
            affinity: None,
            topology_spread_constraints: None,
        }
    }
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
            relay_admin_port: 9090,
            region_label: "topology.kubernetes.io/region".to_string(),
            cluster_domain: "cluster.local".to_string(),
            relay_shutdown_grace_seconds: 30,
            relay_prestop_seconds: 5,
            scrape_interval: Duration::from_secs(5),
            scrape_timeout: Duration::from_secs(2),
            field_manager: "surge-operator".to_string(),
            policy: ScalingPolicy::Surge,
            relay_pod: RelayPodDefaults::default(),
            allowed_relay_images: Vec::new(),
        }
    }
}

/// Parses a flag holding a JSON value (a Kubernetes object or list, as the chart renders
/// it with `toJson`), naming what it expected on failure.
pub fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_str(s).map_err(|e| format!("not valid JSON for this flag: {e}"))
}

/// Parses a comma-separated list, dropping empty entries and surrounding spaces.
pub fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
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

    #[test]
    fn lists_and_json_flags_parse() {
        assert_eq!(parse_list(" a, ,b ,"), ["a", "b"]);
        assert!(parse_list("").is_empty());
        let t: Vec<Toleration> = parse_json(
            r#"[{"key":"dedicated","operator":"Equal","value":"video","effect":"NoSchedule"}]"#,
        )
        .unwrap();
        assert_eq!(t[0].key.as_deref(), Some("dedicated"));
        let err = parse_json::<Vec<Toleration>>("{not json").unwrap_err();
        assert!(err.contains("JSON"), "{err}");
    }

    #[test]
    fn relay_pods_default_to_the_restricted_level() {
        let d = RelayPodDefaults::default();
        assert_eq!(d.pod_security_context.run_as_non_root, Some(true));
        assert_eq!(d.pod_security_context.run_as_user, Some(65532));
        assert_eq!(
            d.pod_security_context
                .seccomp_profile
                .as_ref()
                .map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        let c = &d.security_context;
        assert_eq!(c.allow_privilege_escalation, Some(false));
        assert_eq!(c.read_only_root_filesystem, Some(true));
        assert_eq!(
            c.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()])
        );
    }
}
