//! Signed frames in the relay pods: the origin signs with `--sign-key`, a file of the key
//! Secret mounted at [`SIGN_KEY_DIR`] (only the origin ever mounts the private key); every
//! reflector and edge verifies what it pulls with one `--verify-key` per trusted public key,
//! files of the ConfigMap [`verify_keys_name`] mounted at [`VERIFY_KEYS_DIR`]. Public keys
//! go in a ConfigMap rather than a second Secret: they are not secret, anyone may read them
//! (`kubectl get configmap`), and the private key stays in one Secret mounted in one pod.
//! No key is ever an argument or an environment value, only file paths. Relays read the keys
//! when they start, so the key ids are a pod template annotation: a key change rolls the
//! tier out.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Target;
use super::secret_volume::{Source, mounted};
use crate::integrity::{Keys, SIGNING_ITEM};
use crate::labels::{LABEL_COMPONENT, TierKind, stream_selector};
use crate::tree::TierPlan;

/// Where the origin finds its signing key.
pub const SIGN_KEY_DIR: &str = "/etc/surge-signing";
/// Where pullers find the public keys they trust (`key-0.pem`, `key-1.pem`, ...).
pub const VERIFY_KEYS_DIR: &str = "/etc/surge-verify";
/// The pod template annotation listing the key ids a relay was started with.
pub const KEY_IDS_ANNOTATION: &str = "surge.dev/integrity-key-ids";
const SIGN_KEY_VOLUME: &str = "signing-key";
const VERIFY_KEYS_VOLUME: &str = "verify-keys";

/// The ConfigMap with a Stream's trusted public keys.
pub fn verify_keys_name(stream: &str) -> String {
    format!("{stream}-verify-keys")
}

/// The `n`th trusted key's file name.
pub fn verify_key_file(n: usize) -> String {
    format!("key-{n}.pem")
}

/// The ConfigMap of trusted public keys, owned by the Stream.
pub fn build_verify_keys(target: &Target, keys: &Keys) -> ConfigMap {
    let mut labels = stream_selector(&target.stream);
    labels.insert(LABEL_COMPONENT.to_string(), "verify-keys".to_string());
    let data: BTreeMap<String, String> = keys
        .trusted
        .iter()
        .enumerate()
        .map(|(n, k)| (verify_key_file(n), k.to_pem()))
        .collect();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(verify_keys_name(&target.stream)),
            namespace: Some(target.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![target.owner.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// `--sign-key` for the origin, `--verify-key` per trusted key for the others.
pub fn integrity_args(tier: &TierPlan, keys: &Keys) -> Vec<String> {
    match tier.kind {
        TierKind::Origin => vec![
            "--sign-key".to_string(),
            format!("{SIGN_KEY_DIR}/{SIGNING_ITEM}"),
        ],
        _ => (0..keys.trusted.len())
            .flat_map(|n| {
                [
                    "--verify-key".to_string(),
                    format!("{VERIFY_KEYS_DIR}/{}", verify_key_file(n)),
                ]
            })
            .collect(),
    }
}

/// `deployment` (of `tier`) with the keys' arguments, volume, mount and key-id annotation.
pub fn with_integrity(
    mut deployment: Deployment,
    target: &Target,
    tier: &TierPlan,
    keys: Option<&Keys>,
) -> Deployment {
    let Some(keys) = keys else {
        return deployment;
    };
    let (volume, mount, ids) = if tier.kind == TierKind::Origin {
        // An origin runs only where this cluster signs (no external upstreams).
        let Some(secret) = keys.secret.as_deref() else {
            return deployment;
        };
        let (v, m) = mounted(
            SIGN_KEY_VOLUME,
            Source::Secret(secret),
            &[(SIGNING_ITEM, SIGNING_ITEM)],
            SIGN_KEY_DIR,
        );
        (v, m, keys.signing.id().to_string())
    } else {
        let files: Vec<(String, String)> = (0..keys.trusted.len())
            .map(|n| (verify_key_file(n), verify_key_file(n)))
            .collect();
        let items: Vec<(&str, &str)> = files
            .iter()
            .map(|(k, p)| (k.as_str(), p.as_str()))
            .collect();
        let (v, m) = mounted(
            VERIFY_KEYS_VOLUME,
            Source::ConfigMap(&verify_keys_name(&target.stream)),
            &items,
            VERIFY_KEYS_DIR,
        );
        let ids: Vec<String> = keys.trusted.iter().map(|k| k.id().to_string()).collect();
        (v, m, ids.join(","))
    };
    let Some(template) = deployment.spec.as_mut().map(|s| &mut s.template) else {
        return deployment;
    };
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(KEY_IDS_ANNOTATION.to_string(), ids);
    if let Some(pod) = template.spec.as_mut() {
        pod.volumes.get_or_insert_with(Vec::new).push(volume);
        if let Some(relay) = pod.containers.first_mut() {
            relay
                .args
                .get_or_insert_with(Vec::new)
                .extend(integrity_args(tier, keys));
            relay.volume_mounts.get_or_insert_with(Vec::new).push(mount);
        }
    }
    deployment
}
