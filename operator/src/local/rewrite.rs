//! A relay Deployment's container, made runnable as a relay process on a loopback address. Pure.
//!
//! In the cluster a relay names other relays by Service DNS names
//! (`<service>.<namespace>.svc.<domain>`, in `--upstream rtmp://...`, `--placement-peer`,
//! `--parent-peer`, ...) and learns its own address from the Downward API. Locally:
//! - Service names are passed on unchanged: every relay gets `--hosts-file`, which the fleet
//!   keeps current ([`super::hosts_file`]), so names follow relays that come and go, as DNS
//!   does. Each name must be a Service of the tree ([`RewriteError::UnknownService`]), and a
//!   relay naming a normal Service is started only once a relay runs behind it
//!   ([`RewriteError::NoEndpoints`]; the fleet retries), so trees start top down (an
//!   `--upstream` outside the tree, from `spec.upstream`, counts as running);
//! - `--rtmp-listen` / `--http-listen` / `--admin-listen` get the relay's own address, the
//!   port kept (every relay has its own address, so one admin port serves them all);
//! - `--advertise-rtmp-port` / `--advertise-http-port` (node host ports) are left out;
//! - Downward API variables: `status.podIP(s)` and `status.hostIP(s)` are the relay's own
//!   address, `metadata.name` its name, `metadata.namespace` its namespace.
//!
//! Also here: which relays a Service selects ([`selected`]), for the hosts file and the
//! Service stand-ins.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, Service};

use super::downward::{PodValues, fill_env};

/// Flags whose value is the relay's own listening address.
const LISTEN_FLAGS: [&str; 3] = ["--rtmp-listen", "--http-listen", "--admin-listen"];

/// Flags left out: node host ports mapped onto other pod ports. Locally every relay has its
/// own address and is reached at its listening ports.
const DROPPED_FLAGS: [&str; 2] = ["--advertise-rtmp-port", "--advertise-http-port"];

/// Why a container cannot be run as a local relay (yet).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("Service {0} has no relay yet")]
    NoEndpoints(String),
    #[error("{0} names Service {1}, which is not part of the tree")]
    UnknownService(String, String),
    #[error("{flag} {value}: not HOST:PORT")]
    BadListen { flag: String, value: String },
    #[error(
        "environment variable {0}: only values and status.podIP, status.hostIP, metadata.name and metadata.namespace are supported"
    )]
    UnsupportedEnv(String),
}

/// A relay as the Services see it.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint<'a> {
    pub namespace: &'a str,
    /// Its pod labels (the Deployment's pod template labels).
    pub labels: &'a BTreeMap<String, String>,
    pub address: Ipv4Addr,
    pub ready: bool,
    /// Told to stop, draining.
    pub terminating: bool,
}

impl Endpoint<'_> {
    /// Ready and not draining: what a Service sends traffic to.
    pub fn serving(&self) -> bool {
        self.ready && !self.terminating
    }
}

/// The relay being started.
#[derive(Clone, Copy, Debug)]
pub struct Me<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub address: Ipv4Addr,
}

/// What to run: the relay binary's arguments and the environment to add.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Launch {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// The Services a tree has and the relays behind them.
#[derive(Clone, Copy, Debug)]
pub struct Fleet<'a> {
    pub services: &'a [Service],
    pub endpoints: &'a [Endpoint<'a>],
}

/// `<namespace>/<name>` of a Service.
pub fn service_key(service: &Service) -> String {
    format!(
        "{}/{}",
        service.metadata.namespace.as_deref().unwrap_or("default"),
        service.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `clusterIP: None`: its name stands for its relays' own addresses.
pub fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Whether a headless Service lists relays that are not Ready (`publishNotReadyAddresses`).
pub fn publishes_not_ready(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true)
}

/// The relays `service` selects (its selector against their labels, in its namespace), by
/// address. A Service without selector selects none.
pub fn selected<'e, 'a>(service: &Service, endpoints: &'e [Endpoint<'a>]) -> Vec<&'e Endpoint<'a>> {
    let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty());
    let mut out: Vec<&Endpoint<'a>> = endpoints
        .iter()
        .filter(|e| e.namespace == namespace)
        .filter(|e| selector.is_some_and(|sel| sel.iter().all(|(k, v)| e.labels.get(k) == Some(v))))
        .collect();
    out.sort_by_key(|e| e.address);
    out
}

