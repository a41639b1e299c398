//! Tree shapes: when reflectors appear, how tiers chain, and that every relay's fan-out holds.

mod common;

use common::{load, plan_with, tree_with};
use surge_operator::config::OperatorConfig;
use surge_operator::labels::TierKind;
use surge_operator::tree::plan_tiers;

#[test]
fn small_audience_origin_feeds_edges_directly() {
    let stream = load("examples/stream.yaml");
    let tree = tree_with(&stream, 1000);
    // The reflector levels of the tree at maxEdges are laid out, with no relays: each edge
    // passes over its level to the origin.
    for t in &tree.tiers {
        if matches!(t.kind, TierKind::Reflector(_)) {
            assert_eq!(t.replicas, 0, "{}", t.name);
        }
    }
    for t in tree.tiers.iter().filter(|t| t.kind == TierKind::Edge) {
        assert_eq!(
            t.upstreams,
            [
                format!("final-{}-reflector-1", t.region),
                "final-origin".into()
            ]
        );
    }
}

#[test]
fn big_audience_adds_reflectors_that_chain_to_the_origin() {
    let stream = load("examples/stream.yaml");
    // 40k viewers per region at 2000 per edge with 20% headroom: 24 edges, capped by maxEdges
    // (60 / 40 / 20); way past the fan-out of 8.
    let plan = plan_with(&stream, 40_000, 1);
    let tree = plan_tiers("final", &stream.spec, &plan, &OperatorConfig::default());
    let fanout = stream.spec.tree.fanout as i32;
    let mut origin_children = 0;
    for region in ["us-east", "eu-west", "ap-south"] {
        let tiers: Vec<_> = tree.region_tiers(region).collect();
        assert!(tiers.len() >= 2, "{region} has a reflector tier: {tiers:?}");
        // Top tier first, edges last; each tier pulls from the one above, then the origin.
        let top = tiers[0];
        assert!(matches!(top.kind, TierKind::Reflector(_)));
        assert_eq!(top.upstreams, ["final-origin"]);
        for pair in tiers.windows(2) {
            let (above, below) = (pair[0], pair[1]);
            assert_eq!(
                below.upstreams,
                [above.name.clone(), "final-origin".to_string()]
            );
        }
        // The tiers that run relays (a level without any is passed over): no relay feeds
        // more than `fanout` children, the origin feeds the top one.
        let running: Vec<_> = tiers.iter().filter(|t| t.replicas > 0).collect();
        assert!(running.len() >= 2, "{region} runs reflectors: {tiers:?}");
        origin_children += running[0].replicas;
        for pair in running.windows(2) {
            let (above, below) = (pair[0], pair[1]);
            assert!(
                below.replicas <= above.replicas * fanout,
                "{} feeds {} with {} relays",
                above.name,
                below.replicas,
                above.replicas
            );
        }
        let edge = tiers.last().unwrap();
        assert_eq!(edge.kind, TierKind::Edge);
        assert!(edge.name.ends_with("-edge"));
    }
    assert!(origin_children <= fanout, "origin feeds {origin_children}");
    let us_edges = tree
        .region_tiers("us-east")
        .find(|t| t.kind == TierKind::Edge)
        .unwrap()
        .replicas;
    assert_eq!(us_edges, 24);
    let ap_edges = tree
        .region_tiers("ap-south")
        .find(|t| t.kind == TierKind::Edge)
        .unwrap()
        .replicas;
    assert_eq!(ap_edges, 20, "capped at maxEdges");
}

#[test]
fn reflector_levels_are_named_and_pinned_to_the_region() {
    let stream = load("examples/stream.yaml");
    let tree = tree_with(&stream, 40_000);
    for t in tree.tiers.iter() {
        if let TierKind::Reflector(level) = t.kind {
            assert_eq!(t.name, format!("final-{}-reflector-{level}", t.region));
            assert_eq!(t.node_selector["topology.kubernetes.io/region"], t.region);
        }
    }
}

/// Behind reflectors a child chooses its parent by room (README, "Placement"): it polls the
/// tier above (`--parent-peer`) and its siblings (`--sibling-peer`), both headless Services
/// over every relay of that tier, and takes at most `fanout` children per parent. A tier fed by
/// the origin (one relay) has nothing to choose.
#[test]
fn children_of_reflectors_choose_their_parent_by_room() {
    let stream = load("examples/stream.yaml");
    let plan = plan_with(&stream, 40_000, 1);
    let cfg = OperatorConfig::default();
    let tree = plan_tiers("final", &stream.spec, &plan, &cfg);
    let fanout = stream.spec.tree.fanout;
    for region in ["us-east", "eu-west", "ap-south"] {
        let tiers: Vec<_> = tree.region_tiers(region).collect();
        assert!(
            tiers[0].parents.is_none(),
            "the top level is fed by the origin"
        );
        for pair in tiers.windows(2) {
            let (above, below) = (pair[0], pair[1]);
            let choice = below
                .parents
                .as_ref()
                .expect("a tier under reflectors chooses");
            assert_eq!(choice.fanout, fanout);
            let parents = tree
                .peers_services
                .iter()
                .find(|p| p.name == choice.parents)
                .expect("the parents' headless Service is planned");
            assert_eq!(
                (parents.region.as_str(), parents.kind),
                (region, above.kind)
            );
            let siblings = tree
                .peers_services
                .iter()
                .find(|p| p.name == choice.siblings)
                .expect("the siblings' headless Service is planned");
            assert_eq!(siblings.kind, below.kind);
        }
    }
    let names: Vec<_> = tree.peers_services.iter().map(|p| &p.name).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        names.len(),
        unique.len(),
        "each headless Service once: {names:?}"
    );

    // The edge's arguments name those Services' admin ports in the Stream's namespace.
    let edge = tree.region_tiers("eu-west").last().expect("edges").clone();
    let target = common::target(&stream);
    let args = surge_operator::build::relay_args(&target, &stream.spec, &edge, &cfg).join(" ");
    let choice = edge.parents.expect("edges under reflectors choose");
    let host = |svc: &str| {
        format!(
            "{svc}.{}.svc.{}:{}",
            target.namespace, cfg.cluster_domain, cfg.relay_admin_port
        )
    };
    assert!(
        args.contains(&format!("--parent-peer {}", host(&choice.parents))),
        "{args}"
    );
    assert!(
        args.contains(&format!("--sibling-peer {}", host(&choice.siblings))),
        "{args}"
    );
    assert!(
        args.contains(&format!("--parent-fanout {fanout}")),
        "{args}"
    );

    // A Stream whose maxEdges the origin feeds by itself lays out no reflector level:
    // nothing chooses and no headless Service is planned (service exposure).
    let mut small = stream.clone();
    for region in &mut small.spec.regions {
        region.max_edges = 2;
    }
    let tree = tree_with(&small, 1000);
    assert!(
        tree.tiers
            .iter()
            .all(|t| t.parents.is_none() && !matches!(t.kind, TierKind::Reflector(_)))
    );
    assert!(tree.peers_services.is_empty());
}
