//! One reconcile of a Stream, as a short driver over one pure step (Stackable style):
//! gather (IO: list the children, scrape the relays) → decide (pure: validate, plan, the tree,
//! the desired objects, the events) → apply (IO) → settle (pure: what applying did, the
//! status, the next memory) → report (IO: events, metrics, status). The steps up to settle are
//! [`step`], over a [`Backend`] that does the observing and applying: [`Kubernetes`] here, the
//! local fleet for `surge-operator local` (`local::driver`).

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span, warn};

use crate::apply::apply_planned;
use crate::build::Target;
use crate::config::OperatorConfig;
use crate::crd::{Exposure, Stream};
use crate::decide::{
    self, Applied, Clock, Decision, Input, Note, Outcome, Planned, StreamMemory, decide,
    spec_errors,
};
use crate::gather::gather;
use crate::integrity::{KeySecret, key_secret};
use crate::metrics::{Metrics, ResultLabels};
use crate::observe::Observed;
use crate::report::{publish, report};
use crate::signing_secret::read_or_create;

pub use crate::context::Context;

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

/// Entry point used by the controller.
pub async fn reconcile(stream: Arc<Stream>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("reconcile", stream = %stream.name_any(), namespace = stream.namespace().unwrap_or_default());
    let started = Instant::now();
    let result = reconcile_inner(&stream, &ctx).instrument(span).await;
    record_reconcile(&ctx.metrics, started, result.is_ok());
    result
}

/// Counts one reconcile and its duration.
pub(crate) fn record_reconcile(metrics: &Metrics, started: Instant, ok: bool) {
    metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let label = if ok { "ok" } else { "error" };
    metrics
        .reconciles
        .get_or_create(&ResultLabels {
            result: label.into(),
        })
        .inc();
    if !ok {
        metrics.reconcile_errors.inc();
    }
}

/// The IO on either side of `decide`: observing a Stream's children, applying its tree.
pub(crate) trait Backend {
    type Error;
    /// The children of `target`'s Stream and what their relays answered.
    /// `host_ports`: the Stream's edges are on host ports (their nodes are read too).
    /// `key`: the Secret with the signing key, to read (and make, when it is the operator's).
    async fn observe(
        &self,
        target: &Target,
        host_ports: bool,
        key: Option<&KeySecret>,
    ) -> Result<Observed, Self::Error>;
    /// Makes the children match `planned`.
    async fn apply(&self, target: &Target, planned: &Planned) -> Result<Applied, Self::Error>;
}

/// Children and relays as the API server and the relays' pod IPs show them.
pub(crate) struct Kubernetes<'a>(pub &'a Context);

impl Backend for Kubernetes<'_> {
    type Error = Error;

    async fn observe(
        &self,
        target: &Target,
        host_ports: bool,
        key: Option<&KeySecret>,
    ) -> Result<Observed, Error> {
        let ctx = self.0;
        // Relays answer /api/v1/streams on their admin port.
        let (port, metrics) = (ctx.cfg.relay_admin_port, &ctx.metrics);
        let mut observed =
            gather(&ctx.client, &ctx.scraper, port, target, host_ports, metrics).await?;
        // Measured ready times in planner time, like every other duration it sees.
        for pod in &mut observed.pods {
            pod.ready_after_seconds = pod.ready_after_seconds.map(|s| s * ctx.speed);
        }
        if let Some(key) = key {
            observed.signing_key = Some(read_or_create(&ctx.client, target, key).await);
        }
        Ok(observed)
    }

    async fn apply(&self, target: &Target, planned: &Planned) -> Result<Applied, Error> {
        let ctx = self.0;
        let manager = &ctx.cfg.field_manager;
        Ok(apply_planned(&ctx.client, target, planned, manager, &ctx.metrics).await?)
    }
}

/// One reconcile up to its report: observe (IO) → decide (pure) → apply (IO) → settle (pure).
/// `remember` keeps the planned memory (history and planner state) even if applying fails.
pub(crate) async fn step<B: Backend>(
    backend: &B,
    stream: &Stream,
    target: &Target,
    clock: Clock,
    cfg: &OperatorConfig,
    memory: &StreamMemory,
    remember: impl FnOnce(StreamMemory),
) -> Result<Outcome, B::Error> {
    // 1. Observe: the children and their relays (an invalid spec is decided without them).
    let observed = if spec_errors(&target.stream, &stream.spec, cfg).is_empty() {
        let host_ports = stream.spec.placement.exposure == Exposure::HostPort;
        let key = key_secret(&target.stream, &stream.spec);
        backend.observe(target, host_ports, key.as_ref()).await?
    } else {
        Observed::default()
    };

    // 2. Decide (pure).
    let input = Input {
        stream,
        target,
        observed: &observed,
        clock,
        cfg,
    };
    Ok(match decide(&input, memory) {
        Decision::Done(outcome) => outcome,
        Decision::Apply(planned) => {
            remember(planned.memory.clone());
            // 3. Apply (IO), then settle (pure) with what it did.
            let applied = backend.apply(target, &planned).await?;
            planned.settle(&input, &applied)
        }
    })
}

/// The driver: every step but `decide` and `settle` is IO.
async fn reconcile_inner(stream: &Stream, ctx: &Context) -> Result<Action, Error> {
    if stream.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the tree.
        return Ok(Action::await_change());
    }
    let target = decide::target(stream).ok_or(Error::Incomplete)?;
    let clock = Clock {
        seconds: ctx.now_s(),
        now: Timestamp::now(),
    };
    let memory = ctx.recall(&target);
    let remember = |m| ctx.remember(&target, m);
    let outcome = step(
        &Kubernetes(ctx),
        stream,
        &target,
        clock,
        &ctx.cfg,
        &memory,
        remember,
    )
    .await?;

    // 4. Report: events, metrics, status.
    report(ctx, stream, &target, outcome).await
}

/// Retry policy: log, record a Warning event, retry soon.
pub fn error_policy(stream: Arc<Stream>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(stream = %stream.name_any(), %error, "reconcile failed");
    let note = Note {
        type_: EventType::Warning,
        reason: "ReconcileError",
        note: error.to_string(),
    };
    let requeue = Action::requeue(ctx.wall(ctx.cfg.scrape_interval));
    tokio::spawn(async move { publish(&ctx, &stream, &note).await });
    requeue
}
