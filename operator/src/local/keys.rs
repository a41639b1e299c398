//! Signed frames in `surge-operator local`: the Secret and ConfigMap the cluster mounts are
//! files here. Each Stream's signing key is `<log dir>/keys/<namespace>-<stream>/signing.key`
//! (generated the first time, kept after; a `trusted.pem` put next to it is read as the
//! Secret's would be), the trusted public keys are written to `verify/` there, and the
//! relays' `--sign-key` / `--verify-key` paths are pointed at those files ([`localize`], pure).

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use surge_integrity::SigningKey;

use crate::build::integrity::{SIGN_KEY_DIR, VERIFY_KEYS_DIR};
use crate::integrity::{SIGNING_ITEM, SecretRead, TRUSTED_ITEM};

/// Where a Stream's key files are.
pub fn key_dir(log_dir: &Path, namespace: &str, stream: &str) -> PathBuf {
    log_dir.join("keys").join(format!("{namespace}-{stream}"))
}

/// The key files of `dir` as the Secret's data; `signing.key` is generated when missing.
pub fn read_or_create(dir: &Path) -> SecretRead {
    let signing = dir.join(SIGNING_ITEM);
    if !signing.exists()
        && let Err(e) = create(dir, &signing)
    {
        return SecretRead::Failed(format!("{}: {e}", signing.display()));
    }
    let mut data = std::collections::BTreeMap::new();
    for item in [SIGNING_ITEM, TRUSTED_ITEM] {
        match std::fs::read(dir.join(item)) {
            Ok(bytes) => {
                data.insert(item.to_string(), bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return SecretRead::Failed(format!("{}: {e}", dir.join(item).display())),
        }
    }
    SecretRead::Data(data)
}

fn create(dir: &Path, path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let pem = SigningKey::generate_pem().map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    // Readable by this user only; create_new: never replace a key.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(pem.as_bytes())?;
    tracing::info!(path = %path.display(), "generated a signing key");
    Ok(())
}

/// Writes the ConfigMap's files into `dir/verify/` (each replaced whole, atomically).
pub fn write_verify_keys(dir: &Path, map: &ConfigMap) -> std::io::Result<()> {
    let verify = dir.join("verify");
    std::fs::create_dir_all(&verify)?;
    for (name, text) in map.data.iter().flatten() {
        let tmp = verify.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, verify.join(name))?;
    }
    Ok(())
}

/// `objects` with the key paths of the pods (under the Secret's and the ConfigMap's mount
/// directories) replaced by the files in `dir`.
pub fn localize(objects: &[(Service, Deployment)], dir: &Path) -> Vec<(Service, Deployment)> {
    let local = |arg: &str| {
        if let Some(rest) = arg.strip_prefix(&format!("{SIGN_KEY_DIR}/")) {
            dir.join(rest).display().to_string()
        } else if let Some(rest) = arg.strip_prefix(&format!("{VERIFY_KEYS_DIR}/")) {
            dir.join("verify").join(rest).display().to_string()
        } else {
            arg.to_string()
        }
    };
    objects
        .iter()
        .cloned()
        .map(|(service, mut deployment)| {
            let containers = deployment
                .spec
                .as_mut()
                .and_then(|s| s.template.spec.as_mut())
                .map(|p| &mut p.containers);
            for c in containers.into_iter().flatten() {
                if let Some(args) = c.args.as_mut() {
                    *args = args.iter().map(|a| local(a)).collect();
                }
            }
            (service, deployment)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    #[test]
    fn key_paths_point_at_the_local_files_and_nothing_else_changes() {
        let args = [
            "--tier",
            "edge",
            "--verify-key",
            "/etc/surge-verify/key-0.pem",
            "--sign-key",
            "/etc/surge-signing/signing.key",
            "--upstream",
            "rtmp://s-origin:1935/live",
        ];
        let deployment = Deployment {
            spec: Some(DeploymentSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            args: Some(args.iter().map(|a| a.to_string()).collect()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                    ..PodTemplateSpec::default()
                },
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        };
        let out = localize(&[(Service::default(), deployment)], Path::new("/tmp/k"));
        let args = out[0]
            .1
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref());
        let args = args.map(|p| p.containers[0].args.clone().unwrap_or_default());
        assert_eq!(
            args.unwrap_or_default().join(" "),
            "--tier edge --verify-key /tmp/k/verify/key-0.pem --sign-key /tmp/k/signing.key \
             --upstream rtmp://s-origin:1935/live"
        );
    }

    #[test]
    fn a_key_is_generated_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("surge-local-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let SecretRead::Data(first) = read_or_create(&dir) else {
            panic!("no key generated in {}", dir.display());
        };
        let SecretRead::Data(second) = read_or_create(&dir) else {
            panic!("the key went away");
        };
        assert_eq!(first, second, "never regenerated while it exists");
        assert!(SigningKey::from_pem(&first[SIGNING_ITEM]).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
