//! Security and scheduling of relay pods: the operator's defaults (`OperatorConfig::relay_pod`)
//! and a Stream's own `spec.relay` fields, which win when set. Security contexts are the
//! operator's alone: whoever may create Streams must not be able to lower them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PodSecurityContext, SecurityContext, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::config::OperatorConfig;
use crate::crd::StreamSpec;
use crate::labels::{TierKind, tier_selector};

/// Node label of a zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Node label of a node's name.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// What a relay pod gets on top of its container, region and volumes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodSettings {
    pub security_context: PodSecurityContext,
    pub container_security_context: SecurityContext,
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    pub tolerations: Option<Vec<Toleration>>,
    pub affinity: Option<Affinity>,
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}

/// The default spread of a tier: over its region's zones, then over their nodes. Both are
/// ScheduleAnyway (a preference): a region with one zone or few nodes still gets its relays.
/// `nodeAffinityPolicy` is left at its default (Honor), so only the region's nodes count.
pub fn default_spread() -> Vec<TopologySpreadConstraint> {
    [ZONE_LABEL, HOSTNAME_LABEL]
        .into_iter()
        .map(|key| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.to_string(),
            when_unsatisfiable: "ScheduleAnyway".to_string(),
            // Pods of one rollout revision are spread among themselves.
            match_label_keys: Some(vec!["pod-template-hash".to_string()]),
            ..TopologySpreadConstraint::default()
        })
        .collect()
}

/// `constraints` with the tier's pod selector wherever a constraint has no labelSelector (one
/// without it would count no pods, and the chart's defaults cannot know each tier's labels).
fn with_tier_selector(
    constraints: Vec<TopologySpreadConstraint>,
    selector: &BTreeMap<String, String>,
) -> Vec<TopologySpreadConstraint> {
    constraints
        .into_iter()
        .map(|mut c| {
            c.label_selector.get_or_insert_with(|| LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            });
            c
        })
        .collect()
}

/// Pull secrets, tolerations, affinity, spread and security contexts of the pods of the
/// Stream `stream`'s `kind` tier in `region`.
pub fn pod_settings(
    stream: &str,
    region: &str,
    kind: TierKind,
    spec: &StreamSpec,
    cfg: &OperatorConfig,
) -> PodSettings {
    let defaults = &cfg.relay_pod;
    let relay = &spec.relay;
    let image_pull_secrets = relay.image_pull_secrets.clone().unwrap_or_else(|| {
        defaults
            .image_pull_secrets
            .iter()
            .map(|name| LocalObjectReference { name: name.clone() })
            .collect()
    });
    let tolerations = relay
        .tolerations
        .clone()
        .unwrap_or_else(|| defaults.tolerations.clone());
    let affinity = relay.affinity.clone().or_else(|| defaults.affinity.clone());
    // The origin is one relay: nothing to spread.
    let spread = if kind == TierKind::Origin {
        Vec::new()
    } else {
        let chosen = relay
            .topology_spread_constraints
            .clone()
            .or_else(|| defaults.topology_spread_constraints.clone())
            .unwrap_or_else(default_spread);
        let selector = tier_selector(stream, region, kind);
        with_tier_selector(chosen, &selector)
    };
    PodSettings {
        security_context: defaults.pod_security_context.clone(),
        container_security_context: defaults.security_context.clone(),
        image_pull_secrets: non_empty(image_pull_secrets),
        tolerations: non_empty(tolerations),
        affinity,
        topology_spread_constraints: non_empty(spread),
    }
}