/// `container`'s args and env for `me` (see the module doc).
pub fn launch(
    container: &Container,
    me: &Me<'_>,
    fleet: &Fleet<'_>,
) -> Result<Launch, RewriteError> {
    // No Secrets here either: spec.tls is ignored and the relays serve plain RTMP and HTTP.
    let (args, ignored_tls) =
        crate::build::tls::without_tls(container.args.clone().unwrap_or_default());
    if ignored_tls {
        tracing::warn!(relay = %me.name, "local mode ignores spec.tls: no RTMPS or HTTPS listeners");
    }
    let args = rewrite_args(&args, me, fleet)?;
    // No Secrets here: spec.publish.keySecretRef is ignored and the origin takes any publisher.
    let (args, ignored_keys) = crate::build::publish_keys::without_publish_keys(args);
    if ignored_keys {
        tracing::warn!(relay = %me.name, "local mode ignores spec.publish.keySecretRef: the origin accepts any publisher");
    }
    let address = me.address.to_string();
    let values = PodValues {
        pod_ip: &address,
        host_ip: &address,
        name: me.name,
        namespace: me.namespace,
    };
    let env = fill_env(container, &values).map_err(RewriteError::UnsupportedEnv)?;
    // Plain values may name Services too: those must be the tree's.
    let mut reach = Reach::default();
    for var in container.env.iter().flatten() {
        if let (Some(value), None) = (&var.value, &var.value_from) {
            check_value(value, fleet, &mut reach)?;
        }
    }
    reach.some_running()?;
    Ok(Launch { args, env })
}

/// The arguments with the listen addresses replaced and Service names checked.
pub fn rewrite_args(
    args: &[String],
    me: &Me<'_>,
    fleet: &Fleet<'_>,
) -> Result<Vec<String>, RewriteError> {
    let mut out = Vec::with_capacity(args.len());
    let mut reach = Reach::default();
    let mut i = 0;
    while i < args.len() {
        let token = &args[i];
        i += 1;
        if let Some((flag, value)) = token.split_once('=').filter(|(f, _)| f.starts_with("--")) {
            if DROPPED_FLAGS.contains(&flag) {
                continue;
            }
            out.push(format!(
                "{flag}={}",
                rewrite_flag_value(flag, value, me, fleet, &mut reach)?
            ));
            continue;
        }
        let value = args.get(i).filter(|_| token.starts_with("--"));
        match value.filter(|v| !v.starts_with("--")) {
            Some(value) => {
                i += 1;
                if DROPPED_FLAGS.contains(&token.as_str()) {
                    continue;
                }
                out.push(token.clone());
                out.push(rewrite_flag_value(token, value, me, fleet, &mut reach)?);
            }
            None => {
                check_value(token, fleet, &mut reach)?;
                out.push(token.clone());
            }
        }
    }
    reach.some_running()?;
    Ok(out)
}

/// The value `flag` is given instead of `value`: the relay's own address for a listen flag,
/// else `value` itself once its Service names are checked.
fn rewrite_flag_value(
    flag: &str,
    value: &str,
    me: &Me<'_>,
    fleet: &Fleet<'_>,
    reach: &mut Reach,
) -> Result<String, RewriteError> {
    if LISTEN_FLAGS.contains(&flag) {
        let port = value
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| RewriteError::BadListen {
                flag: flag.to_string(),
                value: value.to_string(),
            })?;
        return Ok(format!("{}:{port}", me.address));
    }
    check_value(value, fleet, reach)?;
    // An upstream outside the tree (spec.upstream) is there for the relay to try, as it is
    // for a pod: a relay naming one starts even while the Services it names run no relay.
    if flag == "--upstream"
        && split_host(value).is_some_and(|(_, h, _)| service_of_host(h).is_none())
    {
        reach.any_running = true;
    }
    Ok(value.to_string())
}

