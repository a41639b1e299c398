//! Placement from the Stream: edge capacity from an egress budget, exposure behind Services or
//! on host ports, the locators' peers and overflow order, and the endpoints the status
//! publishes (load-balancer addresses, locator URLs).

mod common;

use std::collections::BTreeMap;

use common::world::{World, clock};
use common::{fixture, load, target, tree_with};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Service, ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use surge_operator::build::{build_deployment, build_peers_service, relay_args};
use surge_operator::config::OperatorConfig;
use surge_operator::crd::{Exposure, Stream};
use surge_operator::decide::{Applied, Decision, Input, decide};
use surge_operator::labels::TierKind;
use surge_operator::observe::ServiceView;
use surge_operator::sizing::{tree_settings, viewers_per_edge};
use surge_operator::tree::TierPlan;
use surge_operator::validate::validate;

fn arg_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

fn edge<'a>(tiers: &'a [TierPlan], region: &str) -> &'a TierPlan {
    tiers
        .iter()
        .find(|t| t.kind == TierKind::Edge && t.region == region)
        .expect("edge tier")
}

fn from_yaml(yaml: &str) -> Stream {
    serde_saphyr::from_str(yaml).expect("a Stream")
}

#[test]
fn edge_size_comes_from_egress_unless_viewers_per_edge_is_given() {
    // Neither set: today's default (2000), no egress flag.
    let minimal = fixture("minimal.yaml");
    assert_eq!(viewers_per_edge(&minimal.spec), 2000);
    let tree = tree_with(&minimal, 0);
    let args = relay_args(
        &target(&minimal),
        &minimal.spec,
        edge(&tree.tiers, "eu-west"),
        &OperatorConfig::default(),
    );
    assert_eq!(arg_after(&args, "--max-viewers"), ["4000"]);
    assert!(arg_after(&args, "--max-egress-mbps").is_empty());
    assert!(arg_after(&args, "--bitrate-floor-kbps").is_empty());

    // Only the egress: 1000 Mbit/s at 4000 kbit/s is 250 viewers, and the planner sizes for it.
    let cup = fixture("placement-hostport.yaml");
    assert_eq!(viewers_per_edge(&cup.spec), 250);
    let region = &cup.spec.regions[0];
    assert_eq!(tree_settings(&cup.spec, region).viewers_per_edge, 250);
    let tree = tree_with(&cup, 0);
    let args = relay_args(
        &target(&cup),
        &cup.spec,
        edge(&tree.tiers, "eu-west"),
        &OperatorConfig::default(),
    );
    assert_eq!(arg_after(&args, "--max-viewers"), ["500"]);
    assert_eq!(arg_after(&args, "--max-egress-mbps"), ["1000"]);
    assert_eq!(arg_after(&args, "--bitrate-floor-kbps"), ["4000"]);
    // Only edges hold viewers: the origin gets no capacity flags.
    let origin = relay_args(
        &target(&cup),
        &cup.spec,
        tree.origin().expect("an origin"),
        &OperatorConfig::default(),
    );
    assert!(arg_after(&origin, "--max-egress-mbps").is_empty());

    // Both: the explicit edge size wins, the egress limit still goes to the relay.
    let mut both = cup.clone();
    both.spec.tree.set_viewers_per_edge(100);
    assert_eq!(viewers_per_edge(&both.spec), 100);
    let tree = tree_with(&both, 0);
    let args = relay_args(
        &target(&both),
        &both.spec,
        edge(&tree.tiers, "eu-west"),
        &OperatorConfig::default(),
    );
    assert_eq!(arg_after(&args, "--max-viewers"), ["200"]);
    assert_eq!(arg_after(&args, "--max-egress-mbps"), ["1000"]);
}

