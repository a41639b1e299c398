//! What a cloud and a node's network would open for a kwok cluster's relay pods, planned for
//! this machine (`surge-operator pods --host-ports --load-balancers PREFIX`). Pure; the
//! runner binds the listeners (with `local`'s [`crate::local::service_proxy`]).
//!
//! - Host ports: a pod on a node annotated `surge.dev/external-host` (a loopback address, as
//!   `scripts/k8s/up` with SURGE_K8S_NODE_HOST_PREFIX gives each node) gets that address at
//!   each container port's `hostPort`, forwarded to the pod IP and container port, as the CNI
//!   portmap plugin forwards a node's host port.
//! - Load balancers: a `LoadBalancer` Service gets a loopback address of its own (allocated
//!   from `PREFIX.x.y`), listening on its ports and forwarding each connection to one of its
//!   Ready pods (like kube-proxy behind a cloud load balancer); its status then names the
//!   address as `status.loadBalancer.ingress[0].ip`, as a cloud controller writes it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, Node, Pod, Service};

use super::hosts::endpoint;
use super::launch::{relay_container, runnable};
use crate::local::rewrite::{Endpoint, selected};
use crate::local::service_proxy::{backends, port_map};

/// The node annotation naming the node's external host (also read by the operator).
pub const EXTERNAL_HOST_ANNOTATION: &str = crate::labels::NODE_EXTERNAL_HOST;

/// One address this machine listens on for the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opening {
    /// What it stands for: `hostPort <pod uid>` or `LoadBalancer <Service uid>`.
    pub key: String,
    pub address: Ipv4Addr,
    /// `(listen port, pod port)`.
    pub ports: Vec<(u16, u16)>,
    /// Pod IPs new connections go to.
    pub backends: Vec<Ipv4Addr>,
}

/// Nodes by name whose external host is a loopback IPv4 address.
pub fn node_hosts(nodes: &[Node]) -> BTreeMap<String, Ipv4Addr> {
    nodes
        .iter()
        .filter_map(|n| {
            let host = n
                .metadata
                .annotations
                .as_ref()?
                .get(EXTERNAL_HOST_ANNOTATION)?;
            let ip: Ipv4Addr = host.trim().parse().ok()?;
            Some((n.metadata.name.clone()?, ip)).filter(|_| ip.is_loopback())
        })
        .collect()
}

/// The node host of `pod`, when its node has one.
pub fn node_host(pod: &Pod, hosts: &BTreeMap<String, Ipv4Addr>) -> Option<Ipv4Addr> {
    let node = pod.spec.as_ref()?.node_name.as_ref()?;
    hosts.get(node).copied()
}

/// A listener per runnable pod with host ports on a node with a host.
pub fn host_port_openings(pods: &[Pod], hosts: &BTreeMap<String, Ipv4Addr>) -> Vec<Opening> {
    pods.iter()
        .filter_map(|pod| {
            let target = runnable(pod)?;
            let address = node_host(pod, hosts)?;
            let ports: Vec<(u16, u16)> = relay_container(pod)?
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    let host = u16::try_from(p.host_port?).ok().filter(|h| *h > 0)?;
                    Some((host, u16::try_from(p.container_port).ok()?))
                })
                .collect();
            (!ports.is_empty()).then(|| Opening {
                key: format!("hostPort {}", target.uid),
                address,
                ports,
                backends: vec![target.ip],
            })
        })
        .collect()
}

/// Whether `service` is a `LoadBalancer` Service.
pub fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// The key of a `LoadBalancer` Service's opening (its uid, else its name).
pub fn load_balancer_key(service: &Service) -> Option<String> {
    let m = &service.metadata;
    let id = m.uid.clone().or_else(|| m.name.clone())?;
    Some(format!("LoadBalancer {id}"))
}

/// A listener per `LoadBalancer` Service that has an address in `addresses` (by key) and at
/// least one pod (its named target ports are read from the pods' relay container).
pub fn load_balancer_openings(
    services: &[Service],
    pods: &[Pod],
    addresses: &BTreeMap<String, Ipv4Addr>,
) -> Vec<Opening> {
    let endpoints: Vec<Endpoint<'_>> = pods.iter().filter_map(endpoint).collect();
    services
        .iter()
        .filter(|s| is_load_balancer(s))
        .filter_map(|service| {
            let key = load_balancer_key(service)?;
            let address = *addresses.get(&key)?;
            let container = selected_container(service, &endpoints, pods)?;
            Some(Opening {
                ports: port_map(service, container),
                backends: backends(service, &endpoints),
                key,
                address,
            })
        })
        .collect()
}

/// The relay container of a pod `service` selects (`endpoints`: the pods as Services see them).
fn selected_container<'p>(
    service: &Service,
    endpoints: &[Endpoint<'_>],
    pods: &'p [Pod],
) -> Option<&'p Container> {
    let first = selected(service, endpoints).first()?.address;
    pods.iter()
        .find(|p| endpoint(p).is_some_and(|e| e.address == first))
        .and_then(relay_container)
}

