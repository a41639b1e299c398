//! Shared helpers for the operator's pure-core tests: fixtures are Stream YAML files.
#![allow(dead_code)]

pub mod local_api;
pub mod publisher;
pub mod world;

use std::path::PathBuf;

use kube::{Resource, ResourceExt};
use surge_operator::build::Target;
use surge_operator::config::OperatorConfig;
use surge_operator::crd::Stream;
use surge_operator::sizing::{StreamPlan, plan_stream};
use surge_operator::tree::{TreePlan, plan_tiers};
use surge_planner::{PlannerState, RegionInput, TierCount, ViewerSample};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn load(path: &str) -> Stream {
    let text = std::fs::read_to_string(repo_root().join(path)).expect("fixture readable");
    serde_saphyr::from_str(&text).expect("fixture parses as a Stream")
}

pub fn fixture(name: &str) -> Stream {
    load(&format!("operator/tests/fixtures/{name}"))
}

pub fn target(stream: &Stream) -> Target {
    let mut s = stream.clone();
    if s.meta().uid.is_none() {
        s.meta_mut().uid = Some("00000000-0000-0000-0000-000000000001".into());
    }
    Target {
        stream: s.name_any(),
        namespace: s.namespace().unwrap_or_else(|| "default".into()),
        app: s.spec.app.clone(),
        owner: s.controller_owner_ref(&()).expect("owner ref"),
    }
}

/// Plan with steady `viewers` per region (same for every region), edges as given.
pub fn plan_with(stream: &Stream, viewers: u64, edges: u32) -> StreamPlan {
    let inputs: Vec<RegionInput> = stream
        .spec
        .regions
        .iter()
        .map(|r| RegionInput {
            name: r.name.clone(),
            samples: (0..=24)
                .map(|i| ViewerSample {
                    t_s: f64::from(i) * 5.0,
                    viewers,
                })
                .collect(),
            edges: TierCount {
                relays: edges,
                ready: edges,
            },
            ..RegionInput::default()
        })
        .collect();
    plan_stream(&stream.spec, &inputs, 120.0, None, &PlannerState::default()).expect("plan")
}

pub fn tree_with(stream: &Stream, viewers: u64) -> TreePlan {
    let plan = plan_with(stream, viewers, 1);
    plan_tiers(
        &stream.name_any(),
        &stream.spec,
        &plan,
        &OperatorConfig::default(),
    )
}
