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
    assert!(
        tree.tiers
            .iter()
            .all(|t| !matches!(t.kind, TierKind::Reflector(_)))
    );
    for t in tree.tiers.iter().filter(|t| t.kind == TierKind::Edge) {
        assert_eq!(t.upstreams, ["final-origin"]);
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
        origin_children += top.replicas;
        for pair in tiers.windows(2) {
            let (above, below) = (pair[0], pair[1]);
            assert_eq!(
                below.upstreams,
                [above.name.clone(), "final-origin".to_string()]
            );
            // No relay feeds more than `fanout` children.
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
