//! Builders, from Stream YAML fixtures to the Deployments and Services the operator applies.

mod common;

use common::{fixture, load, target, tree_with};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use surge_operator::build::{build_deployment, build_service, relay_args};
use surge_operator::config::OperatorConfig;
use surge_operator::labels::TierKind;

fn arg_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn example_stream_builds_origin_and_each_regions_tiers_with_idle_reflector_levels() {
    let stream = load("examples/stream.yaml");
    let cfg = OperatorConfig::default();
    let tree = tree_with(&stream, 0);
    let names: Vec<&str> = tree.tiers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "final-origin",
            "final-us-east-reflector-2",
            "final-us-east-reflector-1",
            "final-us-east-edge",
            "final-eu-west-reflector-2",
            "final-eu-west-reflector-1",
            "final-eu-west-edge",
            "final-ap-south-reflector-1",
            "final-ap-south-edge"
        ],
        "the reflector levels of the tree at every region's maxEdges are laid out from the start"
    );
    let t = target(&stream);
    for tier in &tree.tiers {
        let d = build_deployment(&t, &stream.spec, tier, &cfg);
        let spec = d.spec.as_ref().unwrap();
        let pod = spec.template.spec.as_ref().unwrap();
        let region = &tier.region;
        assert_eq!(
            pod.node_selector
                .as_ref()
                .unwrap()
                .get("topology.kubernetes.io/region"),
            Some(region),
            "{} pinned to its region",
            tier.name
        );
        assert_eq!(
            d.metadata.owner_references.as_ref().unwrap()[0].kind,
            "Stream"
        );
        assert_eq!(
            d.metadata.owner_references.as_ref().unwrap()[0].controller,
            Some(true)
        );
        let labels = d.metadata.labels.as_ref().unwrap();
        for key in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/managed-by",
            "surge.dev/stream",
            "surge.dev/region",
            "surge.dev/tier",
        ] {
            assert!(labels.contains_key(key), "{} has label {key}", tier.name);
        }
        // The selector is a subset of the pod labels.
        let selector = spec.selector.match_labels.as_ref().unwrap();
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        let c = &pod.containers[0];
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/readyz")
        );
        assert_eq!(
            c.liveness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/healthz")
        );
        // Both probes on the admin port, which every relay listens on and no Service lists.
        for probe in [&c.readiness_probe, &c.liveness_probe] {
            let port = &probe.as_ref().unwrap().http_get.as_ref().unwrap().port;
            assert_eq!(port, &IntOrString::String("admin".into()), "{}", tier.name);
        }
        let ports: Vec<(&str, i32, Option<i32>)> = c
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref().unwrap(), p.container_port, p.host_port))
            .collect();
        assert_eq!(
            ports,
            [
                ("rtmp", 1935, None),
                ("http", 8080, None),
                ("admin", 9090, None)
            ],
            "{}",
            tier.name
        );
        let args = c.args.as_ref().unwrap();
        assert_eq!(arg_after(args, "--admin-listen"), ["0.0.0.0:9090"]);
        assert!(c.lifecycle.as_ref().unwrap().pre_stop.is_some());
        assert!(pod.termination_grace_period_seconds.unwrap() > 30);
    }
    // us-east keeps two edges warm, the others one; no reflector runs while the origin
    // feeds every edge itself.
    let replicas: Vec<i32> = tree.tiers.iter().map(|t| t.replicas).collect();
    assert_eq!(replicas, [1, 0, 0, 2, 0, 0, 1, 0, 1]);
}

#[test]
fn relay_args_name_tier_region_prewarm_and_upstreams_in_order() {
    let stream = load("examples/stream.yaml");
    let cfg = OperatorConfig::default();
    let tree = tree_with(&stream, 0);
    let t = target(&stream);
    let origin = relay_args(&t, &stream.spec, tree.origin().expect("an origin"), &cfg);
    assert_eq!(arg_after(&origin, "--tier"), ["origin"]);
    assert_eq!(arg_after(&origin, "--region"), ["us-east"]);
    assert!(arg_after(&origin, "--upstream").is_empty());
    assert!(arg_after(&origin, "--prewarm").is_empty());

    let edge = tree
        .tiers
        .iter()
        .find(|t| t.name == "final-eu-west-edge")
        .unwrap();
    let args = relay_args(&t, &stream.spec, edge, &cfg);
    assert_eq!(arg_after(&args, "--tier"), ["edge"]);
    assert_eq!(arg_after(&args, "--region"), ["eu-west"]);
    assert_eq!(arg_after(&args, "--prewarm"), ["live/final"]);
    assert_eq!(
        arg_after(&args, "--max-viewers"),
        ["4000"],
        "twice viewersPerEdge"
    );
    // The idle reflector level first (no relays: the edge passes over it), then the origin.
    assert_eq!(
        arg_after(&args, "--upstream"),
        [
            "rtmp://final-eu-west-reflector-1.default.svc.cluster.local:1935/live",
            "rtmp://final-origin.default.svc.cluster.local:1935/live"
        ]
    );
    assert_eq!(arg_after(&args, "--http-listen"), ["0.0.0.0:8080"]);
}

#[test]
fn every_relay_labels_its_metrics_with_the_streams_namespace_and_name() {
    let stream = load("examples/stream.yaml");
    let cfg = OperatorConfig::default();
    let tree = tree_with(&stream, 0);
    let mut t = target(&stream);
    t.namespace = "media".to_string();
    for tier in &tree.tiers {
        let args = relay_args(&t, &stream.spec, tier, &cfg);
        assert_eq!(
            arg_after(&args, "--metrics-label"),
            ["surge_namespace=media", "surge_stream=final"],
            "{}",
            tier.name
        );
    }
}

