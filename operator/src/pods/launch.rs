//! A relay pod as a relay process on this machine. Pure.
//!
//! The pod's relay container is run with its own arguments, except:
//! - `--rtmp-listen` / `--http-listen` bind the pod IP (the port kept; added with the relay's
//!   default port when the pod has none, so two relays never share an address);
//!   `--admin-listen` too when the pod sets it (the relay has none by default);
//! - `--hosts-file` names the runner's file, where Service names resolve to pod IPs;
//! - environment from the Downward API gets the pod's values: `status.podIP(s)`,
//!   `status.hostIP(s)` (the pod IP if the node has none), `metadata.name`,
//!   `metadata.namespace`.

use std::net::Ipv4Addr;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::pod_files::{Mount, rewrite_mounted_paths};
use crate::local::downward::{PodValues, fill_env};
use crate::local::rewrite::Launch;

/// The relay's own defaults, for a pod that sets no listen address.
const DEFAULT_LISTENS: [(&str, u16); 2] = [("--rtmp-listen", 1935), ("--http-listen", 8080)];
/// Listen flags the relay goes without when the pod does not set them.
const OPTIONAL_LISTENS: [&str; 1] = ["--admin-listen"];

/// Why a pod cannot be run as a relay.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error("the pod has no containers")]
    NoContainer,
    #[error("{flag} {value}: not HOST:PORT")]
    BadListen { flag: String, value: String },
    #[error(
        "environment variable {0}: only values and status.podIP, status.hostIP, metadata.name and metadata.namespace are supported"
    )]
    UnsupportedEnv(String),
}

/// A pod that gets a relay: Running, with an IPv4 pod IP, not being deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runnable {
    pub uid: String,
    pub name: String,
    pub ip: Ipv4Addr,
}

/// `Some` when `pod` should have a relay running now.
pub fn runnable(pod: &Pod) -> Option<Runnable> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip = status.pod_ip.as_deref()?.parse().ok()?;
    let name = pod.metadata.name.clone()?;
    Some(Runnable {
        // A pod re-created under the same name is another pod.
        uid: pod.metadata.uid.clone().unwrap_or_else(|| name.clone()),
        name,
        ip,
    })
}

/// How long the relay container's preStop hook sleeps (`lifecycle.preStop.sleep.seconds`; 0
/// without one): the pod runner keeps a deleted pod's relay running and reachable on its host
/// ports this long before SIGTERM, as a kubelet runs the hook while endpoints drop the pod.
pub fn pre_stop_sleep(pod: &Pod) -> std::time::Duration {
    let seconds = relay_container(pod)
        .and_then(|c| c.lifecycle.as_ref())
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.sleep.as_ref())
        .map_or(0, |s| s.seconds);
    std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// The relay container: the one named `relay`, else the first.
pub(crate) fn relay_container(pod: &Pod) -> Option<&Container> {
    let containers = &pod.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| c.name == "relay")
        .or_else(|| containers.first())
}

/// The arguments and environment of the relay for `pod` at `ip`.
pub fn launch(pod: &Pod, ip: Ipv4Addr, hosts_file: &Path) -> Result<Launch, LaunchError> {
    launch_on(pod, ip, hosts_file, None, &[])
}

/// [`launch`] on a node whose host is `node_host` (its `status.hostIP` then, instead of the
/// pod's), with paths under `mounts` moved to their local directories
/// ([`super::pod_files`]).
pub fn launch_on(
    pod: &Pod,
    ip: Ipv4Addr,
    hosts_file: &Path,
    node_host: Option<Ipv4Addr>,
    mounts: &[Mount],
) -> Result<Launch, LaunchError> {
    let container = relay_container(pod).ok_or(LaunchError::NoContainer)?;
    let args = rewrite_args(container.args.as_deref().unwrap_or_default(), ip)?;
    let mut args = rewrite_mounted_paths(&args, mounts);
    args.push("--hosts-file".to_string());
    args.push(hosts_file.display().to_string());
    let host_ip = node_host.map(|h| h.to_string()).unwrap_or_else(|| {
        pod.status
            .as_ref()
            .and_then(|s| s.host_ip.clone())
            .unwrap_or_else(|| ip.to_string())
    });
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let pod_ip = ip.to_string();
    let values = PodValues {
        pod_ip: &pod_ip,
        host_ip: &host_ip,
        name,
        namespace,
    };
    let env = fill_env(container, &values).map_err(LaunchError::UnsupportedEnv)?;
    Ok(Launch { args, env })
}

