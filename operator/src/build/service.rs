//! The Service of one tier: ingest (origin), parent (reflector) or playback (edge).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Target;
use crate::config::OperatorConfig;
use crate::labels::{COMPONENT_PEERS, LABEL_COMPONENT, LABEL_TIER, tier_labels, tier_selector};
use crate::tree::{PeersService, TierPlan};

fn port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port: i32::from(port),
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// The Service in front of `tier`'s pods: RTMP for publishing/pulling/playing, HTTP for
/// HTTP-FLV playback. Never the admin port (stats, metrics, probes): a playback Service may be
/// a LoadBalancer open to the internet.
pub fn build_service(target: &Target, tier: &TierPlan, cfg: &OperatorConfig) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(tier.name.clone()),
            namespace: Some(target.namespace.clone()),
            labels: Some(tier_labels(&target.stream, &tier.region, tier.kind)),
            owner_references: Some(vec![target.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(tier.service_type.as_str().to_string()),
            selector: Some(tier_selector(&target.stream, &tier.region, tier.kind)),
            ports: Some(vec![
                port("rtmp", cfg.relay_rtmp_port),
                port("http", cfg.relay_http_port),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// A region's headless Service over its edges (`clusterIP: None`): its DNS name resolves to
/// every edge pod, and `publishNotReadyAddresses` keeps full (not Ready) edges in the
/// locators' view, so they are seen as full rather than gone. Peers poll each pod's admin port
/// at the addresses the name resolves to; like every Service it does not list that port.
pub fn build_peers_service(target: &Target, peers: &PeersService, cfg: &OperatorConfig) -> Service {
    let mut labels = tier_labels(&target.stream, &peers.region, peers.kind);
    // Not a tier: no tier label, so nothing counts it as the edges' own Service.
    labels.remove(LABEL_TIER);
    labels.insert(LABEL_COMPONENT.to_string(), COMPONENT_PEERS.to_string());
    Service {
        metadata: ObjectMeta {
            name: Some(peers.name.clone()),
            namespace: Some(target.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![target.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(tier_selector(&target.stream, &peers.region, peers.kind)),
            ports: Some(vec![
                port("http", cfg.relay_http_port),
                port("rtmp", cfg.relay_rtmp_port),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ServiceType;
    use crate::labels::TierKind;

    fn target() -> Target {
        Target {
            stream: "s".into(),
            namespace: "media".into(),
            app: "live".into(),
            owner: Default::default(),
        }
    }

    fn tier(kind: TierKind, service_type: ServiceType) -> TierPlan {
        TierPlan {
            kind,
            region: "eu".into(),
            name: format!("s-eu-{}", kind.tier_name()),
            replicas: 1,
            upstreams: vec![],
            external: Vec::new(),
            node_selector: Default::default(),
            service_type,
            placement: None,
            parents: None,
        }
    }

    fn ports(s: &Service) -> Vec<(String, i32, String)> {
        s.spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .map(|p| {
                let target = match &p.target_port {
                    Some(IntOrString::String(name)) => name.clone(),
                    Some(IntOrString::Int(n)) => n.to_string(),
                    None => String::new(),
                };
                (p.name.clone().unwrap_or_default(), p.port, target)
            })
            .collect()
    }

    #[test]
    fn no_service_carries_the_admin_port() {
        let cfg = OperatorConfig {
            relay_admin_port: 9191,
            ..OperatorConfig::default()
        };
        let kinds = [TierKind::Origin, TierKind::Reflector(1), TierKind::Edge];
        let types = [
            ServiceType::ClusterIP,
            ServiceType::NodePort,
            ServiceType::LoadBalancer,
        ];
        let mut services = Vec::new();
        for kind in kinds {
            for service_type in types {
                services.push(build_service(&target(), &tier(kind, service_type), &cfg));
            }
            let peers = PeersService {
                name: format!("s-eu-{}-peers", kind.tier_name()),
                region: "eu".into(),
                kind,
            };
            services.push(build_peers_service(&target(), &peers, &cfg));
        }
        for service in &services {
            let mut got = ports(service);
            got.sort();
            assert_eq!(
                got,
                [
                    ("http".to_string(), 8080, "http".to_string()),
                    ("rtmp".to_string(), 1935, "rtmp".to_string())
                ],
                "{:?}",
                service.metadata.name
            );
        }
    }
}
