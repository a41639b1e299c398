//! What a Stream sets on the Services viewers and the broadcaster reach: annotations (a cloud's
//! load-balancer options), labels, `externalTrafficPolicy` and `loadBalancerClass` — for the
//! ingest Service (`spec.origin.service`) and each region's playback Service
//! (`spec.playback.service`, then `spec.regions[].playbackService` on top). Reflector and
//! placement-peers Services stay internal and get none of it.

use k8s_openapi::api::core::v1::Service;

use crate::crd::{ServiceSettings, ServiceType, StreamSpec};
use crate::labels::TierKind;
use crate::tree::TierPlan;
use crate::validate::FieldError;

/// Label key prefixes the operator's own labels use (selectors and ownership depend on them).
const RESERVED_LABEL_PREFIXES: [&str; 2] = ["surge.dev/", "app.kubernetes.io/"];

/// `region`'s playback Service settings: the Stream-wide ones with the region's on top.
pub fn playback_settings(spec: &StreamSpec, region: &str) -> ServiceSettings {
    let mut merged = spec.playback.service.clone();
    if let Some(own) = spec
        .regions
        .iter()
        .find(|r| r.name == region)
        .map(|r| &r.playback_service)
    {
        merged.annotations.extend(own.annotations.clone());
        merged.labels.extend(own.labels.clone());
        if own.external_traffic_policy.is_some() {
            merged.external_traffic_policy = own.external_traffic_policy;
        }
        if own.load_balancer_class.is_some() {
            merged.load_balancer_class = own.load_balancer_class.clone();
        }
    }
    merged
}

/// The settings of `tier`'s Service: the ingest Service's for the origin, the region's
/// playback Service's for edges, none for reflectors.
pub fn settings_for(spec: &StreamSpec, tier: &TierPlan) -> Option<ServiceSettings> {
    match tier.kind {
        TierKind::Origin => spec.origin.as_ref().map(|o| o.service.clone()),
        TierKind::Edge => Some(playback_settings(spec, &tier.region)),
        TierKind::Reflector(_) => None,
    }
}

/// `service` (a tier's, as `build_service` made it) with the Stream's settings for it. The
/// operator's own labels win over nothing: reserved keys are refused by validation first.
pub fn with_service_settings(mut service: Service, spec: &StreamSpec, tier: &TierPlan) -> Service {
    let Some(settings) = settings_for(spec, tier) else {
        return service;
    };
    if !settings.annotations.is_empty() {
        service
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .extend(settings.annotations);
    }
    let labels = service.metadata.labels.get_or_insert_with(Default::default);
    for (k, v) in settings.labels {
        labels.entry(k).or_insert(v);
    }
    if let Some(svc) = service.spec.as_mut() {
        svc.external_traffic_policy = settings
            .external_traffic_policy
            .map(|p| p.as_str().to_string());
        svc.load_balancer_class = settings.load_balancer_class;
    }
    service
}

/// Problems with the Service settings, naming each field (the CRD's rules, for Streams that
/// reach the operator some other way).
pub fn settings_errors(spec: &StreamSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(origin) = &spec.origin {
        check(
            &mut errors,
            "spec.origin.service",
            &origin.service,
            origin.service_type,
            "spec.origin.serviceType",
        );
    }
    check(
        &mut errors,
        "spec.playback.service",
        &spec.playback.service,
        spec.playback.service_type,
        "spec.playback.serviceType",
    );
    for (i, region) in spec.regions.iter().enumerate() {
        check(
            &mut errors,
            &format!("spec.regions[{i}].playbackService"),
            &region.playback_service,
            spec.playback.service_type,
            "spec.playback.serviceType",
        );
    }
    errors
}

