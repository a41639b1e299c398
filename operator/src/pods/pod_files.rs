//! A relay pod's Downward API volumes as files on this machine, as the kubelet projects them:
//! each item of a `downwardAPI` volume mounted into the relay container becomes a file under
//! the runner's directory for the pod, and arguments naming a path under the mount name the
//! file there instead. The runner rewrites a file when its value changes (the kubelet updates
//! projected annotations in place), so a relay that re-reads it (`--advertise-host-file`)
//! follows the pod's annotations. Secret and ConfigMap volumes are projected the same way
//! ([`object_files`]), from the objects the runner lists. Pure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

/// One projected file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFile {
    /// Where the container would see it (`<mountPath>/<item path>`).
    pub mounted_at: String,
    /// Where it is on this machine.
    pub local: PathBuf,
    pub value: String,
}

/// A mount point in the container and the directory standing in for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub mount_path: String,
    pub local_dir: PathBuf,
}

/// The value of a Downward API field of `pod`: `metadata.name`, `metadata.namespace`,
/// `metadata.uid`, `metadata.annotations['k']` and `metadata.labels['k']` (empty when the key
/// is missing, as the kubelet writes it). `None` for other fields.
pub fn field_value(pod: &Pod, field_path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let keyed = |prefix: &str| {
        field_path
            .strip_prefix(prefix)?
            .strip_suffix("']")
            .map(str::to_string)
    };
    match field_path {
        "metadata.name" => return Some(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => return Some(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => return Some(meta.uid.clone().unwrap_or_default()),
        _ => {}
    }
    if let Some(key) = keyed("metadata.annotations['") {
        return Some(
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(&key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    if let Some(key) = keyed("metadata.labels['") {
        return Some(
            meta.labels
                .as_ref()
                .and_then(|l| l.get(&key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    None
}

/// The Downward API volumes `container` mounts, under `pod_dir/<volume>`, and their files.
/// Items with fields [`field_value`] cannot fill (or resource fields) are left out.
pub fn downward_files(
    pod: &Pod,
    container: &Container,
    pod_dir: &Path,
) -> (Vec<Mount>, Vec<PodFile>) {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    let (mut mounts, mut files) = (Vec::new(), Vec::new());
    for mount in container.volume_mounts.iter().flatten() {
        let Some(source) = volumes
            .into_iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .and_then(|v| v.downward_api.as_ref())
        else {
            continue;
        };
        // A volume name is a DNS label: safe as a directory name.
        let local_dir = pod_dir.join(&mount.name);
        for item in source.items.iter().flatten() {
            let Some(value) = item
                .field_ref
                .as_ref()
                .and_then(|f| field_value(pod, &f.field_path))
            else {
                continue;
            };
            let relative = item.path.trim_start_matches('/');
            if relative.split('/').any(|part| part == "..") {
                continue;
            }
            files.push(PodFile {
                mounted_at: format!("{}/{relative}", mount.mount_path.trim_end_matches('/')),
                local: local_dir.join(relative),
                value,
            });
        }
        mounts.push(Mount {
            mount_path: mount.mount_path.trim_end_matches('/').to_string(),
            local_dir,
        });
    }
    (mounts, files)
}

/// The data of the Secrets and ConfigMaps in the pods' namespace, by object name, as a
/// kubelet would read them for volumes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeSources {
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
}

/// The Secret and ConfigMap volumes `container` mounts, under `pod_dir/<volume>`, and their
/// files: each listed item (or every key when the volume lists none) under its path. A
/// source that does not exist (yet) projects nothing; the relay then fails to read its file
/// and is started again later, as a kubelet would wait for it.
pub fn object_files(
    pod: &Pod,
    container: &Container,
    pod_dir: &Path,
    sources: &VolumeSources,
) -> (Vec<Mount>, Vec<PodFile>) {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    let (mut mounts, mut files) = (Vec::new(), Vec::new());
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.into_iter().flatten().find(|v| v.name == mount.name) else {
            continue;
        };
        let (data, items) = if let Some(secret) = &volume.secret {
            let name = secret.secret_name.as_deref().unwrap_or_default();
            (sources.secrets.get(name), secret.items.as_ref())
        } else if let Some(map) = &volume.config_map {
            (sources.config_maps.get(&map.name), map.items.as_ref())
        } else {
            continue;
        };
        let local_dir = pod_dir.join(&mount.name);
        let wanted: Vec<(String, String)> = match items {
            Some(items) => items
                .iter()
                .map(|i| (i.key.clone(), i.path.clone()))
                .collect(),
            None => data
                .into_iter()
                .flat_map(|d| d.keys())
                .map(|k| (k.clone(), k.clone()))
                .collect(),
        };
        for (key, path) in wanted {
            let relative = path.trim_start_matches('/');
            let Some(value) = data.and_then(|d| d.get(&key)) else {
                continue;
            };
            if relative.split('/').any(|part| part == "..") {
                continue;
            }
            files.push(PodFile {
                mounted_at: format!("{}/{relative}", mount.mount_path.trim_end_matches('/')),
                local: local_dir.join(relative),
                value: value.clone(),
            });
        }
        mounts.push(Mount {
            mount_path: mount.mount_path.trim_end_matches('/').to_string(),
            local_dir,
        });
    }
    (mounts, files)
}

/// `args` with every path under a mount (as a whole argument or after `--flag=`) moved to the
/// mount's local directory.
pub fn rewrite_mounted_paths(args: &[String], mounts: &[Mount]) -> Vec<String> {
    let moved = |path: &str| -> Option<String> {
        mounts.iter().find_map(|m| {
            let rest = path.strip_prefix(&m.mount_path)?;
            let rest = rest.strip_prefix('/').filter(|_| !rest.is_empty())?;
            Some(m.local_dir.join(rest).display().to_string())
        })
    };
    args.iter()
        .map(|arg| {
            match arg.split_once('=').filter(|(f, _)| f.starts_with("--")) {
                Some((flag, value)) => moved(value).map(|v| format!("{flag}={v}")),
                None => moved(arg),
            }
            .unwrap_or_else(|| arg.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        DownwardAPIVolumeFile, DownwardAPIVolumeSource, ObjectFieldSelector, PodSpec, Volume,
        VolumeMount,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn item(path: &str, field: &str) -> DownwardAPIVolumeFile {
        DownwardAPIVolumeFile {
            path: path.to_string(),
            field_ref: Some(ObjectFieldSelector {
                field_path: field.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(annotation: Option<&str>) -> (Pod, Container) {
        let annotations =
            annotation.map(|v| [("surge.dev/advertise-host".to_string(), v.to_string())].into());
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("edge-1".into()),
                namespace: Some("live".into()),
                annotations,
                labels: Some([("tier".to_string(), "edge".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(vec![
                    Volume {
                        name: "pod-info".into(),
                        downward_api: Some(DownwardAPIVolumeSource {
                            items: Some(vec![
                                item(
                                    "advertise-host",
                                    "metadata.annotations['surge.dev/advertise-host']",
                                ),
                                item("tier", "metadata.labels['tier']"),
                                item("node", "spec.nodeName"),
                                item("../escape", "metadata.name"),
                            ]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Volume {
                        name: "keys".into(),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let container = Container {
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "pod-info".into(),
                    mount_path: "/etc/surge-pod".into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "keys".into(),
                    mount_path: "/etc/keys".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        (pod, container)
    }

    #[test]
    fn annotations_and_labels_become_files_under_the_pods_directory() {
        let (pod, container) = pod(Some("127.31.2.1"));
        let (mounts, files) = downward_files(&pod, &container, Path::new("/run/pods/edge-1"));
        assert_eq!(
            mounts,
            [Mount {
                mount_path: "/etc/surge-pod".into(),
                local_dir: "/run/pods/edge-1/pod-info".into()
            }]
        );
        let got: Vec<(&str, &str, &str)> = files
            .iter()
            .map(|f| {
                (
                    f.mounted_at.as_str(),
                    f.local.to_str().unwrap_or(""),
                    f.value.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/etc/surge-pod/advertise-host",
                    "/run/pods/edge-1/pod-info/advertise-host",
                    "127.31.2.1"
                ),
                (
                    "/etc/surge-pod/tier",
                    "/run/pods/edge-1/pod-info/tier",
                    "edge"
                ),
            ]
        );
    }

    #[test]
    fn a_missing_annotation_is_an_empty_file() {
        let (pod, container) = pod(None);
        let (_, files) = downward_files(&pod, &container, Path::new("/p"));
        assert_eq!(files[0].value, "");
    }

    #[test]
    fn paths_under_a_mount_move_to_its_directory() {
        let mounts = [Mount {
            mount_path: "/etc/surge-pod".into(),
            local_dir: "/run/pods/e/pod-info".into(),
        }];
        let args: Vec<String> = [
            "--advertise-host-file",
            "/etc/surge-pod/advertise-host",
            "--x=/etc/surge-pod/a",
            "/etc/surge-pods/other",
            "/etc/surge-pod",
            "--y",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            rewrite_mounted_paths(&args, &mounts),
            [
                "--advertise-host-file",
                "/run/pods/e/pod-info/advertise-host",
                "--x=/run/pods/e/pod-info/a",
                "/etc/surge-pods/other",
                "/etc/surge-pod",
                "--y"
            ]
        );
    }

    #[test]
    fn secret_and_config_map_volumes_become_files_the_arguments_name() {
        use crate::build::secret_volume::{Source, mounted};
        let (secret_volume, secret_mount) = mounted(
            "signing-key",
            Source::Secret("s-signing-key"),
            &[("signing.key", "signing.key")],
            "/etc/surge-signing",
        );
        let (map_volume, map_mount) = mounted(
            "verify-keys",
            Source::ConfigMap("s-verify-keys"),
            &[("key-0.pem", "key-0.pem"), ("key-1.pem", "key-1.pem")],
            "/etc/surge-verify",
        );
        let pod = Pod {
            spec: Some(PodSpec {
                volumes: Some(vec![secret_volume, map_volume]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let container = Container {
            volume_mounts: Some(vec![secret_mount, map_mount]),
            ..Default::default()
        };
        let text = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let sources = VolumeSources {
            secrets: [(
                "s-signing-key".to_string(),
                text(&[("signing.key", "PRIVATE"), ("other", "x")]),
            )]
            .into(),
            // key-1.pem is not there (yet): nothing is written for it.
            config_maps: [(
                "s-verify-keys".to_string(),
                text(&[("key-0.pem", "PUBLIC")]),
            )]
            .into(),
        };
        let (mounts, files) = object_files(&pod, &container, Path::new("/run/p"), &sources);
        let got: Vec<(&str, String, &str)> = files
            .iter()
            .map(|f| {
                (
                    f.mounted_at.as_str(),
                    f.local.display().to_string(),
                    f.value.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/etc/surge-signing/signing.key",
                    "/run/p/signing-key/signing.key".to_string(),
                    "PRIVATE"
                ),
                (
                    "/etc/surge-verify/key-0.pem",
                    "/run/p/verify-keys/key-0.pem".to_string(),
                    "PUBLIC"
                ),
            ]
        );
        let args: Vec<String> = [
            "--sign-key",
            "/etc/surge-signing/signing.key",
            "--verify-key=/etc/surge-verify/key-0.pem",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        assert_eq!(
            rewrite_mounted_paths(&args, &mounts),
            [
                "--sign-key",
                "/run/p/signing-key/signing.key",
                "--verify-key=/run/p/verify-keys/key-0.pem"
            ]
        );
        // A Secret that does not exist projects nothing (the relay waits, as for a kubelet).
        let (_, none) = object_files(
            &pod,
            &container,
            Path::new("/run/p"),
            &VolumeSources::default(),
        );
        assert!(none.is_empty());
    }
}