/// The normal (not headless) Services a relay's arguments name, and whether any has a relay.
#[derive(Default)]
struct Reach {
    first_empty: Option<String>,
    any_running: bool,
}

impl Reach {
    /// A relay starts once one of the Services it names runs a relay (so trees start top
    /// down); the others may have none, as a reflector level the plan does not use now has
    /// none: the relay passes over it, as it would on a cluster.
    fn some_running(&self) -> Result<(), RewriteError> {
        match &self.first_empty {
            Some(name) if !self.any_running => Err(RewriteError::NoEndpoints(name.clone())),
            _ => Ok(()),
        }
    }
}

/// Each comma-separated part of `value` that names a Service must name one of the tree's;
/// whether a normal one has a relay running goes into `reach`.
fn check_value(value: &str, fleet: &Fleet<'_>, reach: &mut Reach) -> Result<(), RewriteError> {
    for part in value.split(',') {
        let Some((_, host, _)) = split_host(part) else {
            continue;
        };
        let Some((name, namespace)) = service_of_host(host) else {
            continue;
        };
        let service = fleet
            .services
            .iter()
            .find(|s| {
                s.metadata.name.as_deref() == Some(name)
                    && s.metadata.namespace.as_deref().unwrap_or("default") == namespace
            })
            .ok_or_else(|| RewriteError::UnknownService(part.to_string(), name.to_string()))?;
        let running = selected(service, fleet.endpoints)
            .iter()
            .any(|e| !e.terminating);
        if is_headless(service) {
            continue;
        }
        if running {
            reach.any_running = true;
        } else if reach.first_empty.is_none() {
            reach.first_empty = Some(name.to_string());
        }
    }
    Ok(())
}

/// `(before, host, after)` of `scheme://host:port/path` or `host:port`; `None` without a
/// host that could be a DNS name.
fn split_host(value: &str) -> Option<(&str, &str, &str)> {
    let start = value.find("://").map_or(0, |p| p + 3);
    let rest = &value[start..];
    let end = rest.find([':', '/']).unwrap_or(rest.len());
    let host = &rest[..end];
    (!host.is_empty()).then(|| (&value[..start], host, &rest[end..]))
}