fn check(
    errors: &mut Vec<FieldError>,
    field: &str,
    settings: &ServiceSettings,
    service_type: ServiceType,
    type_field: &str,
) {
    let mut err = |f: &str, message: String| {
        errors.push(FieldError {
            field: format!("{field}.{f}"),
            message,
        })
    };
    if settings.external_traffic_policy.is_some() && service_type == ServiceType::ClusterIP {
        err(
            "externalTrafficPolicy",
            format!("needs {type_field} NodePort or LoadBalancer (it is ClusterIP)"),
        );
    }
    if settings.load_balancer_class.is_some() && service_type != ServiceType::LoadBalancer {
        err(
            "loadBalancerClass",
            format!(
                "needs {type_field} LoadBalancer (it is {})",
                service_type.as_str()
            ),
        );
    }
    for key in settings.labels.keys() {
        if RESERVED_LABEL_PREFIXES.iter().any(|p| key.starts_with(p)) {
            err(
                "labels",
                format!("`{key}`: keys under surge.dev/ and app.kubernetes.io/ are the operator's"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TrafficPolicy;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn spec(json: serde_json::Value) -> StreamSpec {
        serde_json::from_value(json).expect("a spec")
    }

    fn lb_spec() -> StreamSpec {
        spec(serde_json::json!({
            "origin": {"region": "us-east", "serviceType": "LoadBalancer", "service": {
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
                "externalTrafficPolicy": "Local",
                "loadBalancerClass": "service.k8s.aws/nlb"}},
            "playback": {"serviceType": "LoadBalancer", "service": {
                "annotations": {"a": "all", "b": "all"},
                "labels": {"team": "media"},
                "externalTrafficPolicy": "Cluster"}},
            "regions": [
                {"name": "us-east", "playbackService": {
                    "annotations": {"b": "us-east"},
                    "externalTrafficPolicy": "Local",
                    "loadBalancerClass": "example.com/edge-lb"}},
                {"name": "eu-west"}
            ]
        }))
    }

    fn tier(kind: TierKind, region: &str) -> TierPlan {
        TierPlan {
            kind,
            region: region.to_string(),
            name: format!("s-{region}-{kind}"),
            replicas: 1,
            upstreams: Vec::new(),
            external: Vec::new(),
            node_selector: BTreeMap::new(),
            service_type: ServiceType::LoadBalancer,
            placement: None,
            parents: None,
        }
    }

    fn service() -> Service {
        Service {
            metadata: ObjectMeta {
                labels: Some(BTreeMap::from([(
                    "surge.dev/tier".to_string(),
                    "edge".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec::default()),
            status: None,
        }
    }

    #[test]
    fn a_regions_playback_settings_add_to_and_win_over_the_streams() {
        let s = lb_spec();
        let us = playback_settings(&s, "us-east");
        assert_eq!(us.annotations["a"], "all");
        assert_eq!(us.annotations["b"], "us-east");
        assert_eq!(us.labels["team"], "media");
        assert_eq!(us.external_traffic_policy, Some(TrafficPolicy::Local));
        assert_eq!(
            us.load_balancer_class.as_deref(),
            Some("example.com/edge-lb")
        );
        let eu = playback_settings(&s, "eu-west");
        assert_eq!(eu.annotations["b"], "all");
        assert_eq!(eu.external_traffic_policy, Some(TrafficPolicy::Cluster));
        assert_eq!(eu.load_balancer_class, None);
        assert!(settings_errors(&s).is_empty(), "{:?}", settings_errors(&s));
    }

    #[test]
    fn ingest_and_playback_services_get_theirs_reflectors_nothing() {
        let s = lb_spec();
        let origin = with_service_settings(service(), &s, &tier(TierKind::Origin, "us-east"));
        let a = origin.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(
            a["service.beta.kubernetes.io/aws-load-balancer-type"],
            "nlb"
        );
        let o = origin.spec.as_ref().expect("spec");
        assert_eq!(o.external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(
            o.load_balancer_class.as_deref(),
            Some("service.k8s.aws/nlb")
        );

        let edge = with_service_settings(service(), &s, &tier(TierKind::Edge, "us-east"));
        let labels = edge.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["team"], "media");
        assert_eq!(
            labels["surge.dev/tier"], "edge",
            "the operator's labels stay"
        );
        assert_eq!(
            edge.spec
                .as_ref()
                .and_then(|s| s.load_balancer_class.as_deref()),
            Some("example.com/edge-lb")
        );

        let reflector =
            with_service_settings(service(), &s, &tier(TierKind::Reflector(1), "us-east"));
        assert_eq!(reflector, service());
    }

    #[test]
    fn settings_the_service_type_cannot_take_and_reserved_labels_are_refused_by_field() {
        let s = spec(serde_json::json!({
            "origin": {"region": "us-east", "service": {"externalTrafficPolicy": "Local"}},
            "playback": {"serviceType": "NodePort", "service": {
                "loadBalancerClass": "x", "labels": {"surge.dev/tier": "origin"}}},
            "regions": [{"name": "us-east", "playbackService": {"externalTrafficPolicy": "Local"}}]
        }));
        let fields: Vec<String> = settings_errors(&s).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "spec.origin.service.externalTrafficPolicy",
                "spec.playback.service.loadBalancerClass",
                "spec.playback.service.labels",
            ],
            "a NodePort playback may have externalTrafficPolicy per region"
        );
    }
}
