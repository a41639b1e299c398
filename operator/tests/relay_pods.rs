//! Relay pods as a platform team reviews them: the `restricted` Pod Security level, scheduling
//! (the operator's defaults, a Stream's own fields winning), a PodDisruptionBudget per tier, and
//! the relay image allowlist — from Stream fixtures through the builders and `decide`.

mod common;

use common::world::{World, condition, with_reason};
use common::{fixture, load, target, tree_with};
use k8s_openapi::api::core::v1::{PodSpec, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use surge_operator::build::build_deployment;
use surge_operator::build::pod_settings::{HOSTNAME_LABEL, ZONE_LABEL};
use surge_operator::config::{OperatorConfig, RelayPodDefaults};
use surge_operator::crd::Stream;
use surge_operator::labels::{TierKind, tier_selector};

fn pod_specs(stream: &Stream, cfg: &OperatorConfig) -> Vec<(TierKind, String, PodSpec)> {
    let t = target(stream);
    tree_with(stream, 0)
        .tiers
        .iter()
        .map(|tier| {
            let d = build_deployment(&t, &stream.spec, tier, cfg);
            let pod = d.spec.and_then(|s| s.template.spec).expect("a pod spec");
            (tier.kind, tier.region.clone(), pod)
        })
        .collect()
}

/// The checks of the Pod Security Standards' `restricted` level (v1.34) that a pod spec can
/// fail, as the PodSecurity admission plugin makes them; empty when the pod is admitted.
fn restricted_violations(pod: &PodSpec) -> Vec<String> {
    let mut v = Vec::new();
    let psc = pod.security_context.clone().unwrap_or_default();
    for c in &pod.containers {
        let sc = c.security_context.clone().unwrap_or_default();
        if sc.allow_privilege_escalation != Some(false) {
            v.push(format!("{}: allowPrivilegeEscalation != false", c.name));
        }
        let caps = sc.capabilities.clone().unwrap_or_default();
        if !caps.drop.unwrap_or_default().iter().any(|d| d == "ALL") {
            v.push(format!("{}: capabilities.drop lacks ALL", c.name));
        }
        if caps
            .add
            .unwrap_or_default()
            .iter()
            .any(|a| a != "NET_BIND_SERVICE")
        {
            v.push(format!("{}: adds capabilities", c.name));
        }
        if sc.run_as_non_root.or(psc.run_as_non_root) != Some(true) {
            v.push(format!("{}: runAsNonRoot != true", c.name));
        }
        if sc.run_as_user.or(psc.run_as_user) == Some(0) {
            v.push(format!("{}: runAsUser 0", c.name));
        }
        let seccomp = sc
            .seccomp_profile
            .or(psc.seccomp_profile.clone())
            .map(|p| p.type_);
        if !matches!(seccomp.as_deref(), Some("RuntimeDefault" | "Localhost")) {
            v.push(format!("{}: seccompProfile not RuntimeDefault", c.name));
        }
        if sc.privileged == Some(true) {
            v.push(format!("{}: privileged", c.name));
        }
        for p in c.ports.iter().flatten() {
            if p.host_port.unwrap_or(0) != 0 {
                v.push(format!("{}: hostPort {:?}", c.name, p.host_port));
            }
        }
    }
    for vol in pod.volumes.iter().flatten() {
        let allowed = vol.config_map.is_some()
            || vol.secret.is_some()
            || vol.downward_api.is_some()
            || vol.empty_dir.is_some()
            || vol.projected.is_some()
            || vol.persistent_volume_claim.is_some()
            || vol.csi.is_some()
            || vol.ephemeral.is_some();
        if !allowed {
            v.push(format!("volume {} has a restricted type", vol.name));
        }
    }
    if pod.host_network == Some(true) || pod.host_pid == Some(true) || pod.host_ipc == Some(true) {
        v.push("host namespaces".to_string());
    }
    v
}

#[test]
fn every_relay_pod_meets_the_restricted_level_with_a_read_only_root() {
    let cfg = OperatorConfig::default();
    // The example, a reflector tree, and an origin with a mounted publish-keys Secret.
    for path in [
        "examples/stream.yaml",
        "operator/tests/fixtures/relay-scheduling.yaml",
        "operator/tests/fixtures/custom-selector.yaml",
    ] {
        let mut stream = load(path);
        stream.spec.publish = Some(
            serde_json::from_value(serde_json::json!({"keySecretRef": {"name": "keys"}}))
                .expect("publish spec"),
        );
        for (kind, region, pod) in pod_specs(&stream, &cfg) {
            let violations = restricted_violations(&pod);
            assert!(
                violations.is_empty(),
                "{path} {region} {kind}: {violations:?}"
            );
            let c = &pod.containers[0];
            let sc = c.security_context.as_ref().expect("container context");
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            let psc = pod.security_context.as_ref().expect("pod context");
            assert_eq!(psc.run_as_user, Some(65532), "the image's nonroot user");
            assert_eq!(psc.run_as_group, Some(65532));
            // Every mount is read-only: the relay writes no files.
            for m in c.volume_mounts.iter().flatten() {
                assert_eq!(m.read_only, Some(true), "{path}: mount {}", m.name);
            }
        }
    }
}

#[test]
fn hostport_edges_are_the_documented_exception_to_restricted() {
    // hostPort exposure opens node ports, which the baseline and restricted levels forbid:
    // such Streams need a namespace at the privileged level (charts/surge/README.md).
    let stream = fixture("placement-hostport.yaml");
    let pods = pod_specs(&stream, &OperatorConfig::default());
    let edge = pods
        .iter()
        .find(|(k, _, _)| *k == TierKind::Edge)
        .expect("an edge");
    let violations = restricted_violations(&edge.2);
    assert!(
        violations.iter().all(|v| v.contains("hostPort")) && !violations.is_empty(),
        "{violations:?}"
    );
}

#[test]
fn edges_and_reflectors_spread_over_zones_and_nodes_the_origin_not() {
    let stream = load("examples/stream.yaml");
    for (kind, region, pod) in pod_specs(&stream, &OperatorConfig::default()) {
        let spread = pod.topology_spread_constraints.unwrap_or_default();
        if kind == TierKind::Origin {
            assert!(spread.is_empty(), "the origin is one relay");
            continue;
        }
        let keys: Vec<&str> = spread.iter().map(|c| c.topology_key.as_str()).collect();
        assert_eq!(keys, [ZONE_LABEL, HOSTNAME_LABEL], "{region} {kind}");
        for c in &spread {
            assert_eq!(c.when_unsatisfiable, "ScheduleAnyway");
            assert_eq!(
                c.label_selector
                    .as_ref()
                    .and_then(|s| s.match_labels.clone()),
                Some(tier_selector("final", &region, kind))
            );
        }
        // The region still pins the pods: the spread is within it.
        assert!(
            pod.node_selector
                .unwrap_or_default()
                .values()
                .any(|v| *v == region)
        );
    }
}

#[test]
fn a_streams_scheduling_fields_win_over_the_operators() {
    let stream = fixture("relay-scheduling.yaml");
    let operator_toleration = Toleration {
        key: Some("spot".to_string()),
        operator: Some("Exists".to_string()),
        ..Toleration::default()
    };
    let cfg = OperatorConfig {
        relay_pod: RelayPodDefaults {
            image_pull_secrets: vec!["chart-pull".to_string()],
            tolerations: vec![operator_toleration.clone()],
            ..RelayPodDefaults::default()
        },
        ..OperatorConfig::default()
    };
    let pods = pod_specs(&stream, &cfg);
    assert!(
        pods.iter()
            .any(|(k, _, _)| matches!(k, TierKind::Reflector(_))),
        "the fixture has reflectors"
    );
    for (kind, region, pod) in pods {
        let secrets: Vec<String> = pod
            .image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(secrets, ["media-pull"], "{kind}");
        let tolerations = pod.tolerations.unwrap_or_default();
        assert_eq!(tolerations.len(), 1);
        assert_eq!(tolerations[0].value.as_deref(), Some("video"));
        let required = pod
            .affinity
            .and_then(|a| a.node_affinity)
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .expect("the Stream's node affinity");
        assert_eq!(required.node_selector_terms.len(), 1);
        let spread = pod.topology_spread_constraints.unwrap_or_default();
        if kind == TierKind::Origin {
            assert!(spread.is_empty());
        } else {
            assert_eq!(spread.len(), 1, "the Stream's spread replaces the default");
            assert_eq!(spread[0].max_skew, 2);
            assert_eq!(spread[0].when_unsatisfiable, "DoNotSchedule");
            assert_eq!(
                spread[0]
                    .label_selector
                    .as_ref()
                    .and_then(|s| s.match_labels.clone()),
                Some(tier_selector("gala", &region, kind)),
                "filled with the tier's labels"
            );
        }
    }
    // Without its own fields a Stream gets the operator's.
    let plain = fixture("minimal.yaml");
    for (_, _, pod) in pod_specs(&plain, &cfg) {
        let secrets: Vec<String> = pod
            .image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(secrets, ["chart-pull"]);
        assert_eq!(pod.tolerations, Some(vec![operator_toleration.clone()]));
    }
}

#[test]
fn every_tier_gets_a_pod_disruption_budget_owned_by_the_stream() {
    let mut w = World::new(fixture("relay-scheduling.yaml"));
    w.cfg.allowed_relay_images = vec!["registry.example/media/*".to_string()];
    let r = w.reconcile(0.0, 0);
    let planned = r.planned();
    let deployments: Vec<String> = planned.objects.iter().map(|(_, d)| d.name_any()).collect();
    let pdbs: Vec<String> = planned.pdbs.iter().map(|p| p.name_any()).collect();
    assert_eq!(pdbs, deployments, "one per tier, named as its Deployment");
    for (pdb, tier) in planned.pdbs.iter().zip(&planned.tree.tiers) {
        let spec = pdb.spec.as_ref().expect("spec");
        let expected = match tier.kind {
            TierKind::Origin => IntOrString::Int(0),
            TierKind::Reflector(_) => IntOrString::Int(1),
            TierKind::Edge => IntOrString::String("10%".to_string()),
        };
        assert_eq!(
            spec.max_unavailable.as_ref(),
            Some(&expected),
            "{}",
            tier.name
        );
        assert_eq!(spec.min_available, None);
        assert_eq!(
            spec.selector.as_ref().and_then(|s| s.match_labels.clone()),
            Some(tier_selector("gala", &tier.region, tier.kind))
        );
        assert_eq!(pdb.owner_references()[0].uid, w.target.owner.uid);
        assert!(
            planned.keep.contains(&pdb.name_any()),
            "kept, not an orphan"
        );
    }
}

#[test]
fn an_image_outside_the_allowlist_is_refused_naming_the_field() {
    let mut w = World::new(fixture("relay-scheduling.yaml"));
    w.cfg.allowed_relay_images = vec!["ghcr.io/surge-dev/surge-relay".to_string()];
    let r = w.reconcile(0.0, 0);
    assert!(r.planned.is_none(), "nothing is built for a refused image");
    let refused = with_reason(r.events(), "InvalidSpec");
    assert_eq!(refused.len(), 1, "{:?}", r.events());
    assert_eq!(refused[0].type_, EventType::Warning);
    let note = &refused[0].note;
    assert!(
        note.contains("spec.relay.image")
            && note.contains("registry.example/media/surge-relay:1.0")
            && note.contains("--allowed-relay-images"),
        "{note}"
    );
    let (status, reason, message) = condition(r.status(), "Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(message.contains("spec.relay.image"), "{message}");
    // The next reconcile says nothing new; allowing the image builds the tree.
    assert!(with_reason(w.reconcile(5.0, 0).events(), "InvalidSpec").is_empty());
    w.cfg
        .allowed_relay_images
        .push("registry.example/media/surge-relay".to_string());
    let r = w.reconcile(10.0, 0);
    let image = r.planned().objects[0]
        .1
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers[0].image.clone());
    assert_eq!(
        image.as_deref(),
        Some("registry.example/media/surge-relay:1.0")
    );
    // A Stream without an image uses the operator's, which is always allowed.
    let mut plain = World::new(fixture("minimal.yaml"));
    plain.cfg.allowed_relay_images = vec!["registry.example/other".to_string()];
    assert!(plain.reconcile(0.0, 0).planned.is_some());
}

#[test]
fn every_relay_pod_tells_prometheus_where_its_metrics_are() {
    let cfg = OperatorConfig {
        relay_admin_port: 9191,
        ..OperatorConfig::default()
    };
    let stream = load("operator/tests/fixtures/relay-scheduling.yaml");
    let t = target(&stream);
    for tier in &tree_with(&stream, 0).tiers {
        let d = build_deployment(&t, &stream.spec, tier, &cfg);
        let template = d.spec.expect("spec").template;
        let annotations = template
            .metadata
            .and_then(|m| m.annotations)
            .expect("pod annotations");
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{}", tier.name);
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
        // The annotated port is the container's admin port, where /metrics is served.
        let admin = template.spec.expect("pod spec").containers[0]
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("admin"))
            .map(|p| p.container_port.to_string())
            .expect("admin port");
        assert_eq!(annotations["prometheus.io/port"], admin, "{}", tier.name);
        assert_eq!(admin, "9191");
    }
}
