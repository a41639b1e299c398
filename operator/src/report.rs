//! The reconcile's report step: records the decided events on the Stream, remembers the next
//! memory, publishes the Stream's gauges and writes its status (one server-side apply of the
//! status subresource).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource};
use tracing::{info, warn};

use crate::build::Target;
use crate::context::{Context, Published, lock};
use crate::crd::{Stream, StreamStatus};
use crate::decide::{Note, Outcome};
use crate::metrics::{Metrics, RegionLabels, TierLabels};
use crate::reconcile::Error;

/// Reports `outcome` of a reconcile of `stream` and says when to reconcile it again.
pub async fn report(
    ctx: &Context,
    stream: &Stream,
    target: &Target,
    outcome: Outcome,
) -> Result<Action, Error> {
    ctx.remember(target, outcome.memory);
    for note in &outcome.events {
        match note.type_ {
            EventType::Warning => warn!(reason = note.reason, note = %note.note, "event"),
            EventType::Normal => info!(reason = note.reason, note = %note.note, "event"),
        }
        publish(ctx, stream, note).await;
    }
    let Some(status) = outcome.status else {
        return Ok(Action::requeue(ctx.wall(outcome.requeue_after)));
    };
    if outcome.gauges {
        let origin_region = &stream.spec.origin.region;
        record_metrics(&ctx.metrics, &ctx.published, target, origin_region, &status);
    }
    if ctx.is_deleted(&target.owner.uid) {
        // Deleted while this reconcile ran: undo what it just published.
        ctx.forget_key(&target.namespace, &target.stream);
        return Ok(Action::await_change());
    }
    let streams: Api<Stream> = Api::namespaced(ctx.client.clone(), &target.namespace);
    write_status(&streams, &target.stream, status, &ctx.cfg.field_manager).await?;
    Ok(Action::requeue(ctx.wall(outcome.requeue_after)))
}

/// Records one event on `stream` (a failure is logged, never fatal).
pub async fn publish(ctx: &Context, stream: &Stream, note: &Note) {
    let ev = Event {
        type_: note.type_,
        reason: note.reason.into(),
        note: Some(truncate(&note.note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &stream.object_ref(&())).await {
        warn!(error = %e, reason = note.reason, "could not record event");
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
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

/// Sets the relays desired/ready and viewers gauges from `status`, and removes the series of
/// tiers and regions that are gone (`published` remembers them per Stream).
pub(crate) fn record_metrics(
    metrics: &Metrics,
    published: &Mutex<HashMap<(String, String), Published>>,
    target: &Target,
    origin_region: &str,
    status: &StreamStatus,
) {
    let (namespace, stream) = (target.namespace.as_str(), target.stream.as_str());
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
    let old = lock(published).insert(key, now);
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
