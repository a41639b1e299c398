//! One reconcile of a Stream, in steps: read → validate → observe (list + scrape) → plan →
//! build → apply → delete orphans → deletion costs → events → status. Every step but the IO
//! ones is a pure function from another module.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use surge_planner::{PlannerState, ScaleChange};
use tracing::{Instrument, info, info_span, warn};

use crate::apply::{apply, delete_orphans};
use crate::build::{Target, build_deployment, build_service};
use crate::config::OperatorConfig;
use crate::crd::{Stream, StreamStatus};
use crate::labels::{LABEL_REGION, POD_DELETION_COST, stream_selector_string, tier_from_labels};
use crate::metrics::{KindLabels, Metrics, RegionLabels, ResultLabels, TierLabels};
use crate::observe::{
    DeploymentCounts, PodView, ScrapeOutcome, deletion_costs, observe, relay_ready_seconds,
};
use crate::scrape::Scraper;
use crate::sizing::{SampleHistory, StreamPlan, history_window_seconds, plan_stream};
use crate::status::{StatusInput, compute_status};
use crate::tree::{TreePlan, build_tree};
use crate::validate::{summary, validate};

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {}", describe_kube_error(.0))]
    Kube(#[from] kube::Error),
    #[error("Stream has no namespace or uid")]
    Incomplete,
}

/// The API server's own words for a refusal ("services \"x\" is forbidden: exceeded quota:
/// ...", code and reason), without kube's debug dump of the whole Status; other errors as is.
pub fn describe_kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

/// What the operator remembers about one Stream between reconciles (in memory; losing it is
/// safe: the planner then holds off scale-downs for one stabilisation window).
#[derive(Default)]
struct StreamMemory {
    history: SampleHistory,
    planner: PlannerState,
    flash_crowd: bool,
    degraded_reason: Option<String>,
    invalid: Option<String>,
}

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub cfg: OperatorConfig,
    pub scraper: Scraper,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    started: Instant,
    memory: Mutex<HashMap<(String, String), StreamMemory>>,
    /// Metric label sets published per Stream, so stale ones can be removed.
    published: Mutex<HashMap<(String, String), Published>>,
    /// uids of deleted Streams, so a reconcile that was in flight at deletion does not
    /// publish their metrics again.
    deleted: Mutex<HashSet<String>>,
}

#[derive(Default)]
struct Published {
    tiers: Vec<TierLabels>,
    regions: Vec<RegionLabels>,
}

/// Locks a mutex even if a panicking thread poisoned it (the data stays usable: it is a cache).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Context {
    pub fn new(
        client: Client,
        cfg: OperatorConfig,
        recorder: Recorder,
        metrics: Arc<Metrics>,
    ) -> Self {
        Context {
            client,
            scraper: Scraper::new(cfg.scrape_timeout),
            cfg,
            recorder,
            metrics,
            started: Instant::now(),
            memory: Mutex::new(HashMap::new()),
            published: Mutex::new(HashMap::new()),
            deleted: Mutex::new(HashSet::new()),
        }
    }

    /// Drops what is remembered about a deleted Stream: its history, planner state and metrics.
    /// Best effort (a delete missed while the watch was down leaves them until restart).
    pub fn forget(&self, namespace: &str, name: &str, uid: &str) {
        lock(&self.deleted).insert(uid.to_string());
        self.forget_key(namespace, name);
    }

    fn forget_key(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        lock(&self.memory).remove(&key);
        if let Some(old) = lock(&self.published).remove(&key) {
            for l in &old.tiers {
                self.metrics.relays_desired.remove(l);
                self.metrics.relays_ready.remove(l);
            }
            for l in &old.regions {
                self.metrics.viewers.remove(l);
            }
        }
    }

    fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// Entry point used by the controller.
pub async fn reconcile(stream: Arc<Stream>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("reconcile", stream = %stream.name_any(), namespace = stream.namespace().unwrap_or_default());
    let started = Instant::now();
    let result = reconcile_inner(&stream, &ctx).instrument(span).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let label = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabels {
            result: label.into(),
        })
        .inc();
    if result.is_err() {
        ctx.metrics.reconcile_errors.inc();
    }
    result
}

