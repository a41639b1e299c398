//! One reconcile of a Stream, as a short driver over one pure step (Stackable style):
//! gather (IO: list the children, scrape the relays) → decide (pure: validate, plan, the tree,
//! the desired objects, the events) → apply (IO) → settle (pure: what applying did, the
//! status, the next memory) → report (IO: events, metrics, status).

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span, warn};

use crate::apply::apply_planned;
use crate::crd::Stream;
use crate::decide::{self, Clock, Decision, Input, Note, decide};
use crate::gather::gather;
use crate::metrics::ResultLabels;
use crate::observe::Observed;
use crate::report::{publish, report};
use crate::validate::validate;

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

/// The driver: every step but `decide` and `settle` is IO.
async fn reconcile_inner(stream: &Stream, ctx: &Context) -> Result<Action, Error> {
    if stream.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the tree.
        return Ok(Action::await_change());
    }
    let target = decide::target(stream).ok_or(Error::Incomplete)?;
    let cfg = &ctx.cfg;

    // 1. Observe: the children and their relays (an invalid spec is decided without them).
    let observed = if validate(&target.stream, &stream.spec).is_empty() {
        let port = cfg.relay_http_port;
        gather(&ctx.client, &ctx.scraper, port, &target, &ctx.metrics).await?
    } else {
        Observed::default()
    };

    // 2. Decide (pure).
    let input = Input {
        stream,
        target: &target,
        observed: &observed,
        clock: Clock {
            seconds: ctx.now_s(),
            now: Timestamp::now(),
        },
        cfg,
    };
    let outcome = match decide(&input, &ctx.recall(&target)) {
        Decision::Done(outcome) => outcome,
        Decision::Apply(planned) => {
            // History and planner state count even if applying fails.
            ctx.remember(&target, planned.memory.clone());
            // 3. Apply (IO), then settle (pure) with what it did.
            let manager = &cfg.field_manager;
            let applied =
                apply_planned(&ctx.client, &target, &planned, manager, &ctx.metrics).await?;
            planned.settle(&input, &applied)
        }
    };

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
    let requeue = Action::requeue(ctx.cfg.scrape_interval);
    tokio::spawn(async move { publish(&ctx, &stream, &note).await });
    requeue
}
