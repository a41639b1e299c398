//! What one reconcile decides, as pure functions: from the Stream, what was observed of its
//! children, a clock and what the operator remembers of the Stream, to the plan, the desired
//! objects, the events, the next memory and the status. No client, no async, no metrics: the
//! driver (reconcile.rs) does the IO around it, in order: gather (list, scrape) → [`decide`] →
//! apply → [`Planned::settle`] (with what applying did) → report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use surge_planner::{HpaSettings, HpaState, PlannerState};

use crate::advertise::advertise_hosts;
use crate::build::integrity::{build_verify_keys, with_integrity};
use crate::build::pdb::build_pdb;
use crate::build::service_settings::{settings_errors, with_service_settings};
use crate::build::{Target, build_deployment, build_peers_service, build_service};
use crate::config::OperatorConfig;
use crate::crd::{Exposure, Stream, StreamSpec, StreamStatus, UpstreamStatus};
use crate::image_policy::image_error;
use crate::integrity::{FailingHop, Keys};
use crate::labels::TierKind;
use crate::lost_viewers::{LostViewers, RelaySeen};
use crate::observe::{
    DeploymentCounts, Observation, Observed, deletion_costs, observe, relay_ready_seconds,
};
use crate::policy::apply_policy;
use crate::quality::edge_loads;
use crate::ready_timer::ReadyTimer;
use crate::sizing::{SampleHistory, StreamPlan, history_window_seconds, plan_stream_at};
use crate::status::{StatusInput, compute_status};
use crate::tree::{TreePlan, plan_tiers};
use crate::validate::{FieldError, summary, validate};

/// What the operator remembers about one Stream between reconciles (in memory; losing it is
/// safe: the planner then holds off scale-downs for one stabilisation window).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamMemory {
    /// Viewer samples per region (the planner itself keeps no history).
    pub history: SampleHistory,
    pub planner: PlannerState,
    /// The HPA's recommendations and last sync (`--policy hpa` only).
    pub hpa: HpaState,
    /// Whether the last settled reconcile saw a flash crowd (an event marks each change).
    pub flash_crowd: bool,
    /// Why the Stream was degraded at the last settled reconcile (an event marks the start).
    pub degraded_reason: Option<String>,
    /// The last invalid spec's summary (an event marks each new one).
    pub invalid: Option<String>,
    /// (relay, upstream) of the hops failing verification at the last settled reconcile (an
    /// IntegrityFailure event marks each new set).
    pub integrity_hops: Vec<(String, String)>,
    /// The indices into `spec.upstream` relays were last seen connected to (an
    /// UpstreamFailover or UpstreamRestored event marks each change).
    pub upstreams_in_use: Option<Vec<usize>>,
    /// Asked-for -> Ready times of the edges' raises: the planner's relay-ready time.
    pub ready_timer: ReadyTimer,
    /// Regions' counts held while a lost edge's viewers reconnect elsewhere.
    pub lost_viewers: LostViewers,
}

fn hop_keys(hops: &[FailingHop]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = hops
        .iter()
        .map(|h| (h.relay.clone(), h.upstream.clone()))
        .collect();
    keys.sort();
    keys
}

/// The two clocks a reconcile reads.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Seconds on the operator's monotonic clock: the planner's time axis.
    pub seconds: f64,
    /// Wall-clock time, for the conditions' transition times.
    pub now: Timestamp,
}

/// One Kubernetes Event to record on the Stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub note: String,
}

impl Note {
    fn normal(reason: &'static str, note: String) -> Note {
        Note {
            type_: EventType::Normal,
            reason,
            note,
        }
    }

    fn warning(reason: &'static str, note: String) -> Note {
        Note {
            type_: EventType::Warning,
            reason,
            note,
        }
    }
}

/// What `decide` reads.
pub struct Input<'a> {
    pub stream: &'a Stream,
    /// Where the children go and who owns them ([`target`]).
    pub target: &'a Target,
    pub observed: &'a Observed,
    pub clock: Clock,
    pub cfg: &'a OperatorConfig,
}

