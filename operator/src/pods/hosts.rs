//! What each Service's names resolve to, from its pods, as cluster DNS answers. Pure.
//!
//! Names of a Service `svc` in namespace `ns`: `svc`, `svc.ns`, `svc.ns.svc` and
//! `svc.ns.svc.<domain>` (what the search path of a pod in `ns` reaches). Addresses: the pod
//! IPs of the Ready pods it selects (no ClusterIP here: a name stands for its pods, as a
//! headless Service's does); a headless Service with `publishNotReadyAddresses` every Running
//! pod it selects. Pods being deleted are never listed. A Service with no such pod is listed
//! with no address, so its names resolve to none rather than going to DNS.
//! The file format and its atomic write are `local`'s ([`crate::local::hosts_file`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Pod, Service};

use crate::local::rewrite::{Endpoint, is_headless, publishes_not_ready, selected};

/// A pod as Services see it: `None` unless Running with an IPv4 pod IP.
pub fn endpoint(pod: &Pod) -> Option<Endpoint<'_>> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    Some(Endpoint {
        namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        labels: pod.metadata.labels.as_ref()?,
        address: status.pod_ip.as_deref()?.parse().ok()?,
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    })
}

/// The names `service` answers to.
pub fn names(service: &Service, cluster_domain: &str) -> Vec<String> {
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
    vec![
        name.to_string(),
        format!("{name}.{namespace}"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.{cluster_domain}"),
    ]
}

/// Each Service name and the pod IPs it stands for now (see the module doc).
pub fn entries(
    services: &[Service],
    pods: &[Pod],
    cluster_domain: &str,
) -> BTreeMap<String, Vec<Ipv4Addr>> {
    let endpoints: Vec<Endpoint<'_>> = pods.iter().filter_map(endpoint).collect();
    let mut out = BTreeMap::new();
    for service in services {
        // An ExternalName Service is a DNS alias, not pods.
        let external =
            service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
        if external || service.metadata.name.is_none() {
            continue;
        }
        let all = is_headless(service) && publishes_not_ready(service);
        let addresses: Vec<Ipv4Addr> = selected(service, &endpoints)
            .into_iter()
            .filter(|e| if all { !e.terminating } else { e.serving() })
            .map(|e| e.address)
            .collect();
        for name in names(service, cluster_domain) {
            out.insert(name, addresses.clone());
        }
    }
    out
}

/// The file's text.
pub fn render(entries: &BTreeMap<String, Vec<Ipv4Addr>>) -> String {
    let text = crate::local::hosts_file::render(entries);
    let body = text.split_once('\n').map_or("", |(_, rest)| rest);
    format!("# surge-operator pods: Service names and their pods now\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn labels(tier: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("tier".to_string(), tier.to_string())])
    }

    fn service(name: &str, tier: &str, headless: bool, not_ready_too: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("media".to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(labels(tier)),
                cluster_ip: Some(if headless { "None" } else { "10.96.0.9" }.to_string()),
                publish_not_ready_addresses: not_ready_too.then_some(true),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    fn pod(tier: &str, last: u8, phase: &str, ready: bool, deleted: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(format!("{tier}-{last}")),
                namespace: Some("media".to_string()),
                labels: Some(labels(tier)),
                deletion_timestamp: deleted.then(|| Time(Default::default())),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.to_string()),
                pod_ip: Some(format!("127.31.0.{last}")),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".to_string(),
                    status: if ready { "True" } else { "False" }.to_string(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn names_stand_for_ready_pods_or_every_running_one_when_published() {
        let pods = [
            pod("edge", 2, "Running", false, false),
            pod("edge", 1, "Running", true, false),
            pod("edge", 3, "Running", true, true),
            pod("edge", 4, "Pending", false, false),
            pod("origin", 9, "Running", false, false),
        ];
        let mut external = service("s-alias", "edge", false, false);
        external.spec.as_mut().unwrap().type_ = Some("ExternalName".to_string());
        let services = [
            service("s-edge", "edge", false, false),
            service("s-origin", "origin", false, false),
            service("s-peers", "edge", true, true),
            service("s-ready-peers", "edge", true, false),
            external,
        ];
        let got = entries(&services, &pods, "cluster.local");
        let ip = |last| Ipv4Addr::new(127, 31, 0, last);
        for name in [
            "s-edge",
            "s-edge.media",
            "s-edge.media.svc",
            "s-edge.media.svc.cluster.local",
        ] {
            assert_eq!(got[name], [ip(1)], "{name}");
        }
        // Not Ready: no address, but listed (no fallback to DNS).
        assert!(got["s-origin.media.svc.cluster.local"].is_empty());
        // Not Ready ones too, but neither the deleted .3 nor the Pending .4.
        assert_eq!(got["s-peers.media.svc.cluster.local"], [ip(1), ip(2)]);
        assert_eq!(got["s-ready-peers"], [ip(1)]);
        assert!(!got.contains_key("s-alias"));
        assert_eq!(got.len(), 16);
        let text = render(&got);
        assert!(
            text.starts_with(
                "# surge-operator pods: Service names and their pods now\ns-edge 127.31.0.1\n"
            ),
            "{text}"
        );
        assert!(text.contains("\ns-origin.media\n"), "{text}");
        assert!(
            text.contains("\ns-peers.media.svc 127.31.0.1 127.31.0.2\n"),
            "{text}"
        );
    }

    #[test]
    fn services_only_see_their_namespace() {
        let mut other = pod("edge", 5, "Running", true, false);
        other.metadata.namespace = Some("elsewhere".to_string());
        let got = entries(
            &[service("s-edge", "edge", false, false)],
            &[other],
            "example.org",
        );
        assert!(got["s-edge.media.svc.example.org"].is_empty());
    }
}
