//! A relay Deployment's container, rewritten for a relay process on a loopback address. Pure.
//!
//! In the cluster a relay names other relays by Service DNS names
//! (`<service>.<namespace>.svc.<domain>`, in `--upstream rtmp://...`, `--placement-peer`,
//! `--parent-peer`, ...) and learns its own address from the Downward API. Locally there is
//! no DNS for those names, so each is replaced by the addresses of the relays the Service
//! selects (its selector against their pod labels, in its namespace):
//! - a normal Service stands for one relay: among its Ready relays (not draining), by
//!   address, the one at `(n - 1) mod count` where `n` is the last octet of the starting
//!   relay's own address, so siblings spread over the relays above them as a Service's
//!   load balancing would, and the choice is deterministic. With none Ready it is one of its
//!   running relays the same way (the relay retries its upstream until it answers, as it
//!   does against a Service without endpoints); with none at all the relay cannot start yet
//!   ([`RewriteError::NoEndpoints`]);
//! - a headless Service (`clusterIP: None`) stands for all of them: its Ready relays, or
//!   every relay with `publishNotReadyAddresses` (draining ones too, as Kubernetes does), so
//!   `--flag NAME:PORT` becomes one `--flag ADDR:PORT` per relay (none: the flag is left
//!   out), and a comma-separated value lists them all;
//! - `--rtmp-listen` / `--http-listen` get the relay's own address, the port kept;
//! - Downward API variables: `status.podIP(s)` and `status.hostIP(s)` are the relay's own
//!   address, `metadata.name` its name, `metadata.namespace` its namespace.
//!
//! The names are resolved once, when the relay starts: unlike DNS, a relay does not see
//! relays that come or go later.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, Service};

/// Flags whose value is the relay's own listening address.
const LISTEN_FLAGS: [&str; 2] = ["--rtmp-listen", "--http-listen"];

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

/// `container`'s args and env for `me`, every Service name replaced by relay addresses.
pub fn launch(
    container: &Container,
    me: &Me<'_>,
    fleet: &Fleet<'_>,
) -> Result<Launch, RewriteError> {
    let args = rewrite_args(container.args.as_deref().unwrap_or_default(), me, fleet)?;
    let mut env = Vec::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                let field = from.field_ref.as_ref().map(|f| f.field_path.as_str());
                match field {
                    Some("status.podIP" | "status.podIPs" | "status.hostIP" | "status.hostIPs") => {
                        me.address.to_string()
                    }
                    Some("metadata.name") => me.name.to_string(),
                    Some("metadata.namespace") => me.namespace.to_string(),
                    _ => return Err(RewriteError::UnsupportedEnv(var.name.clone())),
                }
            }
            (Some(value), None) => rewrite_value(value, me, fleet)?.join(","),
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(RewriteError::UnsupportedEnv("envFrom".to_string()));
    }
    Ok(Launch { args, env })
}

/// The arguments with Service names replaced (see the module doc).
pub fn rewrite_args(
    args: &[String],
    me: &Me<'_>,
    fleet: &Fleet<'_>,
) -> Result<Vec<String>, RewriteError> {
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let token = &args[i];
        i += 1;
        if let Some((flag, value)) = token.split_once('=').filter(|(f, _)| f.starts_with("--")) {
            for v in rewrite_flag_value(flag, value, me, fleet)? {
                out.push(format!("{flag}={v}"));
            }
            continue;
        }
        let value = args.get(i).filter(|_| token.starts_with("--"));
        match value.filter(|v| !v.starts_with("--")) {
            Some(value) => {
                i += 1;
                for v in rewrite_flag_value(token, value, me, fleet)? {
                    out.push(token.clone());
                    out.push(v);
                }
            }
            // A bare flag, or a positional argument (which cannot be repeated).
            None => out.push(rewrite_value(token, me, fleet)?.join(",")),
        }
    }
    Ok(out)
}

/// The values `flag` is given instead of `value`: one, several (a headless Service), or none.
fn rewrite_flag_value(
    flag: &str,
    value: &str,
    me: &Me<'_>,
    fleet: &Fleet<'_>,
) -> Result<Vec<String>, RewriteError> {
    if LISTEN_FLAGS.contains(&flag) {
        let port = value
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| RewriteError::BadListen {
                flag: flag.to_string(),
                value: value.to_string(),
            })?;
        return Ok(vec![format!("{}:{port}", me.address)]);
    }
    let values = rewrite_value(value, me, fleet)?;
    if value.contains(',') {
        // A comma-separated list stays one value.
        return Ok(if values.is_empty() {
            Vec::new()
        } else {
            vec![values.join(",")]
        });
    }
    Ok(values)
}

/// Each comma-separated part of `value` with its Service name replaced by addresses.
fn rewrite_value(value: &str, me: &Me<'_>, fleet: &Fleet<'_>) -> Result<Vec<String>, RewriteError> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let Some((before, host, after)) = split_host(part) else {
            out.push(part.to_string());
            continue;
        };
        let Some((name, namespace)) = service_of_host(host) else {
            out.push(part.to_string());
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
        for address in service_addresses(service, me, fleet)? {
            out.push(format!("{before}{address}{after}"));
        }
    }
    Ok(out)
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

