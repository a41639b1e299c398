//! Status computation: conditions, tiers, viewers, endpoints and the printer-column fields.

mod common;

use std::collections::BTreeMap;

use common::{fixture, load, plan_with};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use surge_operator::config::OperatorConfig;
use surge_operator::crd::{Stream, StreamStatus};
use surge_operator::observe::{DeploymentCounts, Observation};
use surge_operator::sizing::StreamPlan;
use surge_operator::status::{StatusInput, compute_status};
use surge_operator::tree::{TreePlan, plan_tiers};
use surge_operator::validate::validate;

struct Case {
    stream: Stream,
    plan: StreamPlan,
    tree: TreePlan,
    cfg: OperatorConfig,
}

fn case(viewers: u64) -> Case {
    let stream = load("examples/stream.yaml");
    let plan = plan_with(&stream, viewers, 1);
    let cfg = OperatorConfig::default();
    let tree = plan_tiers("final", &stream.spec, &plan, &cfg);
    Case {
        stream,
        plan,
        tree,
        cfg,
    }
}

fn all_ready(tree: &TreePlan) -> BTreeMap<String, DeploymentCounts> {
    tree.tiers
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                DeploymentCounts {
                    desired: t.replicas,
                    ready: t.replicas,
                },
            )
        })
        .collect()
}

fn status(
    c: &Case,
    deployments: &BTreeMap<String, DeploymentCounts>,
    obs: &Observation,
    prev: Option<&StreamStatus>,
    now: Timestamp,
) -> StreamStatus {
    status_applied(c, deployments, obs, prev, now, None)
}

/// As `status`, with `apply_error` saying which objects the API server refused.
fn status_applied(
    c: &Case,
    deployments: &BTreeMap<String, DeploymentCounts>,
    obs: &Observation,
    prev: Option<&StreamStatus>,
    now: Timestamp,
    apply_error: Option<&str>,
) -> StreamStatus {
    compute_status(&StatusInput {
        stream: "final",
        namespace: "default",
        generation: Some(4),
        spec: &c.stream.spec,
        tree: Some(&c.tree),
        plan: Some(&c.plan),
        deployments,
        external_hosts: &BTreeMap::new(),
        observation: obs,
        validation_errors: &[],
        apply_error,
        previous: prev,
        now,
        cfg: &c.cfg,
    })
}

/// Status of the `invalid.yaml` fixture (no tree planned), with `apply_error` if given.
fn invalid_spec_status(apply_error: Option<&str>) -> StreamStatus {
    let stream = fixture("invalid.yaml");
    let errors = validate(&stream.name_any(), &stream.spec);
    compute_status(&StatusInput {
        stream: "x",
        namespace: "default",
        generation: Some(1),
        spec: &stream.spec,
        tree: None,
        plan: None,
        deployments: &BTreeMap::new(),
        external_hosts: &BTreeMap::new(),
        observation: &Observation::default(),
        validation_errors: &errors,
        apply_error,
        previous: None,
        now: Timestamp::now(),
        cfg: &OperatorConfig::default(),
    })
}

fn cond<'a>(s: &'a StreamStatus, t: &str) -> (&'a str, &'a str) {
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .expect("condition present");
    (c.status.as_str(), c.reason.as_str())
}

#[test]
fn all_tiers_ready_means_ready_and_converged() {
    let c = case(0);
    let d = all_ready(&c.tree);
    let obs = Observation {
        region_viewers: BTreeMap::from([
            ("us-east".to_string(), Some(120)),
            ("eu-west".to_string(), Some(30)),
            ("ap-south".to_string(), None),
        ]),
        ..Observation::default()
    };
    let s = status(&c, &d, &obs, None, Timestamp::now());
    assert_eq!(cond(&s, "Ready"), ("True", "TreeReady"));
    assert_eq!(cond(&s, "Progressing"), ("False", "Converged"));
    assert_eq!(cond(&s, "Degraded"), ("False", "AsExpected"));
    assert_eq!(cond(&s, "FlashCrowd"), ("False", "NormalGrowth"));
    assert_eq!(s.observed_generation, Some(4));
    assert_eq!(s.viewers.total, 150);
    assert_eq!(s.viewers.regions["ap-south"], 0);
    assert_eq!(s.edges, "4/4");
    assert_eq!(s.regions.len(), 3);
    assert_eq!(s.regions[0].tiers[0].tier, "edge");
    assert_eq!(s.regions[0].tiers[0].desired, 2);
    assert_eq!(s.origin.as_ref().unwrap().ready, 1);
    assert_eq!(
        s.endpoints.ingest,
        "rtmp://final-origin.default.svc.cluster.local:1935/live/final"
    );
    let eu = s
        .endpoints
        .playback
        .iter()
        .find(|p| p.region == "eu-west")
        .unwrap();
    assert_eq!(
        eu.http_flv,
        "http://final-eu-west-edge.default.svc.cluster.local:8080/live/final.flv"
    );
    // Behind Services (the default exposure) the relays are not locators.
    assert_eq!(eu.locate, None);
}

#[test]
fn a_tier_without_ready_relays_is_not_ready_and_progressing() {
    let c = case(0);
    let mut d = all_ready(&c.tree);
    d.get_mut("final-ap-south-edge").unwrap().ready = 0;
    let s = status(&c, &d, &Observation::default(), None, Timestamp::now());
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("final-ap-south-edge"),
        "{}",
        ready.message
    );
    assert_eq!(cond(&s, "Progressing"), ("True", "Scaling"));
    assert_eq!(s.edges, "3/4");
}