#[test]
fn services_expose_rtmp_and_http_with_the_requested_types() {
    let stream = fixture("custom-selector.yaml");
    let cfg = OperatorConfig {
        relay_http_port: 18080,
        ..OperatorConfig::default()
    };
    let tree = tree_with(&stream, 0);
    let t = target(&stream);
    let origin = build_service(&t, tree.origin().expect("an origin"), &cfg);
    assert_eq!(
        origin.spec.as_ref().unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );
    let edge_tier = tree
        .tiers
        .iter()
        .find(|t| t.kind == TierKind::Edge)
        .unwrap();
    let edge = build_service(&t, edge_tier, &cfg);
    let spec = edge.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    let ports: Vec<(String, i32)> = spec
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.port))
        .collect();
    assert_eq!(
        ports,
        [("rtmp".to_string(), 1935), ("http".to_string(), 18080)]
    );
    assert_eq!(spec.selector.as_ref().unwrap()["surge.dev/tier"], "edge");
}

#[test]
fn custom_node_selector_image_resources_and_extra_args_are_used() {
    let stream = fixture("custom-selector.yaml");
    let cfg = OperatorConfig::default();
    let tree = tree_with(&stream, 0);
    let t = target(&stream);
    let edge_tier = tree
        .tiers
        .iter()
        .find(|t| t.kind == TierKind::Edge)
        .unwrap();
    assert_eq!(edge_tier.replicas, 3, "minEdges = maxEdges = 3");
    let d = build_deployment(&t, &stream.spec, edge_tier, &cfg);
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.node_selector.unwrap().get("pool").map(String::as_str),
        Some("edge-us")
    );
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.example/surge-relay:dev"));
    let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["cpu"].0, "1");
    let args = c.args.as_ref().unwrap();
    assert_eq!(&args[args.len() - 2..], ["--slow-viewer-timeout", "10s"]);
    assert_eq!(arg_after(args, "--prewarm"), ["tv/match"]);
    assert_eq!(arg_after(args, "--max-write-delay"), ["120ms"]);
}

#[test]
fn without_a_latency_budget_relays_send_every_frame_at_once() {
    let stream = load("examples/stream.yaml");
    assert_eq!(stream.spec.relay.max_write_delay_ms, None);
    let cfg = OperatorConfig::default();
    let tree = tree_with(&stream, 0);
    for tier in &tree.tiers {
        let d = build_deployment(&target(&stream), &stream.spec, tier, &cfg);
        let pod = d.spec.unwrap().template.spec.unwrap();
        let args = pod.containers[0].args.clone().unwrap_or_default();
        assert!(arg_after(&args, "--max-write-delay").is_empty(), "{args:?}");
    }
}

#[test]
fn defaults_fill_a_minimal_stream() {
    let stream = fixture("minimal.yaml");
    assert_eq!(stream.spec.app, "live");
    assert_eq!(stream.spec.tree.fanout, 8);
    assert_eq!(stream.spec.tree.viewers_per_edge, 2000);
    assert_eq!(stream.spec.regions[0].min_edges, 1);
    assert_eq!(stream.spec.regions[0].max_edges, 100);
    assert_eq!(stream.spec.scaling.lead_time_seconds, 60);
    assert_eq!(stream.spec.scaling.scale_down_stabilization_seconds, 300);
    let cfg = OperatorConfig::default();
    let tree = tree_with(&stream, 0);
    let t = target(&stream);
    let d = build_deployment(&t, &stream.spec, &tree.tiers[1], &cfg);
    assert_eq!(d.metadata.namespace.as_deref(), Some("media"));
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some(cfg.relay_image.as_str()));
    assert_eq!(
        c.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0,
        "250m"
    );
}

#[test]
fn a_growing_plan_changes_replica_counts_but_no_pod_template() {
    // Adding or removing reflectors must not roll the edges: a changed pod template makes
    // Kubernetes replace every edge pod, cutting its viewers, in the middle of a crowd.
    let stream = load("examples/stream.yaml");
    let cfg = OperatorConfig::default();
    let t = target(&stream);
    let idle = tree_with(&stream, 0);
    let crowd = tree_with(&stream, 60_000);
    assert!(
        crowd.tiers.iter().any(|tier| tier.kind != TierKind::Edge
            && tier.kind != TierKind::Origin
            && tier.replicas > 0),
        "the crowd's plan runs reflectors: {:?}",
        crowd
            .tiers
            .iter()
            .map(|t| (&t.name, t.replicas))
            .collect::<Vec<_>>()
    );
    let names = |tree: &surge_operator::tree::TreePlan| {
        tree.tiers
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&idle),
        names(&crowd),
        "the same tiers, idle or crowded"
    );
    for (a, b) in idle.tiers.iter().zip(&crowd.tiers) {
        let template = |tier| {
            let d = build_deployment(&t, &stream.spec, tier, &cfg);
            serde_json::to_value(d.spec.expect("spec").template).expect("json")
        };
        assert_eq!(template(a), template(b), "{}'s pod template", a.name);
    }
    let edges = |tree: &surge_operator::tree::TreePlan| -> i32 {
        tree.tiers
            .iter()
            .filter(|t| t.kind == TierKind::Edge)
            .map(|t| t.replicas)
            .sum()
    };
    assert!(edges(&crowd) > edges(&idle));
}