#[test]
fn an_explicit_viewers_per_edge_survives_a_round_trip_and_an_unset_one_stays_unset() {
    let explicit = from_yaml(
        "apiVersion: surge.dev/v1alpha1\nkind: Stream\nmetadata: {name: a}\nspec:\n  origin: {region: eu}\n  regions: [{name: eu}]\n  tree: {viewersPerEdge: 2000, edgeEgressMbps: 100}\n",
    );
    // Set to the default value, but set: it wins over the egress (100 Mbit/s = 40 viewers).
    assert_eq!(viewers_per_edge(&explicit.spec), 2000);
    let json = serde_json::to_value(&explicit.spec).unwrap();
    assert_eq!(json["tree"]["viewersPerEdge"], 2000);
    let unset = from_yaml(
        "apiVersion: surge.dev/v1alpha1\nkind: Stream\nmetadata: {name: a}\nspec:\n  origin: {region: eu}\n  regions: [{name: eu}]\n  tree: {edgeEgressMbps: 100}\n",
    );
    assert_eq!(viewers_per_edge(&unset.spec), 40);
    let json = serde_json::to_value(&unset.spec).unwrap();
    assert!(json["tree"].get("viewersPerEdge").is_none(), "{json}");
    assert_eq!(json["tree"]["edgeEgressMbps"], 100);
    assert_eq!(json["placement"]["overflow"][0], "tierAbove");
    assert_eq!(json["placement"]["exposure"], "service");
}

#[test]
fn behind_services_edges_are_no_locators_and_open_no_host_ports() {
    let stream = load("examples/stream.yaml");
    assert_eq!(stream.spec.placement.exposure, Exposure::Service);
    let cfg = OperatorConfig::default();
    let tree = tree_with(&stream, 0);
    // Only the reflector levels' and the edges' peers, for the parent choice: no locator.
    for p in &tree.peers_services {
        let used = tree.tiers.iter().any(|tier| {
            let args = relay_args(&target(&stream), &stream.spec, tier, &cfg);
            let named = |flag| {
                arg_after(&args, flag)
                    .iter()
                    .any(|a| a.starts_with(&format!("{}.", p.name)))
            };
            named("--parent-peer") || named("--sibling-peer")
        });
        assert!(used, "{} serves the parent choice", p.name);
    }
    for tier in &tree.tiers {
        let args = relay_args(&target(&stream), &stream.spec, tier, &cfg);
        assert!(arg_after(&args, "--placement-peer").is_empty(), "{args:?}");
        assert!(arg_after(&args, "--overflow").is_empty(), "{args:?}");
        assert_eq!(arg_after(&args, "--region"), [tier.region.as_str()]);
        let d = build_deployment(&target(&stream), &stream.spec, tier, &cfg);
        let spec = d.spec.unwrap();
        let rolling = spec.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
        let c = &spec.template.spec.unwrap().containers[0];
        assert!(
            c.ports
                .as_ref()
                .unwrap()
                .iter()
                .all(|p| p.host_port.is_none())
        );
        assert!(c.env.is_none());
    }
}

