//! The reconcile's apply step: server-side apply of the desired objects (one field manager),
//! deletion of orphans, and the pod annotations of a planned tree (pod-deletion-cost, the
//! advertised host of `hostPort` edges).

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::build::Target;
use crate::decide::{Applied, Planned};
use crate::labels::{POD_ADVERTISE_HOST, POD_DELETION_COST, stream_selector_string};
use crate::metrics::{KindLabels, Metrics};
use crate::reconcile::describe_kube_error;

/// Applies `planned` for `target`: every tier's Service, Deployment and PodDisruptionBudget and
/// the regions' placement-peers Services, then deletes the Stream's orphan Deployments,
/// Services and PodDisruptionBudgets, then
/// sets deletion costs and advertised hosts. A refused object does not stop the rest (it is
/// counted in `metrics` and listed in the result, which the status shows as ApplyFailed); a
/// failed orphan listing or deletion fails the reconcile.
pub async fn apply_planned(
    client: &Client,
    target: &Target,
    planned: &Planned,
    manager: &str,
    metrics: &Metrics,
) -> Result<Applied, kube::Error> {
    let services: Api<Service> = Api::namespaced(client.clone(), &target.namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &target.namespace);
    let mut applied = Applied::default();
    let mut refused = |kind: &str, name: String, e: kube::Error| {
        // Retried every reconcile; the Degraded event (and a warning) marks the first time.
        tracing::debug!(kind, name, error = %describe_kube_error(&e), "the API server refused an applied object");
        metrics
            .apply_errors
            .get_or_create(&KindLabels::new(kind))
            .inc();
        applied
            .refused
            .push(format!("{kind} {name}: {}", describe_kube_error(&e)));
    };
    // The trusted public keys first: the pullers' pods mount them.
    if let Some(map) = &planned.verify_keys {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &target.namespace);
        if let Err(e) = apply(&maps, map, manager).await {
            refused("ConfigMap", map.name_any(), e);
        }
    }
    for (service, deployment) in &planned.objects {
        if let Err(e) = apply(&services, service, manager).await {
            refused("Service", service.name_any(), e);
        }
        if let Err(e) = apply(&deployments, deployment, manager).await {
            refused("Deployment", deployment.name_any(), e);
        }
    }
    for service in &planned.peers_services {
        if let Err(e) = apply(&services, service, manager).await {
            refused("Service", service.name_any(), e);
        }
    }
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &target.namespace);
    for pdb in &planned.pdbs {
        if let Err(e) = apply(&pdbs, pdb, manager).await {
            refused("PodDisruptionBudget", pdb.name_any(), e);
        }
    }

    // Tiers or regions that are gone.
    let selector = stream_selector_string(&target.stream);
    let uid = &target.owner.uid;
    for deleted in delete_orphans(&deployments, &selector, uid, &planned.keep).await? {
        info!(deployment = %deleted, "deleted orphan Deployment");
        applied.removed_deployments.push(deleted);
    }
    for deleted in delete_orphans(&services, &selector, uid, &planned.keep).await? {
        info!(service = %deleted, "deleted orphan Service");
    }
    for deleted in delete_orphans(&pdbs, &selector, uid, &planned.keep).await? {
        info!(pdb = %deleted, "deleted orphan PodDisruptionBudget");
    }

    // Least-loaded relays go first on scale-down.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    for (pod, cost) in &planned.deletion_costs {
        let patch = serde_json::json!({"metadata": {"annotations": {POD_DELETION_COST: cost}}});
        if let Err(e) = pods
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            warn!(%pod, error = %e, "could not set pod-deletion-cost");
        }
    }
    // Edges on host ports advertise their node's external host (null removes the annotation).
    for (pod, host) in &planned.advertise_hosts {
        let patch = serde_json::json!({"metadata": {"annotations": {POD_ADVERTISE_HOST: host}}});
        if let Err(e) = pods
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            warn!(%pod, error = %e, "could not set the advertised host");
        }
    }
    Ok(applied)
}

/// Server-side applies `obj` (which must carry its name), forcing ownership of its fields.
pub async fn apply<K>(api: &Api<K>, obj: &K, manager: &str) -> Result<K, kube::Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(obj),
    )
    .await
}

/// Deletes objects matching `selector`, owned by `owner_uid`, whose names are not in `keep`.
/// Returns the deleted names.
pub async fn delete_orphans<K>(
    api: &Api<K>,
    selector: &str,
    owner_uid: &str,
    keep: &BTreeSet<String>,
) -> Result<Vec<String>, kube::Error>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    let mut deleted = Vec::new();
    for obj in api.list(&ListParams::default().labels(selector)).await? {
        let name = obj.name_any();
        let owned = obj.owner_references().iter().any(|o| o.uid == owner_uid);
        if owned && !keep.contains(&name) && obj.meta().deletion_timestamp.is_none() {
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(name),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(deleted)
}
