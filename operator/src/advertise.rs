//! The host a `hostPort` relay (an edge, or the tier above taking its overflow) advertises,
//! from the node it runs on. Pure: nodes come in as
//! plain views; the result is the pod annotations to change.
//!
//! A node's host is its `surge.dev/external-host` annotation if set, else its first
//! `ExternalIP` address, else none (the relay then falls back to `status.hostIP`). The edge
//! reads its pod's `surge.dev/advertise-host` annotation from a Downward API file, so a
//! changed annotation takes effect without a restart.

use k8s_openapi::api::core::v1::Node;

use crate::labels::{NODE_EXTERNAL_HOST, TierKind};
use crate::observe::PodView;

/// The parts of a node the operator uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// Its `surge.dev/external-host` annotation (empty counts as unset).
    pub external_host: Option<String>,
    /// Its first `ExternalIP` in `status.addresses`.
    pub external_ip: Option<String>,
}

impl NodeView {
    pub fn from_node(node: &Node) -> NodeView {
        let external_host = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NODE_EXTERNAL_HOST))
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty());
        let external_ip = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| {
                a.iter()
                    .find(|a| a.type_ == "ExternalIP" && !a.address.is_empty())
            })
            .map(|a| a.address.clone());
        NodeView {
            name: node.metadata.name.clone().unwrap_or_default(),
            external_host,
            external_ip,
        }
    }

    /// The host an edge on this node advertises: the annotation, else the ExternalIP.
    pub fn advertised_host(&self) -> Option<&str> {
        self.external_host
            .as_deref()
            .or(self.external_ip.as_deref())
    }
}

/// Whether relays of `kind` may run on host ports: edges, and the tier that feeds them (the
/// first reflector level, or the origin) when it takes their overflow: whose nodes to read.
pub fn may_use_host_ports(kind: TierKind) -> bool {
    matches!(
        kind,
        TierKind::Edge | TierKind::Reflector(1) | TierKind::Origin
    )
}

/// Names of the nodes `pods`' relays that may be on host ports (not terminating) are
/// scheduled on, each once, sorted: the nodes to read.
pub fn host_port_nodes(pods: &[PodView]) -> Vec<String> {
    let mut nodes: Vec<String> = pods
        .iter()
        .filter(|p| may_use_host_ports(p.tier) && !p.terminating)
        .filter_map(|p| p.node.clone())
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// The `surge.dev/advertise-host` annotations to change, as `(pod, host)`: for every relay pod
/// of a tier on host ports (`exposed`) that is scheduled on one of `nodes`, its node's host where the annotation differs; `None`
/// removes an annotation whose node no longer names a host. Pods on nodes not in `nodes`
/// (not read) are left alone.
pub fn advertise_hosts(
    pods: &[PodView],
    nodes: &[NodeView],
    exposed: impl Fn(&PodView) -> bool,
) -> Vec<(String, Option<String>)> {
    pods.iter()
        .filter(|p| exposed(p) && !p.terminating)
        .filter_map(|pod| {
            let node_name = pod.node.as_deref()?;
            let node = nodes.iter().find(|n| n.name == node_name)?;
            let want = node.advertised_host();
            // An empty annotation is as good as none: the relay falls back either way.
            let have = pod.advertise_host.as_deref().filter(|h| !h.is_empty());
            (want != have).then(|| (pod.name.clone(), want.map(str::to_string)))
        })
        .collect()
}