/// The addresses `service` stands for, for `me` (see the module doc).
fn service_addresses(
    service: &Service,
    me: &Me<'_>,
    fleet: &Fleet<'_>,
) -> Result<Vec<Ipv4Addr>, RewriteError> {
    let name = service.metadata.name.clone().unwrap_or_default();
    let spec = service.spec.as_ref();
    let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
    let selector = spec
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty());
    let mut selected: Vec<&Endpoint<'_>> = fleet
        .endpoints
        .iter()
        .filter(|e| e.namespace == namespace)
        .filter(|e| selector.is_some_and(|sel| sel.iter().all(|(k, v)| e.labels.get(k) == Some(v))))
        .collect();
    selected.sort_by_key(|e| e.address);
    let ready: Vec<Ipv4Addr> = selected
        .iter()
        .filter(|e| e.ready && !e.terminating)
        .map(|e| e.address)
        .collect();
    let headless = spec.and_then(|s| s.cluster_ip.as_deref()) == Some("None");
    if headless {
        let all_of_them = spec.and_then(|s| s.publish_not_ready_addresses) == Some(true);
        return Ok(if all_of_them {
            selected.iter().map(|e| e.address).collect()
        } else {
            ready
        });
    }
    let candidates = if ready.is_empty() {
        selected
            .iter()
            .filter(|e| !e.terminating)
            .map(|e| e.address)
            .collect()
    } else {
        ready
    };
    if candidates.is_empty() {
        return Err(RewriteError::NoEndpoints(name));
    }
    let n = usize::from(me.address.octets()[3].saturating_sub(1));
    Ok(vec![candidates[n % candidates.len()]])
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
            &args("--rtmp-listen 0.0.0.0:1935 --http-listen=0.0.0.0:8080 --tier edge"),
            &me(3),
            &fleet,
        )
        .unwrap();
        assert_eq!(
            out,
            args("--rtmp-listen 127.200.1.3:1935 --http-listen=127.200.1.3:8080 --tier edge")
        );
        assert_eq!(
            rewrite_args(&args("--http-listen 8080"), &me(3), &fleet),
            Err(RewriteError::BadListen {
                flag: "--http-listen".into(),
                value: "8080".into()
            })
        );
    }

    #[test]
    fn a_normal_service_is_one_ready_relay_spread_by_the_callers_number() {
        let w = World::new();
        let endpoints = [
            w.endpoint("origin", 3, true, false),
            w.endpoint("origin", 1, true, false),
            w.endpoint("origin", 2, false, false),
            w.endpoint("origin", 4, true, true),
        ];
        let fleet = Fleet {
            services: &w.services,
            endpoints: &endpoints,
        };
        // Ready and not draining: .1 and .3; relay n gets the ((n - 1) mod 2)-th.
        let pick = |n| rewrite_args(&args(UPSTREAM), &me(n), &fleet).unwrap();
        assert_eq!(pick(1), args("--upstream rtmp://127.200.0.1:1935/live"));
        assert_eq!(pick(2), args("--upstream rtmp://127.200.0.3:1935/live"));
        assert_eq!(pick(3), args("--upstream rtmp://127.200.0.1:1935/live"));
    }

    #[test]
    fn with_none_ready_a_running_relay_and_with_none_an_error() {
        let w = World::new();
        let endpoints = [
            w.endpoint("origin", 1, false, true),
            w.endpoint("origin", 2, false, false),
        ];
        let fleet = Fleet {
            services: &w.services,
            endpoints: &endpoints,
        };
        assert_eq!(
            rewrite_args(&args(UPSTREAM), &me(1), &fleet).unwrap(),
            args("--upstream rtmp://127.200.0.2:1935/live")
        );
        let fleet = Fleet {
            services: &w.services,
            endpoints: &endpoints[..1],
        };
        assert_eq!(
            rewrite_args(&args(UPSTREAM), &me(1), &fleet),
            Err(RewriteError::NoEndpoints("s-origin".into()))
        );
    }

    #[test]
    fn a_headless_service_is_one_flag_per_relay() {
        let w = World::new();
        let endpoints = [
            w.endpoint("edge", 2, false, false),
            w.endpoint("edge", 1, true, false),
            w.endpoint("edge", 3, true, true),
            w.endpoint("origin", 1, true, false),
        ];
        let fleet = Fleet {
            services: &w.services,
            endpoints: &endpoints,
        };
        let out = rewrite_args(
            &args("--placement-peer s-peers.media.svc.cluster.local:8080 --overflow tier-above"),
            &me(9),
            &fleet,
        )
        .unwrap();
        assert_eq!(
            out,
            args(
                "--placement-peer 127.200.1.1:8080 --placement-peer 127.200.1.2:8080 \
                 --placement-peer 127.200.1.3:8080 --overflow tier-above"
            )
        );
        // Without publishNotReadyAddresses: the Ready ones; comma lists stay one value.
        let out = rewrite_args(
            &args("--parent-peer=s-ready-peers.media.svc.cluster.local:8080,10.0.0.1:8080"),
            &me(9),
            &fleet,
        )
        .unwrap();
        assert_eq!(out, args("--parent-peer=127.200.1.1:8080,10.0.0.1:8080"));
        // No relay behind it: the flag is left out.
        let fleet = Fleet {
            services: &w.services,
            endpoints: &endpoints[3..],
        };
        let out = rewrite_args(
            &args("--parent-peer s-ready-peers.media.svc.cluster.local:8080 --tier edge"),
            &me(9),
            &fleet,
        )
        .unwrap();
        assert_eq!(out, args("--tier edge"));
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
                ("SURGE_UPSTREAM", "rtmp://127.200.0.1:1935/live"),
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