/// Retry policy: log, record a Warning event, retry soon.
pub fn error_policy(stream: Arc<Stream>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(stream = %stream.name_any(), %error, "reconcile failed");
    let recorder = ctx.recorder.clone();
    let reference = stream.object_ref(&());
    let note = error.to_string();
    tokio::spawn(async move {
        let _ = recorder
            .publish(
                &Event {
                    type_: EventType::Warning,
                    reason: "ReconcileError".into(),
                    note: Some(truncate(&note, 1000)),
                    action: "Reconcile".into(),
                    secondary: None,
                },
                &reference,
            )
            .await;
    });
    Action::requeue(ctx.cfg.scrape_interval)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_string()
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

async fn publish(ctx: &Context, stream: &Stream, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(&note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &stream.object_ref(&())).await {
        warn!(error = %e, reason, "could not record event");
    }
}

async fn reconcile_inner(stream: &Stream, ctx: &Context) -> Result<Action, Error> {
    // 1. Read.
    if stream.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the tree.
        return Ok(Action::await_change());
    }
    let name = stream.name_any();
    let namespace = stream.namespace().ok_or(Error::Incomplete)?;
    let owner = stream.controller_owner_ref(&()).ok_or(Error::Incomplete)?;
    let uid = owner.uid.clone();
    let spec = &stream.spec;
    let cfg = &ctx.cfg;
    let streams: Api<Stream> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = (namespace.clone(), name.clone());

    // 2. Validate (pure).
    let errors = validate(&name, spec);
    if !errors.is_empty() {
        let message = summary(&errors);
        let first_time = {
            let mut memory = lock(&ctx.memory);
            let m = memory.entry(key.clone()).or_default();
            let changed = m.invalid.as_deref() != Some(message.as_str());
            m.invalid = Some(message.clone());
            changed
        };
        if first_time {
            warn!(%message, "invalid Stream spec");
            publish(ctx, stream, EventType::Warning, "InvalidSpec", message).await;
        }
        let status = compute_status(&StatusInput {
            stream: &name,
            namespace: &namespace,
            generation: stream.meta().generation,
            spec,
            tree: None,
            plan: None,
            deployments: &BTreeMap::new(),
            observation: &Default::default(),
            validation_errors: &errors,
            apply_error: None,
            previous: stream.status.as_ref(),
            now: Timestamp::now(),
            cfg,
        });
        write_status(&streams, &name, status, &cfg.field_manager).await?;
        return Ok(Action::requeue(cfg.scrape_interval * 6));
    }

    // 3. Observe: Deployments, pods, relay stats.
    let deployments_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let services_api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = stream_selector_string(&name);
    let lp = ListParams::default().labels(&selector);
    let deployments = deployments_api.list(&lp).await?;
    let mut counts_by_name = BTreeMap::new();
    let mut counts_by_tier = BTreeMap::new();
    for d in deployments.items.iter().filter(|d| owned_by(*d, &uid)) {
        let counts = DeploymentCounts::from_deployment(d);
        counts_by_name.insert(d.name_any(), counts);
        let labels = d.labels();
        if let (Some(tier), Some(region)) = (tier_from_labels(labels), labels.get(LABEL_REGION)) {
            counts_by_tier.insert((region.clone(), tier), counts);
        }
    }
    let pods: Vec<PodView> = pods_api
        .list(&lp)
        .await?
        .items
        .iter()
        .filter_map(PodView::from_pod)
        .collect();
    let scrapes = scrape_all(ctx, &pods, &spec.app, &name).await;
    let region_names: Vec<String> = spec.regions.iter().map(|r| r.name.clone()).collect();
    let observation = observe(&region_names, &pods, &scrapes, &counts_by_tier);

    // 4. Plan (the planner decides; we feed it history).
    let now_s = ctx.now_s();
    let keep = history_window_seconds(spec);
    let (plan, flash_before, degraded_before) = {
        let mut memory = lock(&ctx.memory);
        let m = memory.entry(key.clone()).or_default();
        m.invalid = None;
        let names: Vec<&str> = region_names.iter().map(String::as_str).collect();
        m.history.retain_regions(&names);
        for (region, viewers) in &observation.region_viewers {
            if let Some(v) = viewers {
                m.history.record(region, now_s, *v, keep);
            }
        }
        let inputs: Vec<_> = observation
            .regions
            .values()
            .cloned()
            .map(|mut r| {
                r.samples = m.history.samples(&r.name);
                r
            })
            .collect();
        let plan = plan_stream(spec, &inputs, now_s, relay_ready_seconds(&pods), &m.planner);
        if let Ok(p) = &plan {
            m.planner = p.state.clone();
        }
        (plan, m.flash_crowd, m.degraded_reason.clone())
    };
    let plan: StreamPlan = match plan {
        Ok(p) => p,
        Err(e) => {
            // The validator mirrors the planner's checks; this is a bug if it happens.
            publish(ctx, stream, EventType::Warning, "PlanFailed", e.to_string()).await;
            return Ok(Action::requeue(cfg.scrape_interval));
        }
    };

    // 5. Build (pure).
    let tree: TreePlan = build_tree(&name, spec, &plan, cfg);
    let target = Target {
        stream: name.clone(),
        namespace: namespace.clone(),
        app: spec.app.clone(),
        owner,
    };

    // 6. Apply. A refused object does not fail the reconcile: the rest is applied and the
    // refusal shows in the status (Ready=False, Degraded=True, reason ApplyFailed) and metrics.
    let mut apply_errors = Vec::new();
    let mut refused = |kind: &str, name: &str, e: kube::Error| {
        // Retried every reconcile; the Degraded event (and a warning) marks the first time.
        tracing::debug!(kind, name, error = %describe_kube_error(&e), "the API server refused an applied object");
        ctx.metrics
            .apply_errors
            .get_or_create(&KindLabels::new(kind))
            .inc();
        apply_errors.push(format!("{kind} {name}: {}", describe_kube_error(&e)));
    };
    for tier in &tree.tiers {
        if let Err(e) = apply(
            &services_api,
            &build_service(&target, tier, cfg),
            &cfg.field_manager,
        )
        .await
        {
            refused("Service", &tier.name, e);
        }
        if let Err(e) = apply(
            &deployments_api,
            &build_deployment(&target, spec, tier, cfg),
            &cfg.field_manager,
        )
        .await
        {
            refused("Deployment", &tier.name, e);
        }
    }

    // 7. Delete orphans (tiers or regions that are gone).
    let keep_names: BTreeSet<String> = tree.tiers.iter().map(|t| t.name.clone()).collect();
    for deleted in delete_orphans(&deployments_api, &selector, &uid, &keep_names).await? {
        info!(deployment = %deleted, "deleted orphan Deployment");
        publish(
            ctx,
            stream,
            EventType::Normal,
            "TierRemoved",
            format!("deleted Deployment {deleted}"),
        )
        .await;
    }
    for deleted in delete_orphans(&services_api, &selector, &uid, &keep_names).await? {
        info!(service = %deleted, "deleted orphan Service");
    }

    // 8. Least-loaded relays go first on scale-down.
    for region in &plan.regions {
        for (pod, cost) in deletion_costs(&region.removal_order, &pods) {
            let patch = serde_json::json!({"metadata": {"annotations": {POD_DELETION_COST: cost}}});
            if let Err(e) = pods_api
                .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                warn!(%pod, error = %e, "could not set pod-deletion-cost");
            }
        }
    }

    // 9. Events for what changed.
    for tier in &tree.tiers {
        let before = counts_by_name.get(&tier.name).map(|c| c.desired);
        match before {
            None => info!(deployment = %tier.name, replicas = tier.replicas, "created tier"),
            Some(b) if b != tier.replicas => {
                let region_plan = plan.region(&tier.region);
                let why = region_plan.map(|r| r.reason.clone()).unwrap_or_default();
                let (reason, verb) = if tier.replicas > b {
                    ("ScaledUp", "up")
                } else {
                    ("ScaledDown", "down")
                };
                let note = format!(
                    "{} {} {b} -> {}: {why}",
                    tier.region, tier.kind, tier.replicas
                );
                info!(deployment = %tier.name, from = b, to = tier.replicas, %why, "scaled {verb}");
                publish(ctx, stream, EventType::Normal, reason, note).await;
            }
            _ => {}
        }
    }
    if plan.flash_crowd != flash_before {
        let (type_, reason, note) = if plan.flash_crowd {
            (
                EventType::Warning,
                "FlashCrowd",
                plan.flash_crowd_reason.clone().unwrap_or_default(),
            )
        } else {
            (
                EventType::Normal,
                "FlashCrowdOver",
                "viewer growth is back below the thresholds".to_string(),
            )
        };
        info!(flash_crowd = plan.flash_crowd, %note, "flash-crowd mode changed");
        publish(ctx, stream, type_, reason, note).await;
    }
    let scale_ups = plan
        .regions
        .iter()
        .filter(|r| r.change == ScaleChange::Up)
        .count();
    if scale_ups > 0 {
        tracing::debug!(reason = %plan.reason, "plan");
    }
    let apply_error = (!apply_errors.is_empty()).then(|| apply_errors.join("; "));
    let degraded_now = apply_error.clone().or_else(|| {
        (!observation.unreachable.is_empty())
            .then(|| format!("{} relay(s) unreachable", observation.unreachable.len()))
    });
    if degraded_now.is_some() && degraded_before.is_none() {
        let note = degraded_now.clone().unwrap_or_default();
        warn!(%note, "degraded");
        let detail: Vec<String> = observation
            .unreachable
            .iter()
            .take(5)
            .map(|(p, w)| format!("{p}: {w}"))
            .collect();
        publish(
            ctx,
            stream,
            EventType::Warning,
            "Degraded",
            format!("{note} {}", detail.join("; ")),
        )
        .await;
    }
    {
        let mut memory = lock(&ctx.memory);
        let m = memory.entry(key).or_default();
        m.flash_crowd = plan.flash_crowd;
        m.degraded_reason = degraded_now;
    }

    // 10. Status (pure computation, then one server-side apply of the status subresource).
    let status = compute_status(&StatusInput {
        stream: &name,
        namespace: &namespace,
        generation: stream.meta().generation,
        spec,
        tree: Some(&tree),
        plan: Some(&plan),
        deployments: &counts_by_name,
        observation: &observation,
        validation_errors: &[],
        apply_error: apply_error.as_deref(),
        previous: stream.status.as_ref(),
        now: Timestamp::now(),
        cfg,
    });
    record_metrics(ctx, &namespace, &name, &spec.origin.region, &status);
    if lock(&ctx.deleted).contains(&uid) {
        // Deleted while this reconcile ran: undo what it just published.
        ctx.forget_key(&namespace, &name);
        return Ok(Action::await_change());
    }
    write_status(&streams, &name, status, &cfg.field_manager).await?;
    Ok(Action::requeue(cfg.scrape_interval))
}

