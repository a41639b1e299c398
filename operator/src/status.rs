//! Status computation: from what was planned and observed to the Stream's `status`. Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::build::service_host;
use crate::config::OperatorConfig;
use crate::crd::{
    Endpoints, Exposure, PlaybackEndpoint, RegionStatus, StreamSpec, StreamStatus, TierStatus,
    ViewerCounts,
};
use crate::labels::TierKind;
use crate::observe::{DeploymentCounts, Observation};
use crate::sizing::StreamPlan;
use crate::tree::{TierPlan, TreePlan};
use crate::validate::{FieldError, summary};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const FLASH_CROWD: &str = "FlashCrowd";
/// `Degraded`'s reason while relays report signed frames failing verification.
pub const INTEGRITY_FAILURE: &str = "IntegrityFailure";
/// True while relays pull from another external upstream than the first of `spec.upstream`.
pub const UPSTREAM_FAILOVER: &str = "UpstreamFailover";

/// Everything status is computed from.
pub struct StatusInput<'a> {
    pub stream: &'a str,
    pub namespace: &'a str,
    pub generation: Option<i64>,
    pub spec: &'a StreamSpec,
    /// `None` when the spec is invalid and nothing was built.
    pub tree: Option<&'a TreePlan>,
    pub plan: Option<&'a StreamPlan>,
    /// Observed Deployments by name.
    pub deployments: &'a BTreeMap<String, DeploymentCounts>,
    /// External addresses of the Stream's Services by name (a LoadBalancer's ingress), used in
    /// the endpoints instead of the in-cluster name.
    pub external_hosts: &'a BTreeMap<String, String>,
    pub observation: &'a Observation,
    pub validation_errors: &'a [FieldError],
    /// Why applying the desired objects failed, if it did.
    pub apply_error: Option<&'a str>,
    pub previous: Option<&'a StreamStatus>,
    pub now: Timestamp,
    pub cfg: &'a OperatorConfig,
}

fn tier_status(tier: &TierPlan, deployments: &BTreeMap<String, DeploymentCounts>) -> TierStatus {
    TierStatus {
        tier: tier.kind.tier_name().to_string(),
        level: tier.kind.level(),
        deployment: tier.name.clone(),
        desired: tier.replicas,
        ready: deployments.get(&tier.name).map(|d| d.ready).unwrap_or(0),
    }
}