/// Everything that keeps a Stream from being built: its own problems ([`validate`], and the
/// Service settings its Service types cannot take) and a `spec.relay.image` outside the
/// operator's `--allowed-relay-images`.
pub fn spec_errors(name: &str, spec: &StreamSpec, cfg: &OperatorConfig) -> Vec<FieldError> {
    let mut errors = validate(name, spec);
    errors.extend(settings_errors(spec));
    errors.extend(image_error(
        spec.relay.image.as_deref(),
        &cfg.allowed_relay_images,
    ));
    errors
}

/// Where a Stream's children go: `None` for a Stream without namespace or uid.
pub fn target(stream: &Stream) -> Option<Target> {
    Some(Target {
        stream: stream.name_any(),
        namespace: stream.namespace()?,
        app: stream.spec.app.clone(),
        owner: stream.controller_owner_ref(&())?,
    })
}

/// The end of a reconcile, for the driver to report: events, memory, status, when to come back.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// In the order they are recorded.
    pub events: Vec<Note>,
    pub memory: StreamMemory,
    /// The status to write; `None` when there is nothing new to say (the planner refused).
    pub status: Option<StreamStatus>,
    /// Whether `/metrics` shows this status's relays and viewers (a planned tree).
    pub gauges: bool,
    pub requeue_after: Duration,
}

/// The decision of one reconcile.
#[derive(Debug)]
pub enum Decision {
    /// Nothing to apply (an invalid spec, or the planner refused): report this.
    Done(Outcome),
    /// A tree to apply; then [`Planned::settle`] with what applying did.
    Apply(Planned),
}

/// A planned tree: what to apply, what to remove, and what to say about it.
#[derive(Clone, Debug)]
pub struct Planned {
    pub plan: StreamPlan,
    pub tree: TreePlan,
    /// The ConfigMap of trusted public keys the pullers mount (applied before the tiers).
    pub verify_keys: Option<Box<ConfigMap>>,
    /// The signing keys (`None`: signing is off).
    pub keys: Option<Keys>,
    /// Relays whose upstream recently failed verification.
    pub failing_hops: Vec<FailingHop>,
    /// Per relay, the upstream it pulls from now (for `status.upstream`).
    pub connected: BTreeMap<String, String>,
    /// The desired objects, tier by tier (origin first): the tier's Service, then its Deployment.
    pub objects: Vec<(Service, Deployment)>,
    /// Per region, the headless Service the edges' locators watch (`hostPort` exposure only).
    pub peers_services: Vec<Service>,
    /// One PodDisruptionBudget per tier (same names as the Deployments).
    pub pdbs: Vec<PodDisruptionBudget>,
    /// Names of the tiers to keep: the Stream's other Deployments and Services are orphans.
    pub keep: BTreeSet<String>,
    /// `(pod, cost)` pod-deletion-cost annotations to set, so that a scale-down removes the
    /// least-loaded relays first.
    pub deletion_costs: Vec<(String, String)>,
    /// `(pod, host)` `surge.dev/advertise-host` annotations to set (`None`: remove), so that
    /// each `hostPort` edge advertises its node's external host.
    pub advertise_hosts: Vec<(String, Option<String>)>,
    /// ScaledUp / ScaledDown per tier, FlashCrowd / FlashCrowdOver on a change.
    pub events: Vec<Note>,
    /// The memory after planning (history and planner state), kept even if applying fails.
    pub memory: StreamMemory,
    pub observation: Observation,
    /// Observed replica counts by Deployment name.
    pub deployments: BTreeMap<String, DeploymentCounts>,
}

/// What applying a [`Planned`] tree did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Objects the API server refused, as `"<Kind> <name>: <why>"`, in apply order.
    pub refused: Vec<String>,
    /// Orphan Deployments deleted.
    pub removed_deployments: Vec<String>,
}