#[test]
fn unreachable_relays_degrade_but_keep_ready() {
    let c = case(0);
    let d = all_ready(&c.tree);
    let obs = Observation {
        unreachable: vec![("final-eu-west-edge-abc".into(), "connection refused".into())],
        ..Observation::default()
    };
    let s = status(&c, &d, &obs, None, Timestamp::now());
    assert_eq!(cond(&s, "Degraded"), ("True", "RelaysUnreachable"));
    let msg = &s
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap()
        .message;
    assert!(msg.contains("final-eu-west-edge-abc"));
    assert_eq!(cond(&s, "Ready"), ("True", "TreeReady"));
}

fn message<'a>(s: &'a StreamStatus, t: &str) -> &'a str {
    &s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .expect("condition present")
        .message
}

#[test]
fn a_refused_apply_is_not_ready_even_with_every_tier_ready() {
    let c = case(0);
    let d = all_ready(&c.tree);
    let refused = "Service final-eu-west-edge: ApiError: services \"final-eu-west-edge\" is \
                   forbidden: exceeded quota: q, requested: count/services=1";
    let s = status_applied(
        &c,
        &d,
        &Observation::default(),
        None,
        Timestamp::now(),
        Some(refused),
    );
    assert_eq!(cond(&s, "Ready"), ("False", "ApplyFailed"));
    let msg = message(&s, "Ready");
    assert!(msg.contains("not fully in place"), "{msg}");
    assert!(msg.contains(refused), "{msg}");
    assert_eq!(cond(&s, "Degraded"), ("True", "ApplyFailed"));
    assert_eq!(message(&s, "Degraded"), refused);
    // The tiers themselves are still reported as they are.
    assert_eq!(s.edges, "4/4");

    // Once the apply succeeds, Ready is True again and its transition time moves.
    let later = Timestamp::now() + SignedDuration::from_secs(30);
    let ok = status(&c, &d, &Observation::default(), Some(&s), later);
    assert_eq!(cond(&ok, "Ready"), ("True", "TreeReady"));
    assert_eq!(cond(&ok, "Degraded"), ("False", "AsExpected"));
    let ready = ok.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.last_transition_time.0, later);
}

#[test]
fn a_refused_apply_outranks_tiers_not_ready_but_not_an_invalid_spec() {
    let c = case(0);
    let mut d = all_ready(&c.tree);
    d.get_mut("final-origin").unwrap().ready = 0;
    let s = status_applied(
        &c,
        &d,
        &Observation::default(),
        None,
        Timestamp::now(),
        Some("Deployment final-origin: refused"),
    );
    assert_eq!(cond(&s, "Ready"), ("False", "ApplyFailed"));
    assert!(message(&s, "Ready").contains("Deployment final-origin: refused"));

    let s = invalid_spec_status(Some("Service x-origin: refused"));
    assert_eq!(cond(&s, "Ready"), ("False", "InvalidSpec"));
    assert_eq!(cond(&s, "Degraded"), ("True", "InvalidSpec"));
}

#[test]
fn transition_time_only_moves_when_a_condition_flips() {
    let c = case(0);
    let d = all_ready(&c.tree);
    let t0 = Timestamp::now();
    let first = status(&c, &d, &Observation::default(), None, t0);
    let later = t0 + SignedDuration::from_secs(60);
    let second = status(&c, &d, &Observation::default(), Some(&first), later);
    assert_eq!(
        first.conditions, second.conditions,
        "nothing changed, nothing moves"
    );
    let mut d2 = d.clone();
    d2.get_mut("final-origin").unwrap().ready = 0;
    let third = status(&c, &d2, &Observation::default(), Some(&second), later);
    let ready = third
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.last_transition_time.0, later);
}

#[test]
fn flash_crowd_shows_in_conditions_and_growth() {
    let stream = load("examples/stream.yaml");
    // Steep growth: 0 -> 12,000 viewers in two minutes in us-east.
    let inputs = vec![surge_planner::RegionInput {
        name: "us-east".into(),
        samples: (0..=24)
            .map(|i| surge_planner::ViewerSample {
                t_s: f64::from(i) * 5.0,
                viewers: 500 * i as u64,
            })
            .collect(),
        edges: surge_planner::TierCount {
            relays: 2,
            ready: 2,
        },
        ..Default::default()
    }];
    let plan = surge_operator::sizing::plan_stream(
        &stream.spec,
        &inputs,
        120.0,
        None,
        &Default::default(),
    )
    .unwrap();
    assert!(plan.flash_crowd);
    let cfg = OperatorConfig::default();
    let tree = plan_tiers("final", &stream.spec, &plan, &cfg);
    let c = Case {
        stream,
        plan,
        tree,
        cfg,
    };
    let d = all_ready(&c.tree);
    let s = status(&c, &d, &Observation::default(), None, Timestamp::now());
    assert_eq!(cond(&s, "FlashCrowd").0, "True");
    assert!(s.growth_per_minute > 5000.0, "{}", s.growth_per_minute);
    assert!(s.forecast_viewers > 12_000);
}

#[test]
fn invalid_spec_is_not_ready_and_degraded_naming_the_field() {
    let s = invalid_spec_status(None);
    assert_eq!(cond(&s, "Ready"), ("False", "InvalidSpec"));
    assert_eq!(cond(&s, "Degraded"), ("True", "InvalidSpec"));
    let msg = &s.conditions[0].message;
    assert!(msg.contains("spec.tree.fanout"), "{msg}");
}