fn owned_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.meta()
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|o| o.uid == uid))
}

/// Scrapes every running relay pod concurrently (at most 32 at a time).
async fn scrape_all(
    ctx: &Context,
    pods: &[PodView],
    app: &str,
    stream: &str,
) -> BTreeMap<String, ScrapeOutcome> {
    let port = ctx.cfg.relay_http_port;
    let targets: Vec<(String, String)> = pods
        .iter()
        .filter(|p| !p.terminating)
        .filter_map(|p| p.ip.clone().map(|ip| (p.name.clone(), ip)))
        .collect();
    let jobs = targets.into_iter().map(|(pod, ip)| {
        let scraper = ctx.scraper.clone();
        let (app, stream) = (app.to_string(), stream.to_string());
        async move {
            let outcome = scraper
                .scrape(&ip, port)
                .await
                .map(|stats| stats.viewers_of(&app, &stream))
                .map_err(|e| format!("{ip}:{port}: {e}"));
            (pod, outcome)
        }
    });
    let results: Vec<(String, ScrapeOutcome)> = futures::stream::iter(jobs)
        .buffer_unordered(32)
        .collect()
        .await;
    for (pod, outcome) in &results {
        if let Err(e) = outcome {
            ctx.metrics.scrape_errors.inc();
            tracing::debug!(%pod, error = %e, "relay scrape failed");
        }
    }
    results.into_iter().collect()
}

