//! From pods, scrapes and Deployments to planner inputs, unreachable relays and deletion costs.

use std::collections::BTreeMap;

use surge_operator::labels::TierKind;
use surge_operator::observe::{
    DeploymentCounts, PodView, deletion_costs, observe, relay_ready_seconds,
};

fn pod(name: &str, tier: TierKind, region: &str, ip: Option<&str>) -> PodView {
    PodView {
        name: name.into(),
        tier,
        region: region.into(),
        ip: ip.map(str::to_string),
        ready: true,
        ready_after_seconds: Some(10.0),
        deletion_cost: None,
        terminating: false,
        node: None,
        advertise_host: None,
    }
}

#[test]
fn viewers_come_from_edges_only_and_failures_are_listed() {
    let pods = vec![
        pod("o", TierKind::Origin, "us", Some("127.10.0.2")),
        pod("e1", TierKind::Edge, "us", Some("127.10.0.3")),
        pod("e2", TierKind::Edge, "us", Some("127.10.0.4")),
        pod("r1", TierKind::Reflector(1), "us", Some("127.10.0.5")),
        pod("e3", TierKind::Edge, "eu", Some("127.10.1.2")),
    ];
    let scrapes = BTreeMap::from([
        ("o".to_string(), Ok(3)),
        ("e1".to_string(), Ok(100)),
        ("e2".to_string(), Ok(50)),
        ("r1".to_string(), Ok(2)),
        ("e3".to_string(), Err("connection refused".to_string())),
    ]);
    let deployments = BTreeMap::from([
        (
            ("us".to_string(), TierKind::Edge),
            DeploymentCounts {
                desired: 2,
                ready: 2,
            },
        ),
        (
            ("us".to_string(), TierKind::Reflector(1)),
            DeploymentCounts {
                desired: 1,
                ready: 0,
            },
        ),
        (
            ("eu".to_string(), TierKind::Edge),
            DeploymentCounts {
                desired: 1,
                ready: 1,
            },
        ),
    ]);
    let obs = observe(
        &["us".into(), "eu".into()],
        &pods,
        &scrapes,
        &BTreeMap::new(),
        &deployments,
    );
    assert_eq!(obs.region_viewers["us"], Some(150));
    assert_eq!(
        obs.region_viewers["eu"], None,
        "no edge answered: no sample"
    );
    assert_eq!(obs.total_viewers(), 150);
    assert_eq!(
        obs.unreachable,
        vec![("e3".to_string(), "connection refused".to_string())]
    );
    let us = &obs.regions["us"];
    assert_eq!(us.edges.relays, 2);
    assert_eq!(us.reflectors.len(), 1);
    assert_eq!(us.reflectors[0].ready, 0);
    assert_eq!(us.relays.len(), 3, "edges and reflectors, not the origin");
}

#[test]
fn deletion_costs_follow_the_removal_order_and_skip_unchanged() {
    let mut pods = vec![
        pod("a", TierKind::Edge, "us", None),
        pod("b", TierKind::Edge, "us", None),
    ];
    pods[1].deletion_cost = Some("1".into());
    let order = vec!["a".to_string(), "b".to_string()];
    assert_eq!(
        deletion_costs(&order, &pods),
        vec![("a".to_string(), "0".to_string())]
    );
}

#[test]
fn relay_ready_time_is_the_median() {
    let mut pods = vec![
        pod("a", TierKind::Edge, "us", None),
        pod("b", TierKind::Edge, "us", None),
        pod("c", TierKind::Edge, "us", None),
    ];
    pods[0].ready_after_seconds = Some(4.0);
    pods[1].ready_after_seconds = Some(30.0);
    pods[2].ready_after_seconds = None;
    assert_eq!(relay_ready_seconds(&pods), Some(30.0));
    assert_eq!(relay_ready_seconds(&[]), None);
}
