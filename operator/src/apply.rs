//! Applying desired objects (server-side apply, one field manager) and deleting orphans.

use std::collections::BTreeSet;
use std::fmt::Debug;

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

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