fn record_metrics(
    ctx: &Context,
    namespace: &str,
    stream: &str,
    origin_region: &str,
    status: &StreamStatus,
) {
    let metrics = &ctx.metrics;
    let mut now = Published::default();
    let tiers = status
        .origin
        .iter()
        .map(|t| (origin_region.to_string(), t))
        .chain(
            status
                .regions
                .iter()
                .flat_map(|r| r.tiers.iter().map(move |t| (r.name.clone(), t))),
        );
    for (region, t) in tiers {
        let tier = if t.level > 0 {
            format!("{}-{}", t.tier, t.level)
        } else {
            t.tier.clone()
        };
        let labels = TierLabels {
            namespace: namespace.into(),
            stream: stream.into(),
            region,
            tier,
        };
        metrics
            .relays_desired
            .get_or_create(&labels)
            .set(i64::from(t.desired));
        metrics
            .relays_ready
            .get_or_create(&labels)
            .set(i64::from(t.ready));
        now.tiers.push(labels);
    }
    for (region, v) in &status.viewers.regions {
        let labels = RegionLabels {
            namespace: namespace.into(),
            stream: stream.into(),
            region: region.clone(),
        };
        metrics
            .viewers
            .get_or_create(&labels)
            .set(i64::try_from(*v).unwrap_or(i64::MAX));
        now.regions.push(labels);
    }
    // Tiers and regions that are gone stop being reported.
    let key = (namespace.to_string(), stream.to_string());
    let (fresh_tiers, fresh_regions) = (now.tiers.clone(), now.regions.clone());
    let old = lock(&ctx.published).insert(key, now);
    if let Some(old) = old {
        for l in old.tiers.iter().filter(|l| !fresh_tiers.contains(l)) {
            metrics.relays_desired.remove(l);
            metrics.relays_ready.remove(l);
        }
        for l in old.regions.iter().filter(|l| !fresh_regions.contains(l)) {
            metrics.viewers.remove(l);
        }
    }
}

async fn write_status(
    api: &Api<Stream>,
    name: &str,
    status: StreamStatus,
    manager: &str,
) -> Result<(), Error> {
    let patch = serde_json::json!({
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "Stream",
        "status": status,
    });
    match api
        .patch_status(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // The Stream was deleted while we reconciled it: nothing to report.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