/// Decides one reconcile of `input.stream`, given what is remembered of it.
pub fn decide(input: &Input<'_>, memory: &StreamMemory) -> Decision {
    let (spec, cfg, observed) = (&input.stream.spec, input.cfg, input.observed);
    let name = &input.target.stream;
    let mut memory = memory.clone();
    let errors = spec_errors(name, spec, cfg);
    if !errors.is_empty() {
        return Decision::Done(invalid(input, &errors, memory));
    }
    // The signing key: a Secret that is missing or unreadable stops the Stream as a bad spec
    // does (nothing is built without the keys it would mount), naming the field.
    let keys = match crate::integrity::keys(name, spec, observed.signing_key.as_ref()) {
        Ok(keys) => keys,
        Err(e) => return Decision::Done(invalid(input, &[e], memory)),
    };
    memory.invalid = None;

    // Observation and history: the planner decides from the samples kept here.
    let region_names: Vec<String> = spec.regions.iter().map(|r| r.name.clone()).collect();
    let observation = observe(
        &region_names,
        &observed.pods,
        &observed.scrapes,
        &observed.overflow_viewers,
        &observed.counts_by_tier(),
    );
    let keep_seconds = history_window_seconds(spec);
    let names: Vec<&str> = region_names.iter().map(String::as_str).collect();
    memory.history.retain_regions(&names);
    memory.ready_timer.retain_regions(&names);
    memory.lost_viewers.retain_regions(&names);
    let relays_seen: Vec<RelaySeen<'_>> = observed
        .pods
        .iter()
        .map(|p| RelaySeen {
            name: &p.name,
            served: observation.served_by_relay.get(&p.name),
        })
        .collect();
    memory.lost_viewers.observe(
        input.clock.seconds,
        &relays_seen,
        &observation.region_viewers,
    );
    for (region, viewers) in &observation.region_viewers {
        let viewers = memory
            .lost_viewers
            .viewers(region, input.clock.seconds, *viewers);
        if let Some(v) = viewers {
            memory
                .history
                .record(region, input.clock.seconds, v, keep_seconds);
        }
    }
    // The edges' own load: the planner's second signal next to the viewer counts.
    let loads = edge_loads(&region_names, &observed.pods, &observed.rooms);
    let inputs: Vec<_> = observation
        .regions
        .values()
        .cloned()
        .map(|mut r| {
            r.samples = memory.history.samples(&r.name);
            r.edge_load = loads.get(&r.name).copied();
            r
        })
        .collect();
    let ready_s = crate::ready_timer::relay_ready_seconds(
        &memory.ready_timer,
        relay_ready_seconds(&observed.pods),
    );
    // The planner's clock counts from the operator's start; the schedule is in wall time.
    let unix_offset_s = input.clock.now.as_millisecond() as f64 / 1000.0 - input.clock.seconds;
    let mut plan = match plan_stream_at(
        spec,
        &inputs,
        input.clock.seconds,
        unix_offset_s,
        ready_s,
        &memory.planner,
    ) {
        Ok(p) => p,
        // The validator mirrors the planner's checks; this is a bug if it happens.
        Err(e) => {
            return Decision::Done(Outcome {
                events: vec![Note::warning("PlanFailed", e.to_string())],
                memory,
                status: None,
                gauges: false,
                requeue_after: cfg.scrape_interval,
            });
        }
    };
    memory.planner = plan.state.clone();
    // Another autoscaler than the planner replaces its edge counts (`--policy`).
    let now = input.clock.seconds;
    let hpa = HpaSettings::default();
    apply_policy(
        cfg.policy,
        spec,
        &inputs,
        now,
        &mut memory.hpa,
        &hpa,
        &mut plan,
    );
    for region in &plan.regions {
        if let Some(now_edges) = inputs.iter().find(|r| r.name == region.name) {
            memory.ready_timer.record(
                &region.name,
                now,
                now_edges.edges.relays,
                now_edges.edges.ready,
                region.desired_edges,
            );
        }
    }

    // The desired objects, and what to say about the change.
    let tree = plan_tiers(name, spec, &plan, cfg);
    let target = input.target;
    let objects = tree
        .tiers
        .iter()
        .map(|t| {
            (
                with_service_settings(
                    crate::build::tls::with_tls_port(build_service(target, t, cfg), spec, t),
                    spec,
                    t,
                ),
                with_integrity(
                    build_deployment(target, spec, t, cfg),
                    target,
                    t,
                    keys.as_ref(),
                ),
            )
        })
        .collect();
    let verify_keys = keys
        .as_ref()
        .map(|k| Box::new(build_verify_keys(target, k)));
    let peers_services = tree
        .peers_services
        .iter()
        .map(|p| build_peers_service(target, p, cfg))
        .collect();
    let pdbs = tree.tiers.iter().map(|t| build_pdb(target, t)).collect();
    let keep = tree
        .tiers
        .iter()
        .map(|t| t.name.clone())
        .chain(tree.peers_services.iter().map(|p| p.name.clone()))
        .collect();
    let failing_hops = crate::integrity::failing_hops(&observed.integrity);
    let deletion_costs = plan
        .regions
        .iter()
        .flat_map(|r| deletion_costs(&r.removal_order, &observed.pods))
        .collect();
    let advertise_hosts = if spec.placement.exposure == Exposure::HostPort {
        // Pods of the tiers on host ports: edges, and the tiers taking their overflow.
        let exposed: Vec<(&str, TierKind)> = tree
            .tiers
            .iter()
            .filter(|t| t.placement.as_ref().is_some_and(|p| p.host_ports.is_some()))
            .map(|t| (t.region.as_str(), t.kind))
            .collect();
        advertise_hosts(&observed.pods, &observed.nodes, |p| {
            exposed.contains(&(p.region.as_str(), p.tier))
        })
    } else {
        Vec::new()
    };
    let deployments = observed.counts_by_name();
    let mut events = scale_events(&tree, &plan, &deployments);
    events.extend(flash_crowd_event(&plan, memory.flash_crowd));
    Decision::Apply(Planned {
        plan,
        tree,
        verify_keys,
        keys,
        failing_hops,
        connected: observed.upstreams.clone(),
        objects,
        peers_services,
        pdbs,
        keep,
        deletion_costs,
        advertise_hosts,
        events,
        memory,
        observation,
        deployments,
    })
}