#[test]
fn on_host_ports_every_edge_is_a_locator_over_its_region_and_its_overflow() {
    let stream = fixture("placement-hostport.yaml");
    let cfg = OperatorConfig::default();
    let t = target(&stream);
    let tree = tree_with(&stream, 0);
    let names: Vec<&str> = tree
        .peers_services
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    // Each region's edges, its first reflector level and the origin (the tiers above the
    // edges, taking their overflow: the reflectors when they run, else the origin), and the
    // higher reflector levels (for the parent choice). The levels are laid out for every
    // region's maxEdges, with no relays while the origin feeds the edges itself.
    assert_eq!(
        names,
        [
            "cup-us-east-peers",
            "cup-eu-west-peers",
            "cup-ap-south-peers",
            "cup-us-east-reflector-1-peers",
            "cup-origin-peers",
            "cup-eu-west-reflector-1-peers",
            "cup-ap-south-reflector-1-peers",
            "cup-us-east-reflector-2-peers",
            "cup-eu-west-reflector-2-peers",
            "cup-ap-south-reflector-2-peers"
        ]
    );

    // Peers are polled on their admin port.
    let peer = |region: &str| format!("cup-{region}-peers.media.svc.cluster.local:9090");
    // ap-south: its own edges, the tiers above (its first reflector level, the origin), then
    // eu-west's and us-east's edges, in the overflow order.
    let args = relay_args(&t, &stream.spec, edge(&tree.tiers, "ap-south"), &cfg);
    assert_eq!(
        arg_after(&args, "--placement-peer"),
        [
            peer("ap-south"),
            peer("ap-south-reflector-1"),
            peer("origin"),
            peer("eu-west"),
            peer("us-east")
        ]
    );
    assert_eq!(
        arg_after(&args, "--overflow"),
        ["tier-above,eu-west,us-east"]
    );
    assert_eq!(arg_after(&args, "--region"), ["ap-south"]);
    // eu-west does not overflow to itself.
    let args = relay_args(&t, &stream.spec, edge(&tree.tiers, "eu-west"), &cfg);
    assert_eq!(
        arg_after(&args, "--placement-peer"),
        [
            peer("eu-west"),
            peer("eu-west-reflector-1"),
            peer("origin"),
            peer("us-east")
        ]
    );
    assert_eq!(arg_after(&args, "--overflow"), ["tier-above,us-east"]);
    // The origin takes overflow but places nobody: no locator. It advertises its node's
    // host and the node ports two above the relay's (an edge and a reflector may share the
    // node); children still pull from its pod address.
    let origin = relay_args(&t, &stream.spec, tree.origin().expect("an origin"), &cfg);
    assert!(arg_after(&origin, "--placement-peer").is_empty());
    assert!(arg_after(&origin, "--overflow").is_empty());
    assert_eq!(
        arg_after(&origin, "--advertise-host-file"),
        ["/etc/surge-pod/advertise-host"]
    );
    assert_eq!(arg_after(&origin, "--advertise-rtmp-port"), ["1937"]);
    assert_eq!(arg_after(&origin, "--advertise-http-port"), ["8082"]);
    // Edges advertise the relay's own ports.
    assert!(arg_after(&args, "--advertise-rtmp-port").is_empty());

    // Each edge opens both ports on its node and advertises the node's IP.
    let d = build_deployment(&t, &stream.spec, edge(&tree.tiers, "eu-west"), &cfg);
    let spec = d.spec.unwrap();
    // A rollout may free a node's ports first (every node may already hold an edge).
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(1)));
    let c = &spec.template.spec.unwrap().containers[0];
    let ports: Vec<(i32, Option<i32>)> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.container_port, p.host_port))
        .collect();
    // The admin port never on the node's (public) address.
    assert_eq!(
        ports,
        [(1935, Some(1935)), (8080, Some(8080)), (9090, None)]
    );
    let env = &c.env.as_ref().expect("env")[0];
    assert_eq!(env.name, "SURGE_ADVERTISE_HOST");
    let field = env.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
    assert_eq!(field.field_path, "status.hostIP");
    let origin = build_deployment(&t, &stream.spec, tree.origin().expect("an origin"), &cfg);
    let spec = origin.spec.unwrap();
    // Its one relay holds the broadcast: a rollout waits for free ports rather than stop it.
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    let pod = spec.template.spec.unwrap();
    let c = &pod.containers[0];
    let ports: Vec<(i32, Option<i32>)> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.container_port, p.host_port))
        .collect();
    assert_eq!(
        ports,
        [(1935, Some(1937)), (8080, Some(8082)), (9090, None)]
    );
    assert!(pod.volumes.is_some(), "the advertise-host file is mounted");

    // The peers Service: headless, not-Ready edges included, selecting the region's edges.
    let svc = build_peers_service(&t, &tree.peers_services[1], &cfg);
    assert_eq!(svc.name_any(), "cup-eu-west-peers");
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    let selector = spec.selector.unwrap();
    assert_eq!(selector["surge.dev/tier"], "edge");
    assert_eq!(selector["surge.dev/region"], "eu-west");
    assert_eq!(selector["surge.dev/stream"], "cup");
    let labels = svc.metadata.labels.unwrap();
    assert!(
        !labels.contains_key("surge.dev/tier"),
        "not a tier: {labels:?}"
    );
    assert_eq!(labels["app.kubernetes.io/managed-by"], "surge-operator");
    assert_eq!(svc.metadata.owner_references.unwrap()[0].uid, t.owner.uid);
}