fn round1(x: f64) -> f64 {
    if x.is_finite() {
        (x * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// A condition, keeping the previous transition time when its status did not change.
fn condition(
    previous: Option<&StreamStatus>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Computes the full status.
pub fn compute_status(input: &StatusInput<'_>) -> StreamStatus {
    let prev = input.previous;
    let cond = |t: &str, s: bool, r: &str, m: String| {
        condition(prev, t, s, r, m, input.generation, input.now)
    };

    let mut status = StreamStatus {
        observed_generation: input.generation,
        ..StreamStatus::default()
    };

    // Viewers and forecasts.
    let mut regions_viewers = BTreeMap::new();
    for region in &input.spec.regions {
        let v = input
            .observation
            .region_viewers
            .get(&region.name)
            .copied()
            .flatten()
            .unwrap_or(0);
        regions_viewers.insert(region.name.clone(), v);
    }
    status.viewers = ViewerCounts {
        total: regions_viewers.values().sum(),
        regions: regions_viewers.clone(),
    };
    if let Some(plan) = input.plan {
        status.growth_per_minute = round1(plan.regions.iter().map(|r| r.growth_per_minute).sum());
        status.forecast_viewers = plan
            .regions
            .iter()
            .map(|r| r.forecast_viewers.max(0.0).round() as u64)
            .sum();
    }

    // Tiers.
    let mut not_ready = Vec::new();
    let mut not_converged = Vec::new();
    if let Some(tree) = input.tree {
        // No origin with external upstreams (spec.upstream).
        status.origin = tree.origin().map(|o| tier_status(o, input.deployments));
        let mut all: Vec<TierStatus> = status.origin.iter().cloned().collect();
        let (mut edges_ready, mut edges_desired) = (0, 0);
        for region in &input.spec.regions {
            // A reflector level laid out for maxEdges that runs no relay now is left out.
            let tiers: Vec<TierStatus> = tree
                .region_tiers(&region.name)
                .map(|t| tier_status(t, input.deployments))
                .filter(|t| t.tier == TierKind::Edge.tier_name() || t.desired > 0 || t.ready > 0)
                .collect();
            for t in tiers
                .iter()
                .filter(|t| t.tier == TierKind::Edge.tier_name())
            {
                edges_ready += t.ready.min(t.desired);
                edges_desired += t.desired;
            }
            all.extend(tiers.iter().cloned());
            status.regions.push(RegionStatus {
                name: region.name.clone(),
                viewers: regions_viewers.get(&region.name).copied().unwrap_or(0),
                forecast_viewers: input
                    .plan
                    .and_then(|p| p.region(&region.name))
                    .map(|r| r.forecast_viewers.max(0.0).round() as u64)
                    .unwrap_or(0),
                tiers,
            });
        }
        status.edges = format!("{edges_ready}/{edges_desired}");
        for t in &all {
            // A reflector level the plan does not use now (0 desired) is passed over, not
            // missing.
            if t.desired > 0 && t.ready < 1 {
                not_ready.push(t.deployment.clone());
            }
            if t.ready != t.desired {
                not_converged.push(format!("{} {}/{}", t.deployment, t.ready, t.desired));
            }
        }
        status.endpoints = endpoints(input, tree);
    }

    // Conditions.
    let invalid = !input.validation_errors.is_empty();
    status.conditions.push(if invalid {
        cond(
            READY,
            false,
            "InvalidSpec",
            summary(input.validation_errors),
        )
    } else if input.tree.is_none() {
        cond(
            READY,
            false,
            "NotPlanned",
            "the relay tree has not been planned yet".into(),
        )
    } else if let Some(e) = input.apply_error {
        // Relays may be Ready, but without the Services (or current Deployments) they are
        // not reachable as planned.
        cond(
            READY,
            false,
            "ApplyFailed",
            format!("the planned relay tree is not fully in place: {e}"),
        )
    } else if not_ready.is_empty() {
        cond(
            READY,
            true,
            "TreeReady",
            format!("every tier has a Ready relay; edges {} ready", status.edges),
        )
    } else {
        cond(
            READY,
            false,
            "TiersNotReady",
            format!("no Ready relay yet in: {}", not_ready.join(", ")),
        )
    });
    status.conditions.push(if invalid {
        cond(
            PROGRESSING,
            false,
            "InvalidSpec",
            "fix the spec to continue".into(),
        )
    } else if not_converged.is_empty() {
        cond(
            PROGRESSING,
            false,
            "Converged",
            "every tier has its desired relays Ready".into(),
        )
    } else {
        cond(
            PROGRESSING,
            true,
            "Scaling",
            format!(
                "waiting for relays (ready/desired): {}",
                not_converged.join(", ")
            ),
        )
    });
    let unreachable = &input.observation.unreachable;
    status.conditions.push(if invalid {
        cond(
            DEGRADED,
            true,
            "InvalidSpec",
            summary(input.validation_errors),
        )
    } else if let Some(e) = input.apply_error {
        cond(DEGRADED, true, "ApplyFailed", e.to_string())
    } else if !unreachable.is_empty() {
        let shown: Vec<String> = unreachable
            .iter()
            .take(5)
            .map(|(pod, why)| format!("{pod} ({why})"))
            .collect();
        let more = unreachable.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        cond(
            DEGRADED,
            true,
            "RelaysUnreachable",
            format!(
                "{} relay(s) did not answer {}: {}{tail}",
                unreachable.len(),
                "/api/v1/streams",
                shown.join(", ")
            ),
        )
    } else {
        cond(DEGRADED, false, "AsExpected", "every relay answered".into())
    });
    status.conditions.push(match input.plan {
        Some(plan) if plan.flash_crowd => cond(
            FLASH_CROWD,
            true,
            "GrowthAboveThreshold",
            plan.flash_crowd_reason.clone().unwrap_or_default(),
        ),
        _ => cond(FLASH_CROWD, false, "NormalGrowth", "no flash crowd".into()),
    });
    status
}

fn endpoints(input: &StatusInput<'_>, tree: &TreePlan) -> Endpoints {
    let cfg = input.cfg;
    let app = &input.spec.app;
    let stream = input.stream;
    // A Service's load-balancer address when it has one, else its in-cluster name.
    let host = |svc: &str| {
        input
            .external_hosts
            .get(svc)
            .cloned()
            .unwrap_or_else(|| service_host(svc, input.namespace, &cfg.cluster_domain))
    };
    let locators = input.spec.placement.exposure == Exposure::HostPort;
    Endpoints {
        // Nothing to publish to here with external upstreams: the broadcaster publishes to
        // the origin outside this cluster.
        ingest: tree
            .origin()
            .map(|origin| {
                format!(
                    "rtmp://{}:{}/{app}/{stream}",
                    host(&origin.name),
                    cfg.relay_rtmp_port
                )
            })
            .unwrap_or_default(),
        playback: tree
            .tiers
            .iter()
            .filter(|t| t.kind == TierKind::Edge)
            .map(|t| {
                let host = host(&t.name);
                PlaybackEndpoint {
                    region: t.region.clone(),
                    rtmp: format!("rtmp://{host}:{}/{app}/{stream}", cfg.relay_rtmp_port),
                    http_flv: format!("http://{host}:{}/{app}/{stream}.flv", cfg.relay_http_port),
                    // Every edge is a locator only when edges place viewers (hostPort).
                    locate: locators.then(|| {
                        format!(
                            "http://{host}:{}/api/v1/locate?app={app}&stream={stream}",
                            cfg.relay_http_port
                        )
                    }),
                }
            })
            .collect(),
    }
}

/// Adds signed frames to a computed status: `status.integrity` (the public key viewers check
/// against) and, while relays report recent verification failures, `Degraded` with reason
/// `IntegrityFailure` naming each failing relay and its upstream. Refused objects
/// (`ApplyFailed`) still come first; unanswered scrapes come after.
pub fn add_integrity(
    status: &mut StreamStatus,
    keys: Option<&crate::integrity::Keys>,
    hops: &[crate::integrity::FailingHop],
    previous: Option<&StreamStatus>,
    now: Timestamp,
) {
    status.integrity = keys.map(crate::integrity::status);
    if hops.is_empty() {
        return;
    }
    let generation = status.observed_generation;
    let Some(degraded) = status.conditions.iter_mut().find(|c| c.type_ == DEGRADED) else {
        return;
    };
    if degraded.status == "True" && degraded.reason != "RelaysUnreachable" {
        return;
    }
    *degraded = condition(
        previous,
        DEGRADED,
        true,
        INTEGRITY_FAILURE,
        crate::integrity::degraded_message(hops),
        generation,
        now,
    );
}

/// Adds external upstreams to a computed status (only with `spec.upstream`):
/// `status.upstream`, the relays connected to each (`connected`: relay name → the upstream
/// it pulls from now), and the `UpstreamFailover` condition.
pub fn add_upstream(
    status: &mut StreamStatus,
    spec: &StreamSpec,
    connected: &BTreeMap<String, String>,
    previous: Option<&StreamStatus>,
    now: Timestamp,
) {
    if !spec.has_external_upstreams() {
        return;
    }
    let upstream = crate::upstream::status(&crate::upstream::configured(spec), connected);
    let (on, reason, message) = crate::upstream::failover(&upstream);
    let generation = status.observed_generation;
    status.conditions.push(condition(
        previous,
        UPSTREAM_FAILOVER,
        on,
        reason,
        message,
        generation,
        now,
    ));
    status.upstream = Some(upstream);
}