/// An invalid spec: nothing is built, the status names the fields, an event marks a new problem.
fn invalid(input: &Input<'_>, errors: &[FieldError], mut memory: StreamMemory) -> Outcome {
    let message = summary(errors);
    let mut events = Vec::new();
    if memory.invalid.as_deref() != Some(message.as_str()) {
        events.push(Note::warning("InvalidSpec", message.clone()));
    }
    memory.invalid = Some(message);
    let status = status(
        input,
        None,
        &BTreeMap::new(),
        &Observation::default(),
        errors,
        None,
    );
    Outcome {
        events,
        memory,
        status: Some(status),
        gauges: false,
        // Nothing changes until the spec does (which triggers a reconcile of its own).
        requeue_after: input.cfg.scrape_interval * 6,
    }
}

/// ScaledUp / ScaledDown for every existing tier whose replicas change.
fn scale_events(
    tree: &TreePlan,
    plan: &StreamPlan,
    deployments: &BTreeMap<String, DeploymentCounts>,
) -> Vec<Note> {
    tree.tiers
        .iter()
        .filter_map(|tier| {
            let before = deployments.get(&tier.name)?.desired;
            if before == tier.replicas {
                return None;
            }
            let why = plan
                .region(&tier.region)
                .map(|r| r.reason.clone())
                .unwrap_or_default();
            let reason = if tier.replicas > before {
                "ScaledUp"
            } else {
                "ScaledDown"
            };
            let note = format!(
                "{} {} {before} -> {}: {why}",
                tier.region, tier.kind, tier.replicas
            );
            Some(Note::normal(reason, note))
        })
        .collect()
}

/// FlashCrowd when the plan enters flash-crowd mode, FlashCrowdOver when it leaves it.
fn flash_crowd_event(plan: &StreamPlan, before: bool) -> Option<Note> {
    match (before, plan.flash_crowd) {
        (false, true) => Some(Note::warning(
            "FlashCrowd",
            plan.flash_crowd_reason.clone().unwrap_or_default(),
        )),
        (true, false) => Some(Note::normal(
            "FlashCrowdOver",
            "viewer growth is back below the thresholds".to_string(),
        )),
        _ => None,
    }
}

