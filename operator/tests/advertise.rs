//! The host a `hostPort` edge advertises: from its node (annotation, else ExternalIP) to the
//! pod annotation the operator sets, and the Downward API file and flag the edge reads it by.

mod common;

use common::world::{World, clock};
use common::{fixture, repo_root, target, tree_with};
use k8s_openapi::api::core::v1::{Node, Pod};
use surge_operator::advertise::{NodeView, advertise_hosts, host_port_nodes};
use surge_operator::build::{build_deployment, relay_args};
use surge_operator::config::OperatorConfig;
use surge_operator::decide::{Decision, Input, decide};
use surge_operator::labels::TierKind;
use surge_operator::observe::PodView;
use surge_operator::tree::TierPlan;

fn nodes() -> Vec<NodeView> {
    let path = repo_root().join("operator/tests/fixtures/nodes.yaml");
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let nodes: Vec<Node> = serde_saphyr::from_str(&text).expect("fixture parses as Nodes");
    nodes.iter().map(NodeView::from_node).collect()
}

fn node<'a>(nodes: &'a [NodeView], name: &str) -> &'a NodeView {
    nodes.iter().find(|n| n.name == name).expect("node")
}

fn edge(name: &str, node: Option<&str>, annotation: Option<&str>) -> PodView {
    PodView {
        name: name.into(),
        tier: TierKind::Edge,
        region: "eu-west".into(),
        ip: Some("10.244.0.9".into()),
        ready: true,
        ready_after_seconds: Some(5.0),
        deletion_cost: None,
        terminating: false,
        node: node.map(str::to_string),
        advertise_host: annotation.map(str::to_string),
    }
}

#[test]
fn a_node_names_its_annotation_else_its_first_external_ip_else_nothing() {
    let nodes = nodes();
    let host = |name: &str| node(&nodes, name).advertised_host().map(str::to_string);
    assert_eq!(host("annotated").as_deref(), Some("edge-1.example.net"));
    assert_eq!(host("external").as_deref(), Some("198.51.100.2"));
    assert_eq!(host("internal"), None);
    assert_eq!(host("blank").as_deref(), Some("198.51.100.4"));
}

#[test]
fn a_pod_shows_its_node_and_advertised_host() {
    let text = std::fs::read_to_string(repo_root().join("operator/tests/fixtures/edge-pod.yaml"))
        .expect("fixture readable");
    let pod: Pod = serde_saphyr::from_str(&text).expect("fixture parses as a Pod");
    let view = PodView::from_pod(&pod).expect("a relay pod");
    assert_eq!(view.tier, TierKind::Edge);
    assert_eq!(view.node.as_deref(), Some("external"));
    assert_eq!(view.advertise_host.as_deref(), Some("198.51.100.2"));
    // Already what its node names: nothing to change.
    assert!(advertise_hosts(&[view], &nodes(), |_| true).is_empty());
}

#[test]
fn edges_on_read_nodes_get_their_nodes_host_where_it_differs() {
    let nodes = nodes();
    let mut origin = edge("origin-0", Some("annotated"), None);
    origin.tier = TierKind::Origin;
    let mut leaving = edge("leaving", Some("annotated"), None);
    leaving.terminating = true;
    let pods = [
        edge("new", Some("annotated"), None),
        edge("stale", Some("annotated"), Some("198.51.100.1")),
        edge("current", Some("external"), Some("198.51.100.2")),
        edge("empty", Some("external"), Some("")),
        edge("moved-inside", Some("internal"), Some("198.51.100.3")),
        edge("inside", Some("internal"), None),
        edge("pending", None, None),
        edge("unread", Some("elsewhere"), Some("203.0.113.1")),
        origin,
        leaving,
    ];
    assert_eq!(
        advertise_hosts(&pods, &nodes, |p| p.tier == TierKind::Edge),
        [
            ("new".to_string(), Some("edge-1.example.net".to_string())),
            ("stale".to_string(), Some("edge-1.example.net".to_string())),
            ("empty".to_string(), Some("198.51.100.2".to_string())),
            // Its node names no host any more: the annotation goes, the relay falls back.
            ("moved-inside".to_string(), None),
        ],
        "scheduled, running edges on nodes that were read; unchanged ones left out"
    );
    assert_eq!(
        host_port_nodes(&pods),
        ["annotated", "elsewhere", "external", "internal"],
        "each node of a live edge (or origin) once, sorted"
    );
}

