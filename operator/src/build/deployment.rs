//! The Deployment of one tier.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, DownwardAPIVolumeFile, DownwardAPIVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, Lifecycle, LifecycleHandler, ObjectFieldSelector, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SleepAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Target, service_host};
use crate::config::OperatorConfig;
use crate::crd::StreamSpec;
use crate::labels::{POD_ADVERTISE_HOST, TierKind, tier_labels, tier_selector};
use crate::sizing::viewers_per_edge;
use crate::tree::{HostPorts, TierPlan};

/// Environment variable the relay reads its `--advertise-host` from.
pub const ADVERTISE_HOST_ENV: &str = "SURGE_ADVERTISE_HOST";

/// Where a `hostPort` edge's pod annotations are mounted (a Downward API volume).
pub const POD_INFO_DIR: &str = "/etc/surge-pod";
/// The file there holding the pod's `surge.dev/advertise-host` annotation.
pub const ADVERTISE_HOST_ITEM: &str = "advertise-host";
const POD_INFO_VOLUME: &str = "pod-info";
/// The relay container's port for `--admin-listen` (stats, metrics, probes).
pub const ADMIN_PORT_NAME: &str = "admin";

fn host_ports(tier: &TierPlan) -> Option<HostPorts> {
    tier.placement.as_ref().and_then(|p| p.host_ports)
}

/// Command-line arguments of a relay in `tier` (see `surge-relay --help`).
pub fn relay_args(
    target: &Target,
    spec: &StreamSpec,
    tier: &TierPlan,
    cfg: &OperatorConfig,
) -> Vec<String> {
    let mut args = vec![
        "--rtmp-listen".to_string(),
        format!("0.0.0.0:{}", cfg.relay_rtmp_port),
        "--http-listen".to_string(),
        format!("0.0.0.0:{}", cfg.relay_http_port),
        // Stats, metrics and probes on a port no Service exposes.
        "--admin-listen".to_string(),
        format!("0.0.0.0:{}", cfg.relay_admin_port),
        "--tier".to_string(),
        tier.kind.tier_name().to_string(),
        "--region".to_string(),
        tier.region.clone(),
        // On every series of the relay's /metrics, so a Stream's relays can be selected
        // however Prometheus finds them (PodMonitor, annotations, static targets).
        "--metrics-label".to_string(),
        format!("surge_namespace={}", target.namespace),
        "--metrics-label".to_string(),
        format!("surge_stream={}", target.stream),
    ];
    for upstream in &tier.upstreams {
        args.push("--upstream".to_string());
        args.push(format!(
            "rtmp://{}:{}/{}",
            service_host(upstream, &target.namespace, &cfg.cluster_domain),
            cfg.relay_rtmp_port,
            spec.app
        ));
    }
    // External upstreams (spec.upstream) in place of the origin, in their order.
    for url in &tier.external {
        args.push("--upstream".to_string());
        args.push(url.clone());
    }
    if tier.kind != TierKind::Origin {
        // Pull the stream before the first viewer arrives, so a new relay is Ready with a
        // warm GOP cache.
        args.push("--prewarm".to_string());
        args.push(format!("{}/{}", spec.app, target.stream));
    }
    // The origin's publish keys, as a mounted Secret file (never the keys themselves).
    args.extend(super::publish_keys::publish_keys_args(spec, tier));
    // RTMPS at the origin, HTTPS at the edges, from the mounted TLS Secret.
    args.extend(super::tls::tls_args(spec, tier));
    if tier.kind == TierKind::Edge {
        // viewersPerEdge is the sizing target; the hard cap is twice that, so viewers beyond
        // the forecast overflow onto running edges while new ones start instead of being refused.
        args.push("--max-viewers".to_string());
        args.push(max_viewers(viewers_per_edge(spec)).to_string());
        if let Some(mbps) = spec.tree.edge_egress_mbps {
            // Capacity follows the measured bitrate; until there is one, a viewer costs the
            // Stream's nominal bitrate (so the egress budget holds the derived edge size).
            args.push("--max-egress-mbps".to_string());
            args.push(mbps.to_string());
            args.push("--bitrate-floor-kbps".to_string());
            args.push(spec.bitrate_kbps.to_string());
        }
    }
    // Peers are polled on their admin port (each pod's IP, through the headless Services'
    // names): it answers /api/v1/streams, which the playback port does not.
    let admin = |svc: &str| {
        format!(
            "{}:{}",
            service_host(svc, &target.namespace, &cfg.cluster_domain),
            cfg.relay_admin_port
        )
    };
    if let Some(placement) = &tier.placement {
        for peer in &placement.peers {
            args.push("--placement-peer".to_string());
            args.push(admin(peer));
        }
        if !placement.overflow.is_empty() {
            args.push("--overflow".to_string());
            args.push(placement.overflow.join(","));
        }
    }
    if let Some(choice) = &tier.parents {
        args.push("--parent-peer".to_string());
        args.push(admin(&choice.parents));
        args.push("--sibling-peer".to_string());
        args.push(admin(&choice.siblings));
        args.push("--parent-fanout".to_string());
        args.push(choice.fanout.to_string());
    }
    if let Some(ports) = host_ports(tier) {
        // The node's external host, as the operator annotates the pod; the relay re-reads it
        // and falls back to SURGE_ADVERTISE_HOST (status.hostIP) while it is empty.
        args.push("--advertise-host-file".to_string());
        args.push(format!("{POD_INFO_DIR}/{ADVERTISE_HOST_ITEM}"));
        // Viewers sent here use the node's ports.
        if ports.rtmp != cfg.relay_rtmp_port {
            args.push("--advertise-rtmp-port".to_string());
            args.push(ports.rtmp.to_string());
        }
        if ports.http != cfg.relay_http_port {
            args.push("--advertise-http-port".to_string());
            args.push(ports.http.to_string());
        }
    }
    if let Some(ms) = spec.relay.max_write_delay_ms.filter(|ms| *ms > 0) {
        args.push("--max-write-delay".to_string());
        args.push(format!("{ms}ms"));
    }
    args.push("--shutdown-grace".to_string());
    args.push(format!("{}s", cfg.relay_shutdown_grace_seconds));
    args.push("--log-format".to_string());
    args.push("json".to_string());
    args.extend(spec.relay.extra_args.iter().cloned());
    args
}