/// `args` with the listen addresses on `ip` and any `--hosts-file` left out (the runner's
/// is added).
fn rewrite_args(args: &[String], ip: Ipv4Addr) -> Result<Vec<String>, LaunchError> {
    let mut out = Vec::with_capacity(args.len() + 6);
    let mut seen = [false; DEFAULT_LISTENS.len()];
    let mut i = 0;
    while i < args.len() {
        let token = args[i].as_str();
        i += 1;
        let (flag, value) = match token.split_once('=').filter(|(f, _)| f.starts_with("--")) {
            Some((flag, value)) => (flag, Some(value)),
            None => {
                let value = args
                    .get(i)
                    .map(String::as_str)
                    .filter(|v| token.starts_with("--") && !v.starts_with("--"));
                if value.is_some() {
                    i += 1;
                }
                (token, value)
            }
        };
        if flag == "--hosts-file" {
            continue;
        }
        let default_listen = DEFAULT_LISTENS.iter().position(|(f, _)| *f == flag);
        let listen = default_listen.is_some() || OPTIONAL_LISTENS.contains(&flag);
        match (listen, value) {
            (true, Some(value)) => {
                let port = value
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .ok_or_else(|| LaunchError::BadListen {
                        flag: flag.to_string(),
                        value: value.to_string(),
                    })?;
                if let Some(n) = default_listen {
                    seen[n] = true;
                }
                out.push(flag.to_string());
                out.push(format!("{ip}:{port}"));
            }
            (_, Some(value)) if token.contains('=') => out.push(format!("{flag}={value}")),
            (_, Some(value)) => {
                out.push(flag.to_string());
                out.push(value.to_string());
            }
            (_, None) => out.push(flag.to_string()),
        }
    }
    for ((flag, port), seen) in DEFAULT_LISTENS.iter().zip(seen) {
        if !seen {
            out.push(flag.to_string());
            out.push(format!("{ip}:{port}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn strings(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.to_string(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }
    }

    fn pod(args: &str, env: Vec<EnvVar>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("s-edge-abc".to_string()),
                namespace: Some("media".to_string()),
                uid: Some("u1".to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![
                    Container {
                        name: "sidecar".to_string(),
                        ..Container::default()
                    },
                    Container {
                        name: "relay".to_string(),
                        args: Some(strings(args)),
                        env: Some(env),
                        ..Container::default()
                    },
                ],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".to_string()),
                pod_ip: Some("127.31.0.7".to_string()),
                host_ip: Some("10.0.0.2".to_string()),
                ..PodStatus::default()
            }),
        }
    }

    const IP: Ipv4Addr = Ipv4Addr::new(127, 31, 0, 7);

    #[test]
    fn the_relay_containers_pre_stop_sleep_is_read() {
        use k8s_openapi::api::core::v1::{Lifecycle, LifecycleHandler, SleepAction};
        let mut p = pod("--tier edge", vec![]);
        assert_eq!(pre_stop_sleep(&p), std::time::Duration::ZERO);
        let relay = &mut p.spec.as_mut().expect("spec").containers[1];
        relay.lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: 5 }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        });
        assert_eq!(pre_stop_sleep(&p), std::time::Duration::from_secs(5));
        // A negative value (refused by the API server) is no sleep, not a panic.
        let relay = &mut p.spec.as_mut().expect("spec").containers[1];
        if let Some(s) = relay
            .lifecycle
            .as_mut()
            .and_then(|l| l.pre_stop.as_mut())
            .and_then(|h| h.sleep.as_mut())
        {
            s.seconds = -3;
        }
        assert_eq!(pre_stop_sleep(&p), std::time::Duration::ZERO);
    }

    #[test]
    fn listen_addresses_bind_the_pod_ip_and_the_rest_is_kept() {
        let p = pod(
            "--rtmp-listen 0.0.0.0:31935 --http-listen=0.0.0.0:38080 \
             --admin-listen 0.0.0.0:9090 \
             --upstream rtmp://s-origin.media.svc.cluster.local:31935/live --prewarm \
             --hosts-file /etc/other --shutdown-grace 30s",
            vec![],
        );
        let got = launch(&p, IP, Path::new("/tmp/h")).unwrap();
        assert_eq!(
            got.args,
            strings(
                "--rtmp-listen 127.31.0.7:31935 --http-listen 127.31.0.7:38080 \
                 --admin-listen 127.31.0.7:9090 \
                 --upstream rtmp://s-origin.media.svc.cluster.local:31935/live --prewarm \
                 --shutdown-grace 30s --hosts-file /tmp/h"
            )
        );
        assert!(got.env.is_empty());
    }

    #[test]
    fn missing_listen_addresses_get_the_relay_defaults_on_the_pod_ip() {
        let got = launch(&pod("--prewarm", vec![]), IP, Path::new("h")).unwrap();
        assert_eq!(
            got.args,
            strings(
                "--prewarm --rtmp-listen 127.31.0.7:1935 --http-listen 127.31.0.7:8080 --hosts-file h"
            )
        );
        let err = launch(&pod("--http-listen nowhere", vec![]), IP, Path::new("h")).unwrap_err();
        assert_eq!(err.to_string(), "--http-listen nowhere: not HOST:PORT");
    }

    #[test]
    fn downward_api_values_are_the_pods() {
        let env = vec![
            field("POD_IP", "status.podIP"),
            field("HOST_IP", "status.hostIP"),
            field("POD_NAME", "metadata.name"),
            field("POD_NAMESPACE", "metadata.namespace"),
            EnvVar {
                name: "SURGE_X".to_string(),
                value: Some("1".to_string()),
                ..EnvVar::default()
            },
        ];
        let got = launch(&pod("", env), IP, Path::new("h")).unwrap();
        let pairs: Vec<(&str, &str)> = got
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("POD_IP", "127.31.0.7"),
                ("HOST_IP", "10.0.0.2"),
                ("POD_NAME", "s-edge-abc"),
                ("POD_NAMESPACE", "media"),
                ("SURGE_X", "1"),
            ]
        );
        let err = launch(
            &pod("", vec![field("LIMIT", "spec.nodeName")]),
            IP,
            Path::new("h"),
        )
        .unwrap_err();
        assert_eq!(err, LaunchError::UnsupportedEnv("LIMIT".to_string()));
    }

    #[test]
    fn only_running_pods_with_an_ip_and_not_deleted_are_runnable() {
        let p = pod("", vec![]);
        assert_eq!(
            runnable(&p),
            Some(Runnable {
                uid: "u1".to_string(),
                name: "s-edge-abc".to_string(),
                ip: IP
            })
        );
        let mut pending = p.clone();
        pending.status.as_mut().unwrap().phase = Some("Pending".to_string());
        assert_eq!(runnable(&pending), None);
        let mut no_ip = p.clone();
        no_ip.status.as_mut().unwrap().pod_ip = None;
        assert_eq!(runnable(&no_ip), None);
        let mut deleted = p.clone();
        deleted.metadata.deletion_timestamp = Some(Time(Default::default()));
        assert_eq!(runnable(&deleted), None);
    }
}
