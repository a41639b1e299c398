//! The origin's publish keys (`spec.publish.keySecretRef`): the Secret mounted as a file the
//! relay reads with `--publish-keys-file`. The keys never appear in the pod spec or its
//! arguments, only the Secret's name; the kubelet rewrites the mounted file when the Secret
//! changes, and the relay re-reads it at the next publish.

use k8s_openapi::api::core::v1::{Volume, VolumeMount};

use crate::crd::{SecretKeyRef, StreamSpec};
use crate::labels::TierKind;
use crate::tree::TierPlan;

/// The relay flag naming the keys file.
pub const PUBLISH_KEYS_FLAG: &str = "--publish-keys-file";
/// Where the Secret is mounted in the origin's container (a directory: a Secret mounted with
/// `subPath` would never be updated).
pub const PUBLISH_KEYS_DIR: &str = "/etc/surge-publish";
/// The file there holding the keys.
pub const PUBLISH_KEYS_FILE: &str = "keys";
const PUBLISH_KEYS_VOLUME: &str = "publish-keys";

/// The Secret holding the publish keys, for a relay of `tier` (only the origin takes
/// publishers, so only it gets the keys).
fn secret_for<'s>(spec: &'s StreamSpec, tier: &TierPlan) -> Option<&'s SecretKeyRef> {
    if tier.kind != TierKind::Origin {
        return None;
    }
    spec.publish.as_ref()?.key_secret_ref.as_ref()
}

/// `--publish-keys-file PATH` for the origin of a Stream with a key Secret.
pub fn publish_keys_args(spec: &StreamSpec, tier: &TierPlan) -> Vec<String> {
    match secret_for(spec, tier) {
        Some(_) => vec![
            PUBLISH_KEYS_FLAG.to_string(),
            format!("{PUBLISH_KEYS_DIR}/{PUBLISH_KEYS_FILE}"),
        ],
        None => Vec::new(),
    }
}

/// The Secret volume and its read-only mount, for the origin of a Stream with a key Secret.
pub fn publish_keys_volume(spec: &StreamSpec, tier: &TierPlan) -> Option<(Volume, VolumeMount)> {
    let secret = secret_for(spec, tier)?;
    Some(super::secret_volume::mounted(
        PUBLISH_KEYS_VOLUME,
        super::secret_volume::Source::Secret(&secret.name),
        &[(secret.item(), PUBLISH_KEYS_FILE)],
        PUBLISH_KEYS_DIR,
    ))
}

/// `args` without `--publish-keys-file` and its value, and whether it was there:
/// `surge-operator local` has no Secrets, so its origin takes any publisher.
pub fn without_publish_keys(args: Vec<String>) -> (Vec<String>, bool) {
    let mut out = Vec::with_capacity(args.len());
    let mut found = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == PUBLISH_KEYS_FLAG {
            found = true;
            it.next();
        } else if a.starts_with(&format!("{PUBLISH_KEYS_FLAG}=")) {
            found = true;
        } else {
            out.push(a);
        }
    }
    (out, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_mode_drops_the_flag_and_its_value_only() {
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            without_publish_keys(args("--tier origin --publish-keys-file /etc/k --region eu")),
            (args("--tier origin --region eu"), true)
        );
        assert_eq!(
            without_publish_keys(args("--publish-keys-file=/etc/k --tier origin")),
            (args("--tier origin"), true)
        );
        assert_eq!(
            without_publish_keys(args("--tier edge")),
            (args("--tier edge"), false)
        );
    }
}
