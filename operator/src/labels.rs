//! Names and labels of everything the operator creates for a Stream.
//!
//! Names: `<stream>-origin`, `<stream>-<region>-edge`, `<stream>-<region>-reflector-<level>`;
//! each Deployment has a Service of the same name (the origin's is the ingest Service, an
//! edge's is the region's playback Service).

use std::collections::BTreeMap;
use std::fmt;

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_STREAM: &str = "surge.dev/stream";
pub const LABEL_REGION: &str = "surge.dev/region";
pub const LABEL_TIER: &str = "surge.dev/tier";
pub const LABEL_LEVEL: &str = "surge.dev/level";
pub const APP_NAME: &str = "surge-relay";
pub const MANAGER: &str = "surge-operator";
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Pod annotation holding the host a `hostPort` edge advertises (the operator sets it from its
/// node; the relay reads it through a Downward API file).
pub const POD_ADVERTISE_HOST: &str = "surge.dev/advertise-host";
/// Node annotation naming the host viewers reach the node at (wins over its ExternalIP).
pub const NODE_EXTERNAL_HOST: &str = "surge.dev/external-host";

/// Position of a relay in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TierKind {
    Origin,
    /// Reflector level `n`: 1 feeds the edges, 2 feeds level 1, ...
    Reflector(u32),
    Edge,
}

impl TierKind {
    /// The relay's `--tier` value and the `surge.dev/tier` label.
    pub fn tier_name(self) -> &'static str {
        match self {
            TierKind::Origin => "origin",
            TierKind::Reflector(_) => "reflector",
            TierKind::Edge => "edge",
        }
    }

    pub fn level(self) -> u32 {
        match self {
            TierKind::Reflector(level) => level,
            _ => 0,
        }
    }
}

impl fmt::Display for TierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TierKind::Reflector(level) => write!(f, "reflector-{level}"),
            other => f.write_str(other.tier_name()),
        }
    }
}

/// Name of the Deployment (and Service) of one tier.
pub fn tier_object_name(stream: &str, region: &str, tier: TierKind) -> String {
    match tier {
        TierKind::Origin => format!("{stream}-origin"),
        TierKind::Edge => format!("{stream}-{region}-edge"),
        TierKind::Reflector(level) => format!("{stream}-{region}-reflector-{level}"),
    }
}

/// Name of a region's headless placement-peers Service (`<stream>-<region>-peers`), whose DNS
/// name resolves to every edge pod of the region, Ready or not.
pub fn peers_service_name(stream: &str, region: &str) -> String {
    format!("{stream}-{region}-peers")
}

/// `app.kubernetes.io/component` of a placement-peers Service.
pub const COMPONENT_PEERS: &str = "placement-peers";

/// Labels selecting every object of a Stream.
pub fn stream_selector(stream: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_STREAM.to_string(), stream.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
    ])
}

/// `key=value,...` form of [`stream_selector`], for list calls.
pub fn stream_selector_string(stream: &str) -> String {
    selector_string(&stream_selector(stream))
}

pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels that select exactly one tier's pods (Deployment selector and Service selector).
pub fn tier_selector(stream: &str, region: &str, tier: TierKind) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_STREAM.to_string(), stream.to_string()),
        (LABEL_REGION.to_string(), region.to_string()),
        (LABEL_TIER.to_string(), tier.tier_name().to_string()),
    ]);
    if let TierKind::Reflector(level) = tier {
        labels.insert(LABEL_LEVEL.to_string(), level.to_string());
    }
    labels
}

/// All labels of one tier's objects and pods.
pub fn tier_labels(stream: &str, region: &str, tier: TierKind) -> BTreeMap<String, String> {
    let mut labels = tier_selector(stream, region, tier);
    labels.insert(LABEL_NAME.to_string(), APP_NAME.to_string());
    labels.insert(LABEL_INSTANCE.to_string(), stream.to_string());
    labels.insert(LABEL_COMPONENT.to_string(), tier.tier_name().to_string());
    labels.insert(LABEL_MANAGED_BY.to_string(), MANAGER.to_string());
    labels
}

/// Reads a tier back from a pod's labels.
pub fn tier_from_labels(labels: &BTreeMap<String, String>) -> Option<TierKind> {
    match labels.get(LABEL_TIER)?.as_str() {
        "origin" => Some(TierKind::Origin),
        "edge" => Some(TierKind::Edge),
        "reflector" => labels
            .get(LABEL_LEVEL)
            .and_then(|l| l.parse().ok())
            .map(TierKind::Reflector),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert_eq!(tier_object_name("s", "eu", TierKind::Origin), "s-origin");
        assert_eq!(tier_object_name("s", "eu", TierKind::Edge), "s-eu-edge");
        assert_eq!(
            tier_object_name("s", "eu", TierKind::Reflector(2)),
            "s-eu-reflector-2"
        );
        let l = tier_labels("s", "eu", TierKind::Reflector(1));
        assert_eq!(l[LABEL_TIER], "reflector");
        assert_eq!(l[LABEL_LEVEL], "1");
        assert_eq!(l[LABEL_MANAGED_BY], "surge-operator");
        assert_eq!(tier_from_labels(&l), Some(TierKind::Reflector(1)));
        assert_eq!(
            tier_from_labels(&tier_labels("s", "eu", TierKind::Edge)),
            Some(TierKind::Edge)
        );
        assert_eq!(peers_service_name("s", "eu"), "s-eu-peers");
        assert_eq!(
            stream_selector_string("s"),
            "app.kubernetes.io/managed-by=surge-operator,surge.dev/stream=s"
        );
    }
}
