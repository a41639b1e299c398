//! The Service of one tier: ingest (origin), parent (reflector) or playback (edge).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Target;
use crate::config::OperatorConfig;
use crate::labels::{tier_labels, tier_selector};
use crate::tree::TierPlan;

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
/// HTTP-FLV playback.
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