/// An empty list is left out of the pod spec (as the API server would store it).
fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayPodDefaults;
    use crate::crd::RelaySpec;

    fn spec(relay: RelaySpec) -> StreamSpec {
        serde_json::from_value::<StreamSpec>(serde_json::json!({
            "origin": {"region": "eu-west"},
            "regions": [{"name": "eu-west"}],
        }))
        .map(|mut s| {
            s.relay = relay;
            s
        })
        .expect("a valid spec")
    }

    fn settings(relay: RelaySpec, kind: TierKind, cfg: &OperatorConfig) -> PodSettings {
        pod_settings("s", "eu-west", kind, &spec(relay), cfg)
    }

    fn toleration(key: &str) -> Toleration {
        Toleration {
            key: Some(key.to_string()),
            operator: Some("Exists".to_string()),
            effect: Some("NoSchedule".to_string()),
            ..Toleration::default()
        }
    }

    fn cfg_with(defaults: RelayPodDefaults) -> OperatorConfig {
        OperatorConfig {
            relay_pod: defaults,
            ..OperatorConfig::default()
        }
    }

    #[test]
    fn edges_spread_over_zones_then_nodes_of_their_tier_by_default() {
        let s = settings(
            RelaySpec::default(),
            TierKind::Edge,
            &OperatorConfig::default(),
        );
        let spread = s.topology_spread_constraints.expect("default spread");
        let keys: Vec<&str> = spread.iter().map(|c| c.topology_key.as_str()).collect();
        assert_eq!(keys, [ZONE_LABEL, HOSTNAME_LABEL]);
        for c in &spread {
            assert_eq!(c.max_skew, 1);
            assert_eq!(c.when_unsatisfiable, "ScheduleAnyway");
            let labels = c
                .label_selector
                .as_ref()
                .and_then(|l| l.match_labels.clone())
                .expect("the tier's selector");
            assert_eq!(
                labels,
                tier_selector("s", "eu-west", TierKind::Edge),
                "only this tier's pods count"
            );
        }
        assert_eq!(s.tolerations, None);
        assert_eq!(s.image_pull_secrets, None);
        assert_eq!(s.affinity, None);
        assert_eq!(s.security_context.run_as_non_root, Some(true));
        assert_eq!(
            s.container_security_context.read_only_root_filesystem,
            Some(true)
        );
    }

    #[test]
    fn the_origin_is_not_spread() {
        let s = settings(
            RelaySpec::default(),
            TierKind::Origin,
            &OperatorConfig::default(),
        );
        assert_eq!(s.topology_spread_constraints, None);
        assert_eq!(s.security_context.run_as_user, Some(65532));
    }

    #[test]
    fn operator_defaults_apply_when_the_stream_sets_nothing() {
        let cfg = cfg_with(RelayPodDefaults {
            image_pull_secrets: vec!["regcred".to_string()],
            tolerations: vec![toleration("dedicated")],
            affinity: Some(Affinity::default()),
            topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                max_skew: 2,
                topology_key: ZONE_LABEL.to_string(),
                when_unsatisfiable: "DoNotSchedule".to_string(),
                ..TopologySpreadConstraint::default()
            }]),
            ..RelayPodDefaults::default()
        });
        let s = settings(RelaySpec::default(), TierKind::Reflector(1), &cfg);
        assert_eq!(
            s.image_pull_secrets,
            Some(vec![LocalObjectReference {
                name: "regcred".to_string()
            }])
        );
        assert_eq!(s.tolerations, Some(vec![toleration("dedicated")]));
        assert_eq!(s.affinity, Some(Affinity::default()));
        let spread = s
            .topology_spread_constraints
            .expect("the operator's spread");
        assert_eq!(spread.len(), 1);
        assert_eq!(spread[0].max_skew, 2);
        assert!(
            spread[0].label_selector.is_some(),
            "filled with the tier's selector"
        );
    }

    #[test]
    fn a_streams_own_fields_win_even_when_empty() {
        let cfg = cfg_with(RelayPodDefaults {
            image_pull_secrets: vec!["regcred".to_string()],
            tolerations: vec![toleration("dedicated")],
            ..RelayPodDefaults::default()
        });
        let own_selector = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_string(), "x".to_string())])),
            ..LabelSelector::default()
        };
        let relay = RelaySpec {
            image_pull_secrets: Some(vec![LocalObjectReference {
                name: "team-pull".to_string(),
            }]),
            tolerations: Some(Vec::new()),
            topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                max_skew: 3,
                topology_key: HOSTNAME_LABEL.to_string(),
                when_unsatisfiable: "ScheduleAnyway".to_string(),
                label_selector: Some(own_selector.clone()),
                ..TopologySpreadConstraint::default()
            }]),
            ..RelaySpec::default()
        };
        let s = settings(relay, TierKind::Edge, &cfg);
        assert_eq!(
            s.image_pull_secrets,
            Some(vec![LocalObjectReference {
                name: "team-pull".to_string()
            }])
        );
        assert_eq!(
            s.tolerations, None,
            "[] replaces the operator's tolerations"
        );
        let spread = s.topology_spread_constraints.expect("the Stream's spread");
        assert_eq!(spread[0].max_skew, 3);
        assert_eq!(
            spread[0].label_selector,
            Some(own_selector),
            "a given selector is kept"
        );
        let none = RelaySpec {
            topology_spread_constraints: Some(Vec::new()),
            ..RelaySpec::default()
        };
        let s = settings(none, TierKind::Edge, &cfg);
        assert_eq!(s.topology_spread_constraints, None);
    }
}