impl Planned {
    /// The rest of the reconcile once the tree was applied: TierRemoved per deleted orphan,
    /// the planned events, Degraded when the Stream starts being degraded (objects refused, or
    /// relays that did not answer), the memory and the status.
    pub fn settle(self, input: &Input<'_>, applied: &Applied) -> Outcome {
        let mut events: Vec<Note> = applied
            .removed_deployments
            .iter()
            .map(|d| Note::normal("TierRemoved", format!("deleted Deployment {d}")))
            .collect();
        events.extend(self.events.iter().cloned());
        let apply_error = (!applied.refused.is_empty()).then(|| applied.refused.join("; "));
        let unreachable = &self.observation.unreachable;
        let tampered = (!self.failing_hops.is_empty())
            .then(|| crate::integrity::degraded_message(&self.failing_hops));
        let degraded = apply_error
            .clone()
            .or_else(|| tampered.clone())
            .or_else(|| {
                (!unreachable.is_empty())
                    .then(|| format!("{} relay(s) unreachable", unreachable.len()))
            });
        let mut memory = self.memory.clone();
        // A new failing hop is an event of its own, even while otherwise degraded.
        if let Some(note) = &tampered
            && memory.integrity_hops != hop_keys(&self.failing_hops)
        {
            events.push(Note::warning("IntegrityFailure", note.clone()));
        }
        memory.integrity_hops = hop_keys(&self.failing_hops);
        if let (Some(note), None) = (&degraded, &memory.degraded_reason) {
            let detail: Vec<String> = unreachable
                .iter()
                .take(5)
                .map(|(pod, why)| format!("{pod}: {why}"))
                .collect();
            events.push(Note::warning(
                "Degraded",
                format!("{note} {}", detail.join("; ")),
            ));
        }
        memory.flash_crowd = self.plan.flash_crowd;
        memory.degraded_reason = degraded;
        let mut status = status(
            input,
            Some((&self.tree, &self.plan)),
            &self.deployments,
            &self.observation,
            &[],
            apply_error.as_deref(),
        );
        let previous = input.stream.status.as_ref();
        crate::status::add_integrity(
            &mut status,
            self.keys.as_ref(),
            &self.failing_hops,
            previous,
            input.clock.now,
        );
        let spec = &input.stream.spec;
        crate::status::add_upstream(
            &mut status,
            spec,
            &self.connected,
            previous,
            input.clock.now,
        );
        if let Some(upstream) = &status.upstream {
            events.extend(upstream_event(upstream, &mut memory));
        }
        Outcome {
            events,
            memory,
            status: Some(status),
            gauges: true,
            requeue_after: input.cfg.scrape_interval,
        }
    }
}

/// UpstreamFailover when relays move off the preferred external upstream (or split), and
/// UpstreamRestored when they are all back on it; nothing while none is connected (the
/// relays' own state says more then) or on the first sight of the preferred one.
fn upstream_event(upstream: &UpstreamStatus, memory: &mut StreamMemory) -> Option<Note> {
    let in_use = crate::upstream::indices_in_use(upstream);
    if in_use.is_empty() || memory.upstreams_in_use.as_ref() == Some(&in_use) {
        return None;
    }
    let before = memory.upstreams_in_use.replace(in_use.clone());
    let (failed_over, _, message) = crate::upstream::failover(upstream);
    if failed_over {
        Some(Note::warning("UpstreamFailover", message))
    } else {
        before.map(|_| Note::normal("UpstreamRestored", message))
    }
}

fn status(
    input: &Input<'_>,
    planned: Option<(&TreePlan, &StreamPlan)>,
    deployments: &BTreeMap<String, DeploymentCounts>,
    observation: &Observation,
    validation_errors: &[FieldError],
    apply_error: Option<&str>,
) -> StreamStatus {
    let stream = input.stream;
    let external_hosts = input.observed.external_hosts();
    compute_status(&StatusInput {
        stream: &input.target.stream,
        namespace: &input.target.namespace,
        generation: stream.meta().generation,
        spec: &stream.spec,
        tree: planned.map(|(t, _)| t),
        plan: planned.map(|(_, p)| p),
        deployments,
        external_hosts: &external_hosts,
        observation,
        validation_errors,
        apply_error,
        previous: stream.status.as_ref(),
        now: input.clock.now,
        cfg: input.cfg,
    })
}