#[test]
fn an_empty_overflow_leaves_the_relay_default() {
    let mut stream = fixture("placement-hostport.yaml");
    stream.spec.placement.overflow.clear();
    let tree = tree_with(&stream, 0);
    let args = relay_args(
        &target(&stream),
        &stream.spec,
        edge(&tree.tiers, "eu-west"),
        &OperatorConfig::default(),
    );
    // Only edges are in view, so the relay's default (tier-above) finds nothing either.
    assert!(arg_after(&args, "--overflow").is_empty());
    assert_eq!(
        arg_after(&args, "--placement-peer"),
        ["cup-eu-west-peers.media.svc.cluster.local:9090"]
    );
}

#[test]
fn overflow_names_known_regions_once_and_egress_is_positive() {
    let mut stream = fixture("placement-hostport.yaml");
    assert_eq!(validate(&stream.name_any(), &stream.spec), vec![]);
    stream.spec.placement.overflow = vec!["mars".into(), "eu-west".into(), "eu-west".into()];
    stream.spec.tree.edge_egress_mbps = Some(0);
    let errors = validate(&stream.name_any(), &stream.spec);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.tree.edgeEgressMbps",
            "spec.placement.overflow[0]",
            "spec.placement.overflow[2]"
        ],
        "{errors:?}"
    );
    assert!(errors[1].message.contains("mars"), "{}", errors[1].message);
    assert!(
        errors[2].message.contains("duplicate"),
        "{}",
        errors[2].message
    );
}

fn load_balancer(name: &str, ingress: LoadBalancerIngress) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ..ServiceSpec::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![ingress]),
            }),
            ..ServiceStatus::default()
        }),
    }
}

#[test]
fn a_load_balancers_ip_or_hostname_is_the_external_host() {
    let ip = load_balancer(
        "a",
        LoadBalancerIngress {
            ip: Some("203.0.113.7".into()),
            hostname: Some("lb.example".into()),
            ..LoadBalancerIngress::default()
        },
    );
    assert_eq!(
        ServiceView::from_service(&ip).external_host.as_deref(),
        Some("203.0.113.7")
    );
    let host = load_balancer(
        "b",
        LoadBalancerIngress {
            hostname: Some("lb.example".into()),
            ..LoadBalancerIngress::default()
        },
    );
    assert_eq!(
        ServiceView::from_service(&host).external_host.as_deref(),
        Some("lb.example")
    );
    // Pending (no ingress yet) or not a load balancer: the in-cluster name stays.
    let mut pending = ip.clone();
    pending.status = None;
    assert_eq!(ServiceView::from_service(&pending).external_host, None);
    let mut node_port = ip.clone();
    node_port.spec.as_mut().unwrap().type_ = Some("NodePort".into());
    assert_eq!(ServiceView::from_service(&node_port).external_host, None);
}

