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
use crate::metrics::{ConditionLabels, Metrics, RegionLabels, StreamLabels, TierLabels};
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
        let origin_region = stream.spec.origin_region().unwrap_or_default();
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
    let region_labels = |region: &str| RegionLabels {
        namespace: namespace.into(),
        stream: stream.into(),
        region: region.into(),
    };
    for (region, v) in &status.viewers.regions {
        let labels = region_labels(region);
        metrics.viewers.get_or_create(&labels).set(saturating(*v));
        now.regions.push(labels);
    }
    for r in &status.regions {
        let labels = region_labels(&r.name);
        metrics
            .forecast_viewers
            .get_or_create(&labels)
            .set(saturating(r.forecast_viewers));
        if !now.regions.contains(&labels) {
            now.regions.push(labels);
        }
    }
    let stream_labels = StreamLabels {
        namespace: namespace.into(),
        stream: stream.into(),
    };
    metrics
        .growth
        .get_or_create(&stream_labels)
        .set(status.growth_per_minute / 60.0);
    now.stream = Some(stream_labels);
    for c in &status.conditions {
        let labels = ConditionLabels {
            namespace: namespace.into(),
            stream: stream.into(),
            condition: c.type_.clone(),
        };
        metrics
            .conditions
            .get_or_create(&labels)
            .set(i64::from(c.status == "True"));
        now.conditions.push(labels);
    }
    // Tiers, regions and conditions that are gone stop being reported.
    let key = (namespace.to_string(), stream.to_string());
    let fresh = Published {
        tiers: now.tiers.clone(),
        regions: now.regions.clone(),
        conditions: now.conditions.clone(),
        stream: now.stream.clone(),
    };
    let old = lock(published).insert(key, now);
    if let Some(old) = old {
        unpublish(metrics, &old, &fresh);
    }
}

/// Removes the series `old` published that `fresh` does not.
pub(crate) fn unpublish(metrics: &Metrics, old: &Published, fresh: &Published) {
    for l in old.tiers.iter().filter(|l| !fresh.tiers.contains(l)) {
        metrics.relays_desired.remove(l);
        metrics.relays_ready.remove(l);
    }
    for l in old.regions.iter().filter(|l| !fresh.regions.contains(l)) {
        metrics.viewers.remove(l);
        metrics.forecast_viewers.remove(l);
    }
    for l in old
        .conditions
        .iter()
        .filter(|l| !fresh.conditions.contains(l))
    {
        metrics.conditions.remove(l);
    }
    if let Some(l) = &old.stream
        && fresh.stream.is_none()
    {
        metrics.growth.remove(l);
    }
}

fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
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

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};

    use super::*;
    use crate::crd::{RegionStatus, TierStatus, ViewerCounts};

    fn target() -> Target {
        Target {
            stream: "launch".into(),
            namespace: "live".into(),
            app: "live".into(),
            owner: OwnerReference::default(),
        }
    }

    fn condition(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "Test".into(),
            message: String::new(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    fn status(regions: &[(&str, u64, u64)], flash_crowd: bool) -> StreamStatus {
        StreamStatus {
            conditions: vec![
                condition("Ready", "True"),
                condition("FlashCrowd", if flash_crowd { "True" } else { "False" }),
            ],
            viewers: ViewerCounts {
                total: regions.iter().map(|r| r.1).sum(),
                regions: regions.iter().map(|r| (r.0.to_string(), r.1)).collect(),
            },
            growth_per_minute: 120.0,
            regions: regions
                .iter()
                .map(|&(name, viewers, forecast)| RegionStatus {
                    name: name.into(),
                    viewers,
                    forecast_viewers: forecast,
                    tiers: vec![TierStatus {
                        tier: "edge".into(),
                        level: 0,
                        deployment: format!("launch-{name}-edge"),
                        desired: 3,
                        ready: 2,
                    }],
                })
                .collect(),
            ..StreamStatus::default()
        }
    }

    #[test]
    fn a_streams_gauges_follow_its_status_and_vanish_with_its_regions() {
        let metrics = Metrics::new();
        let published = Mutex::new(HashMap::new());
        let both = status(&[("us-east", 40, 90), ("eu-west", 10, 15)], true);
        record_metrics(&metrics, &published, &target(), "us-east", &both);
        let text = metrics.encode();
        for series in [
            r#"surge_operator_viewers{namespace="live",stream="launch",region="eu-west"} 10"#,
            r#"surge_operator_forecast_viewers{namespace="live",stream="launch",region="us-east"} 90"#,
            r#"surge_operator_viewer_growth_per_second{namespace="live",stream="launch"} 2.0"#,
            r#"surge_operator_stream_condition{namespace="live",stream="launch",condition="FlashCrowd"} 1"#,
            r#"surge_operator_stream_condition{namespace="live",stream="launch",condition="Ready"} 1"#,
            r#"surge_operator_relays_desired{namespace="live",stream="launch",region="eu-west",tier="edge"} 3"#,
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }

        let one = status(&[("us-east", 40, 50)], false);
        record_metrics(&metrics, &published, &target(), "us-east", &one);
        let text = metrics.encode();
        assert!(!text.contains(r#"region="eu-west""#), "{text}");
        assert!(
            text.contains(
                r#"surge_operator_stream_condition{namespace="live",stream="launch",condition="FlashCrowd"} 0"#
            ),
            "{text}"
        );

        // The Stream is deleted: none of its series stay.
        let old = lock(&published)
            .remove(&("live".to_string(), "launch".to_string()))
            .expect("published");
        unpublish(&metrics, &old, &Published::default());
        assert!(!metrics.encode().contains("launch"), "{}", metrics.encode());
    }

    #[test]
    fn build_info_and_leader_are_reported() {
        let metrics = Metrics::new();
        let text = metrics.encode();
        let build = format!(
            r#"surge_build_info{{component="operator",version="{}"}} 1"#,
            crate::metrics::VERSION
        );
        assert!(text.contains(&build), "{text}");
        assert!(text.contains("surge_operator_leader 0"), "{text}");
        metrics.set_leading();
        assert!(metrics.encode().contains("surge_operator_leader 1"));
    }
}