/// An edge's `--max-viewers`: twice the viewers it is sized for.
pub fn max_viewers(viewers_per_edge: u32) -> u64 {
    u64::from(viewers_per_edge) * 2
}

fn quantities(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    if m.is_empty() {
        None
    } else {
        Some(
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect(),
        )
    }
}

fn http_probe(path: &str, port: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(port.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// The pod's `surge.dev/advertise-host` annotation as a file (updated in place when the
/// annotation changes, so the relay follows it without a restart).
fn pod_info_volume() -> Volume {
    Volume {
        name: POD_INFO_VOLUME.to_string(),
        downward_api: Some(DownwardAPIVolumeSource {
            items: Some(vec![DownwardAPIVolumeFile {
                path: ADVERTISE_HOST_ITEM.to_string(),
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.annotations['{POD_ADVERTISE_HOST}']"),
                    ..ObjectFieldSelector::default()
                }),
                ..DownwardAPIVolumeFile::default()
            }]),
            ..DownwardAPIVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The `prometheus.io/*` annotations that Prometheus' usual `kubernetes-pods` scrape job
/// reads: the relay's metrics are on its admin port (the chart's PodMonitor finds them too).
pub fn scrape_annotations(admin_port: u16) -> BTreeMap<String, String> {
    [
        ("prometheus.io/scrape", "true".to_string()),
        ("prometheus.io/port", admin_port.to_string()),
        ("prometheus.io/path", "/metrics".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The Deployment running `tier`.
pub fn build_deployment(
    target: &Target,
    spec: &StreamSpec,
    tier: &TierPlan,
    cfg: &OperatorConfig,
) -> Deployment {
    let labels = tier_labels(&target.stream, &tier.region, tier.kind);
    let selector = tier_selector(&target.stream, &tier.region, tier.kind);
    let resources = spec
        .relay
        .resources
        .clone()
        .unwrap_or(ResourceRequirements {
            requests: quantities(&cfg.relay_requests),
            limits: quantities(&cfg.relay_limits),
            ..ResourceRequirements::default()
        });
    let node_ports = host_ports(tier);
    let host_ports = node_ports.is_some();
    let port = |name: &str, number: u16, node: Option<u16>| ContainerPort {
        name: Some(name.to_string()),
        container_port: i32::from(number),
        host_port: node.map(i32::from),
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    };
    // The relay reports this address to locators, which put it in redirect URLs.
    let env = host_ports.then(|| {
        vec![EnvVar {
            name: ADVERTISE_HOST_ENV.to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "status.hostIP".to_string(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]
    });
    let mut container = Container {
        name: "relay".to_string(),
        image: Some(
            spec.relay
                .image
                .clone()
                .unwrap_or_else(|| cfg.relay_image.clone()),
        ),
        image_pull_policy: Some(cfg.relay_image_pull_policy.clone()),
        args: Some(relay_args(target, spec, tier, cfg)),
        ports: Some(vec![
            port("rtmp", cfg.relay_rtmp_port, node_ports.map(|p| p.rtmp)),
            port("http", cfg.relay_http_port, node_ports.map(|p| p.http)),
            // Never on a host port: the node's address is public for hostPort edges.
            port(ADMIN_PORT_NAME, cfg.relay_admin_port, None),
        ]),
        env,
        volume_mounts: host_ports.then(|| {
            vec![VolumeMount {
                name: POD_INFO_VOLUME.to_string(),
                mount_path: POD_INFO_DIR.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            }]
        }),
        readiness_probe: Some(http_probe("/readyz", ADMIN_PORT_NAME, 2, 1)),
        liveness_probe: Some(http_probe("/healthz", ADMIN_PORT_NAME, 10, 3)),
        // Give Services time to stop routing new viewers here before SIGTERM starts the
        // relay's own drain (--shutdown-grace).
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: i64::from(cfg.relay_prestop_seconds),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: Some(resources),
        ..Container::default()
    };
    let pod = super::pod_settings::pod_settings(&target.stream, &tier.region, tier.kind, spec, cfg);
    container.security_context = Some(pod.container_security_context);
    let mut volumes = Vec::new();
    if host_ports {
        volumes.push(pod_info_volume());
    }
    if let Some((volume, mount)) = super::publish_keys::publish_keys_volume(spec, tier) {
        volumes.push(volume);
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(mount);
    }
    if let Some((volume, mount)) = super::tls::tls_volume(spec, tier) {
        volumes.push(volume);
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(mount);
    }
    if let Some(port) = super::tls::tls_container_port(spec, tier) {
        container.ports.get_or_insert_with(Vec::new).push(port);
    }
    let grace =
        i64::from(cfg.relay_prestop_seconds) + i64::from(cfg.relay_shutdown_grace_seconds) + 5;
    Deployment {
        metadata: ObjectMeta {
            name: Some(tier.name.clone()),
            namespace: Some(target.namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![target.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(tier.replicas),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                // Never lose serving capacity during a rollout, except with host ports: a
                // new pod needs a node whose ports are free, and when every node holds an edge
                // only removing an old one first makes room. Not the origin: its one relay
                // holds the broadcast, so a rollout waits for a node with free ports.
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(i32::from(
                        host_ports && tier.kind != TierKind::Origin,
                    ))),
                    max_surge: Some(IntOrString::String("25%".to_string())),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(scrape_annotations(cfg.relay_admin_port)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    node_selector: Some(tier.node_selector.clone()),
                    termination_grace_period_seconds: Some(grace),
                    security_context: Some(pod.security_context),
                    image_pull_secrets: pod.image_pull_secrets,
                    tolerations: pod.tolerations,
                    affinity: pod.affinity,
                    topology_spread_constraints: pod.topology_spread_constraints,
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}