/// `(service, namespace)` of `<service>.<namespace>.svc[.<domain>]`.
fn service_of_host(host: &str) -> Option<(&str, &str)> {
    let mut labels = host.split('.');
    let (name, namespace, svc) = (labels.next()?, labels.next()?, labels.next()?);
    (svc == "svc" && !name.is_empty() && !namespace.is_empty()).then_some((name, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn labels(tier: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("tier".to_string(), tier.to_string())])
    }

    fn service(name: &str, tier: &str, headless: bool, not_ready_too: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("media".to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(labels(tier)),
                cluster_ip: headless.then(|| "None".to_string()),
                publish_not_ready_addresses: not_ready_too.then_some(true),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    struct World {
        services: Vec<Service>,
        origin: BTreeMap<String, String>,
        edge: BTreeMap<String, String>,
    }

    impl World {
        fn new() -> World {
            World {
                services: vec![
                    service("s-origin", "origin", false, false),
                    service("s-edge", "edge", false, false),
                    service("s-peers", "edge", true, true),
                    service("s-ready-peers", "edge", true, false),
                ],
                origin: labels("origin"),
                edge: labels("edge"),
            }
        }

        fn endpoint<'a>(
            &'a self,
            tier: &str,
            last: u8,
            ready: bool,
            terminating: bool,
        ) -> Endpoint<'a> {
            let (labels, third) = if tier == "origin" {
                (&self.origin, 0)
            } else {
                (&self.edge, 1)
            };
            Endpoint {
                namespace: "media",
                labels,
                address: Ipv4Addr::new(127, 200, third, last),
                ready,
                terminating,
            }
        }
    }

    fn me(last: u8) -> Me<'static> {
        Me {
            name: "s-edge-7",
            namespace: "media",
            address: Ipv4Addr::new(127, 200, 1, last),
        }
    }

    const UPSTREAM: &str = "--upstream rtmp://s-origin.media.svc.cluster.local:1935/live";

    #[test]
    fn listen_addresses_become_the_relays_own_with_the_same_ports() {
        let w = World::new();
        let fleet = Fleet {
            services: &w.services,
            endpoints: &[],
        };
        let out = rewrite_args(
            &args(
                "--rtmp-listen 0.0.0.0:1935 --http-listen=0.0.0.0:8080 \
                 --admin-listen 0.0.0.0:9090 --tier edge",
            ),
            &me(3),
            &fleet,
        )
        .unwrap();
        assert_eq!(
            out,
            args(
                "--rtmp-listen 127.200.1.3:1935 --http-listen=127.200.1.3:8080 \
                 --admin-listen 127.200.1.3:9090 --tier edge"
            )
        );
        // Host ports mean nothing locally.
        let out = rewrite_args(
            &args("--advertise-rtmp-port 1936 --tier reflector --advertise-http-port=8081"),
            &me(3),
            &fleet,
        )
        .unwrap();
        assert_eq!(out, args("--tier reflector"));
        assert_eq!(
            rewrite_args(&args("--http-listen 8080"), &me(3), &fleet),
            Err(RewriteError::BadListen {
                flag: "--http-listen".into(),
                value: "8080".into()
            })
        );
    }

    #[test]
    fn service_names_stay_once_a_relay_runs_behind_a_normal_one() {
        let w = World::new();
        let endpoints = [
            w.endpoint("origin", 2, false, false),
            w.endpoint("origin", 1, true, true),
        ];
        let fleet = Fleet {
            services: &w.services,
            endpoints: &endpoints,
        };
        // Not Ready yet, but running: the relay retries its upstream as against a Service.
        assert_eq!(
            rewrite_args(&args(UPSTREAM), &me(1), &fleet).unwrap(),
            args(UPSTREAM)
        );
        // Only a draining one: wait.
        let fleet = Fleet {
            services: &w.services,
            endpoints: &endpoints[1..],
        };
        assert_eq!(
            rewrite_args(&args(UPSTREAM), &me(1), &fleet),
            Err(RewriteError::NoEndpoints("s-origin".into()))
        );
    }

    #[test]
    fn a_relay_starts_once_one_of_its_upstream_services_runs_a_relay() {
        // Edges name an idle reflector level first, then the origin: the origin running is
        // enough; neither running: wait for the first one named.
        let w = World::new();
        let given = args(
            "--upstream rtmp://s-edge.media.svc.cluster.local:1935/live \
             --upstream rtmp://s-origin.media.svc.cluster.local:1935/live",
        );
        let endpoints = [w.endpoint("origin", 2, true, false)];
        let fleet = Fleet {
            services: &w.services,
            endpoints: &endpoints,
        };
        assert_eq!(rewrite_args(&given, &me(1), &fleet).unwrap(), given);
        let fleet = Fleet {
            services: &w.services,
            endpoints: &[],
        };
        assert_eq!(
            rewrite_args(&given, &me(1), &fleet),
            Err(RewriteError::NoEndpoints("s-edge".into()))
        );
    }

    #[test]
    fn an_upstream_outside_the_tree_lets_a_relay_start() {
        // spec.upstream: edges under an idle reflector level fall back to the external URL,
        // so they start with no relay behind the reflector Service.
        let w = World::new();
        let given = args(
            "--upstream rtmp://s-edge.media.svc.cluster.local:1935/live \
             --upstream rtmp://origin.example.net:1935/live",
        );
        let fleet = Fleet {
            services: &w.services,
            endpoints: &[],
        };
        assert_eq!(rewrite_args(&given, &me(1), &fleet).unwrap(), given);
    }

    #[test]
    fn headless_names_stay_even_with_no_relay_behind_them() {
        let w = World::new();
        let fleet = Fleet {
            services: &w.services,
            endpoints: &[],
        };
        let given = args(
            "--placement-peer s-peers.media.svc.cluster.local:8080 \
             --parent-peer=s-ready-peers.media.svc.cluster.local:8080,10.0.0.1:8080 --tier edge",
        );
        assert_eq!(rewrite_args(&given, &me(9), &fleet).unwrap(), given);
    }

    #[test]
    fn a_service_selects_its_relays_by_labels_and_namespace_by_address() {
        let w = World::new();
        let mut other = w.endpoint("edge", 1, true, false);
        other.namespace = "elsewhere";
        let endpoints = [
            w.endpoint("edge", 3, true, false),
            w.endpoint("origin", 1, true, false),
            w.endpoint("edge", 2, false, true),
            other,
        ];
        let picked: Vec<(Ipv4Addr, bool)> = selected(&w.services[2], &endpoints)
            .iter()
            .map(|e| (e.address, e.serving()))
            .collect();
        assert_eq!(
            picked,
            [
                (Ipv4Addr::new(127, 200, 1, 2), false),
                (Ipv4Addr::new(127, 200, 1, 3), true)
            ]
        );
        assert!(is_headless(&w.services[2]) && publishes_not_ready(&w.services[2]));
        assert!(!is_headless(&w.services[0]) && !publishes_not_ready(&w.services[3]));
        assert_eq!(service_key(&w.services[0]), "media/s-origin");
    }

    #[test]
    fn other_hosts_stay_and_unknown_services_are_errors() {
        let w = World::new();
        let fleet = Fleet {
            services: &w.services,
            endpoints: &[],
        };
        let kept =
            args("--upstream rtmp://example.com:1935/live --prewarm live/s --max-viewers 10");
        assert_eq!(rewrite_args(&kept, &me(1), &fleet).unwrap(), kept);
        // Another namespace's Service of the same name is not this one.
        assert_eq!(
            rewrite_args(
                &args("--upstream rtmp://s-origin.other.svc.cluster.local:1935/live"),
                &me(1),
                &fleet
            ),
            Err(RewriteError::UnknownService(
                "rtmp://s-origin.other.svc.cluster.local:1935/live".into(),
                "s-origin".into()
            ))
        );
    }

    #[test]
    fn downward_api_variables_are_the_relays_own() {
        let w = World::new();
        let endpoints = [w.endpoint("origin", 1, true, false)];
        let fleet = Fleet {
            services: &w.services,
            endpoints: &endpoints,
        };
        let field = |name: &str, path: &str| EnvVar {
            name: name.to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.to_string(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        };
        let container = Container {
            name: "relay".into(),
            args: Some(args("--tier edge")),
            env: Some(vec![
                field("SURGE_ADVERTISE_HOST", "status.hostIP"),
                field("POD_IP", "status.podIP"),
                field("POD", "metadata.name"),
                EnvVar {
                    name: "SURGE_UPSTREAM".into(),
                    value: Some("rtmp://s-origin.media.svc.cluster.local:1935/live".into()),
                    ..EnvVar::default()
                },
            ]),
            ..Container::default()
        };
        let launched = launch(&container, &me(4), &fleet).unwrap();
        assert_eq!(launched.args, args("--tier edge"));
        let env: Vec<(&str, &str)> = launched
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("SURGE_ADVERTISE_HOST", "127.200.1.4"),
                ("POD_IP", "127.200.1.4"),
                ("POD", "s-edge-7"),
                (
                    "SURGE_UPSTREAM",
                    "rtmp://s-origin.media.svc.cluster.local:1935/live"
                ),
            ]
        );
        let mut odd = container.clone();
        odd.env = Some(vec![field("NODE", "spec.nodeName")]);
        assert_eq!(
            launch(&odd, &me(4), &fleet),
            Err(RewriteError::UnsupportedEnv("NODE".into()))
        );
    }
}