#[test]
fn only_host_port_streams_plan_advertised_hosts() {
    for (file, expected) in [("placement-hostport.yaml", true), ("minimal.yaml", false)] {
        let w = World::new(fixture(file));
        let mut observed = w.observed(0);
        for p in observed.pods.iter_mut() {
            p.node = Some("annotated".into());
        }
        observed.nodes = nodes();
        let input = Input {
            stream: &w.stream,
            target: &w.target,
            observed: &observed,
            clock: clock(0.0),
            cfg: &w.cfg,
        };
        let Decision::Apply(planned) = decide(&input, &w.memory) else {
            panic!("a valid Stream is planned");
        };
        let edges = observed
            .pods
            .iter()
            .filter(|p| p.tier == TierKind::Edge)
            .count();
        let want: Vec<(String, Option<String>)> = if expected {
            // The edges, and the origin: with no reflectors it takes the edges' overflow
            // on host ports too.
            observed
                .pods
                .iter()
                .filter(|p| matches!(p.tier, TierKind::Edge | TierKind::Origin))
                .map(|p| (p.name.clone(), Some("edge-1.example.net".to_string())))
                .collect()
        } else {
            Vec::new()
        };
        assert!(edges > 0);
        assert_eq!(planned.advertise_hosts, want, "{file}");
    }
}

fn edge_tier<'a>(tiers: &'a [TierPlan], region: &str) -> &'a TierPlan {
    tiers
        .iter()
        .find(|t| t.kind == TierKind::Edge && t.region == region)
        .expect("edge tier")
}

#[test]
fn host_port_edges_read_the_annotation_from_a_downward_api_file() {
    let cfg = OperatorConfig::default();
    let stream = fixture("placement-hostport.yaml");
    let t = target(&stream);
    let tree = tree_with(&stream, 0);
    let tier = edge_tier(&tree.tiers, "eu-west");
    let args = relay_args(&t, &stream.spec, tier, &cfg);
    let at = args
        .iter()
        .position(|a| a == "--advertise-host-file")
        .expect("--advertise-host-file");
    assert_eq!(args[at + 1], "/etc/surge-pod/advertise-host");

    let d = build_deployment(&t, &stream.spec, tier, &cfg);
    let pod = d.spec.unwrap().template.spec.unwrap();
    let volumes = pod.volumes.expect("volumes");
    assert_eq!(volumes.len(), 1);
    let items = volumes[0]
        .downward_api
        .as_ref()
        .and_then(|d| d.items.as_ref())
        .expect("a Downward API volume");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].path, "advertise-host");
    let field = items[0].field_ref.as_ref().expect("fieldRef");
    assert_eq!(
        field.field_path,
        "metadata.annotations['surge.dev/advertise-host']"
    );
    let c = &pod.containers[0];
    let mounts = c.volume_mounts.as_ref().expect("volume mounts");
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].name, volumes[0].name);
    assert_eq!(mounts[0].mount_path, "/etc/surge-pod");
    assert_eq!(mounts[0].read_only, Some(true));
    // status.hostIP stays the fallback.
    let env = c.env.as_ref().expect("env");
    assert_eq!(env[0].name, "SURGE_ADVERTISE_HOST");

    // Behind Services nothing is mounted and no file is named.
    let stream = fixture("minimal.yaml");
    let t = target(&stream);
    let tree = tree_with(&stream, 0);
    for tier in &tree.tiers {
        let args = relay_args(&t, &stream.spec, tier, &cfg);
        assert!(!args.iter().any(|a| a == "--advertise-host-file"));
        let pod = build_deployment(&t, &stream.spec, tier, &cfg)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert!(pod.volumes.is_none());
        assert!(pod.containers[0].volume_mounts.is_none());
    }
}