#[test]
fn the_status_publishes_locators_at_the_load_balancers_address() {
    let stream = fixture("placement-hostport.yaml");
    let w = World::new(stream);
    let mut observed = w.observed(0);
    let ip = LoadBalancerIngress {
        ip: Some("203.0.113.7".into()),
        ..LoadBalancerIngress::default()
    };
    observed.services = vec![
        ServiceView::from_service(&load_balancer("cup-eu-west-edge", ip)),
        ServiceView {
            name: "cup-us-east-edge".into(),
            external_host: None,
        },
    ];
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
    // The peers Services are applied and kept (not deleted as orphans).
    let peers: Vec<String> = planned
        .peers_services
        .iter()
        .map(|s| s.name_any())
        .collect();
    assert_eq!(
        peers,
        [
            "cup-us-east-peers",
            "cup-eu-west-peers",
            "cup-ap-south-peers",
            "cup-us-east-reflector-1-peers",
            "cup-origin-peers",
            "cup-eu-west-reflector-1-peers",
            "cup-ap-south-reflector-1-peers",
            "cup-us-east-reflector-2-peers",
            "cup-eu-west-reflector-2-peers",
            "cup-ap-south-reflector-2-peers"
        ]
    );
    assert!(peers.iter().all(|p| planned.keep.contains(p)));
    let outcome = planned.settle(&input, &Applied::default());
    let endpoints = outcome.status.expect("status").endpoints;
    let by_region: BTreeMap<&str, _> = endpoints
        .playback
        .iter()
        .map(|p| (p.region.as_str(), p))
        .collect();
    let eu = by_region["eu-west"];
    assert_eq!(eu.rtmp, "rtmp://203.0.113.7:1935/live/cup");
    assert_eq!(eu.http_flv, "http://203.0.113.7:8080/live/cup.flv");
    assert_eq!(
        eu.locate.as_deref(),
        Some("http://203.0.113.7:8080/api/v1/locate?app=live&stream=cup")
    );
    // No address yet: the in-cluster name.
    assert_eq!(
        by_region["us-east"].locate.as_deref(),
        Some(
            "http://cup-us-east-edge.media.svc.cluster.local:8080/api/v1/locate?app=live&stream=cup"
        )
    );
    assert_eq!(
        endpoints.ingest,
        "rtmp://cup-origin.media.svc.cluster.local:1935/live/cup"
    );
}

#[test]
fn the_first_reflector_level_takes_its_regions_overflow_on_host_ports_of_its_own() {
    let stream = fixture("placement-hostport.yaml");
    let cfg = OperatorConfig::default();
    let t = target(&stream);
    // Enough viewers that every region's edges hang under reflectors.
    let tree = tree_with(&stream, 200_000);
    let level1 = tree
        .tiers
        .iter()
        .find(|x| x.region == "eu-west" && x.kind == TierKind::Reflector(1))
        .expect("eu-west has reflectors at this size");
    let above = format!("{}-peers", level1.name);
    assert!(tree.peers_services.iter().any(|p| p.name == above));
    let args = relay_args(&t, &stream.spec, edge(&tree.tiers, "eu-west"), &cfg);
    assert_eq!(
        arg_after(&args, "--placement-peer")[1],
        format!("{above}.media.svc.cluster.local:9090")
    );
    let reflector = relay_args(&t, &stream.spec, level1, &cfg);
    assert_eq!(arg_after(&reflector, "--advertise-rtmp-port"), ["1936"]);
    assert_eq!(arg_after(&reflector, "--advertise-http-port"), ["8081"]);
    let d = build_deployment(&t, &stream.spec, level1, &cfg);
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    let host_ports: Vec<Option<i32>> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.host_port)
        .collect();
    assert_eq!(host_ports, [Some(1936), Some(8081), None]);
    // Higher reflector levels stay unexposed; the origin stays exposed (it takes the overflow
    // whenever the plan runs no reflectors, and its pod template does not change with the plan).
    let origin = relay_args(&t, &stream.spec, tree.origin().expect("an origin"), &cfg);
    assert_eq!(
        arg_after(&origin, "--advertise-host-file"),
        ["/etc/surge-pod/advertise-host"]
    );
    for tier in tree
        .tiers
        .iter()
        .filter(|x| matches!(x.kind, TierKind::Reflector(l) if l > 1))
    {
        let args = relay_args(&t, &stream.spec, tier, &cfg);
        assert!(
            arg_after(&args, "--advertise-host-file").is_empty(),
            "{}",
            tier.name
        );
    }
}