/// The first address of `PREFIX.x.y` (y in 1..=254) not `taken`.
pub fn allocate(prefix: [u8; 2], taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    (0..=255u8)
        .flat_map(|x| (1..=254u8).map(move |y| Ipv4Addr::new(prefix[0], prefix[1], x, y)))
        .find(|a| !taken.contains(a))
}

/// `127.N` as its two octets.
pub fn parse_prefix(s: &str) -> Result<[u8; 2], String> {
    let bad = || format!("`{s}` is not a loopback prefix like 127.12");
    let (a, b) = s.trim().split_once('.').ok_or_else(bad)?;
    match (a.parse::<u8>(), b.parse::<u8>()) {
        (Ok(127), Ok(b)) => Ok([127, b]),
        _ => Err(bad()),
    }
}

/// The ingress IP `service`'s status names now, if any.
pub fn ingress_ip(service: &Service) -> Option<&str> {
    service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .ip
        .as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn node(name: &str, host: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: host
                    .map(|h| [(EXTERNAL_HOST_ANNOTATION.to_string(), h.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn pod(name: &str, ip: &str, node: &str, ready: bool, host_ports: bool) -> Pod {
        let port = |name: &str, n: i32, host: i32| ContainerPort {
            name: Some(name.into()),
            container_port: n,
            host_port: host_ports.then_some(host),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                namespace: Some("live".into()),
                labels: Some([("tier".to_string(), "edge".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                containers: vec![Container {
                    name: "relay".into(),
                    ports: Some(vec![port("rtmp", 1935, 1935), port("http", 8080, 8080)]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn service(type_: &str) -> Service {
        let port = |name: &str, n: i32| ServicePort {
            name: Some(name.into()),
            port: n,
            target_port: Some(IntOrString::String(name.into())),
            ..Default::default()
        };
        Service {
            metadata: ObjectMeta {
                name: Some("demo-playback".into()),
                uid: Some("svc-1".into()),
                namespace: Some("live".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                selector: Some([("tier".to_string(), "edge".to_string())].into()),
                ports: Some(vec![port("rtmp", 1935), port("http", 80)]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_loopback_node_hosts_count() {
        let hosts = node_hosts(&[
            node("a", Some("127.31.1.1")),
            node("b", Some("203.0.113.9")),
            node("c", Some("edge.example")),
            node("d", None),
        ]);
        assert_eq!(
            hosts,
            [("a".to_string(), Ipv4Addr::new(127, 31, 1, 1))].into()
        );
    }

    #[test]
    fn host_ports_forward_the_node_host_to_the_pod() {
        let hosts = node_hosts(&[node("a", Some("127.31.1.1"))]);
        let pods = [
            pod("e1", "127.30.1.5", "a", true, true),
            pod("e2", "127.30.2.5", "b", true, true),
            pod("o1", "127.30.1.6", "a", true, false),
        ];
        assert_eq!(
            host_port_openings(&pods, &hosts),
            [Opening {
                key: "hostPort uid-e1".into(),
                address: Ipv4Addr::new(127, 31, 1, 1),
                ports: vec![(1935, 1935), (8080, 8080)],
                backends: vec![Ipv4Addr::new(127, 30, 1, 5)],
            }]
        );
    }

    #[test]
    fn a_load_balancer_forwards_to_its_ready_pods_once_it_has_an_address() {
        let pods = [
            pod("e1", "127.30.1.5", "a", true, false),
            pod("e2", "127.30.2.5", "b", false, false),
        ];
        let services = [service("LoadBalancer"), service("ClusterIP")];
        assert!(load_balancer_openings(&services, &pods, &BTreeMap::new()).is_empty());
        let address = Ipv4Addr::new(127, 32, 0, 1);
        let addresses = [("LoadBalancer svc-1".to_string(), address)].into();
        assert_eq!(
            load_balancer_openings(&services, &pods, &addresses),
            [Opening {
                key: "LoadBalancer svc-1".into(),
                address,
                ports: vec![(1935, 1935), (80, 8080)],
                backends: vec![Ipv4Addr::new(127, 30, 1, 5)],
            }]
        );
        assert!(load_balancer_openings(&services, &[], &addresses).is_empty());
    }

    #[test]
    fn allocation_skips_taken_and_network_addresses() {
        let taken: BTreeSet<Ipv4Addr> = [Ipv4Addr::new(127, 32, 0, 1)].into();
        assert_eq!(
            allocate([127, 32], &taken),
            Some(Ipv4Addr::new(127, 32, 0, 2))
        );
        assert_eq!(parse_prefix("127.32"), Ok([127, 32]));
        for bad in ["10.1", "127", "127.300", "x.y"] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }
}
