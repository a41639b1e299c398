//! A Secret (or ConfigMap) mounted read-only as a directory: the one builder behind the
//! publish keys, the TLS certificate and the signing keys. Always a directory, never a
//! `subPath` mount, which the kubelet would never update.

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, KeyToPath, SecretVolumeSource, Volume, VolumeMount,
};

/// Where a volume's files come from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    Secret(&'a str),
    ConfigMap(&'a str),
}

/// `items` (data key, file name) of `source` as volume `name`, mounted at `dir`.
pub fn mounted(
    name: &str,
    source: Source<'_>,
    items: &[(&str, &str)],
    dir: &str,
) -> (Volume, VolumeMount) {
    let items = Some(
        items
            .iter()
            .map(|(key, path)| KeyToPath {
                key: key.to_string(),
                path: path.to_string(),
                ..KeyToPath::default()
            })
            .collect(),
    );
    // The default mode (0644): the relay image may run as any user, and a stricter mode
    // would need an fsGroup to stay readable.
    let mut volume = Volume {
        name: name.to_string(),
        ..Volume::default()
    };
    match source {
        Source::Secret(secret) => {
            volume.secret = Some(SecretVolumeSource {
                secret_name: Some(secret.to_string()),
                items,
                ..SecretVolumeSource::default()
            })
        }
        Source::ConfigMap(map) => {
            volume.config_map = Some(ConfigMapVolumeSource {
                name: map.to_string(),
                items,
                ..ConfigMapVolumeSource::default()
            })
        }
    }
    let mount = VolumeMount {
        name: name.to_string(),
        mount_path: dir.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    (volume, mount)
}
