//! `surge-operator`: run the controller, or print the Stream CRD.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::api::core::v1::{
    Affinity, PodSecurityContext, SecurityContext, Toleration, TopologySpreadConstraint,
};
use surge_flags::{duration, positive_duration};
use surge_operator::config::{
    OperatorConfig, RelayPodDefaults, parse_json, parse_key_values, parse_list,
};
use surge_operator::controller::{RunOptions, run};
use surge_operator::local::addresses::DEFAULT_FIRST_REGION_OCTET;
use surge_operator::local::run::{LocalOptions, default_log_dir, run as run_local};
use surge_operator::local::view::ViewMode;
use surge_operator::policy::ScalingPolicy;

/// Kubernetes operator for Surge: turns each `Stream` (surge.dev/v1alpha1) into a
/// geo-clustered tree of surge-relay Deployments (origin -> reflectors -> edges), sized by the
/// planner from viewer counts it scrapes from the relays.
#[derive(Parser, Debug)]
#[command(name = "surge-operator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller (in cluster, or with KUBECONFIG / ~/.kube/config).
    Run(Box<RunArgs>),
    /// Print the Stream CustomResourceDefinition as YAML (the source of crds/stream.yaml).
    Crd,
    /// Run Streams on this machine, without Kubernetes: the same reconcile as `run`, with
    /// relay Deployments run as surge-relay processes on loopback addresses.
    #[command(long_about = LOCAL_ABOUT)]
    Local(Box<LocalArgs>),
    /// Run a surge-relay process for every Running relay pod of a cluster whose pod IPs are
    /// local addresses (the kwok cluster of scripts/k8s), at the pod's IP with the pod's
    /// arguments; Service names resolve to pod IPs through a hosts file it keeps current.
    /// A relay stops (SIGTERM, SIGKILL after --stop-grace) when its pod goes; Ctrl-C or
    /// SIGTERM stops every relay it started.
    Pods(Box<PodsArgs>),
    /// Serve the Service stand-ins of a `surge-operator local` fleet from the table file it
    /// keeps (it starts this itself). A process of its own, so connections through a Service
    /// outlive an operator that is killed, and a restarted operator keeps it. Exits on
    /// SIGTERM or SIGINT, or once the table file is removed.
    StandIns(StandInsArgs),
}

#[derive(clap::Args, Debug)]
struct StandInsArgs {
    /// The table: a JSON list of {service, address, ports: [[listen, relay]], backends}.
    #[arg(long, value_name = "FILE")]
    table: PathBuf,
}

#[derive(clap::Args, Debug)]
struct PodsArgs {
    /// Namespace of the relay pods and Services (default: the kubeconfig's).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Label selector of the relay pods, e.g. surge.dev/stream=demo (default: every pod).
    #[arg(long, short = 'l')]
    selector: Option<String>,
    /// The surge-relay binary.
    #[arg(long, value_name = "PATH")]
    relay_bin: PathBuf,
    /// Where each relay's log goes (<pod>.log; default: <temp dir>/surge-pods-<pid>).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// The hosts file the relays read (default: <log dir>/hosts).
    #[arg(long, value_name = "PATH")]
    hosts_file: Option<PathBuf>,
    /// Cluster DNS domain of the Services' names.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// How often pods and Services are listed.
    #[arg(long, default_value = "1s", value_parser = positive_duration)]
    interval: Duration,
    /// How long a relay has to exit after SIGTERM before SIGKILL.
    #[arg(long, default_value = "30s", value_parser = duration)]
    stop_grace: Duration,
    /// Open each pod's host ports on its node's surge.dev/external-host annotation (a
    /// loopback address, see scripts/k8s/up SURGE_K8S_NODE_HOST_PREFIX), forwarded to the pod,
    /// and give its relay that host as status.hostIP; `hostPort` exposure then works as on
    /// real nodes.
    #[arg(long)]
    host_ports: bool,
    /// Stand in for a cloud's load balancers: every LoadBalancer Service gets an address
    /// PREFIX.x.y (e.g. 127.32) listening on its ports and forwarding each connection to one
    /// of its Ready pods, written into the Service's status.loadBalancer.ingress.
    #[arg(long, value_name = "PREFIX", value_parser = surge_operator::pods::exposure::parse_prefix)]
    load_balancers: Option<[u8; 2]>,
}

const LOCAL_ABOUT: &str = "\
Run Streams on this machine, without Kubernetes.

Each Stream file is validated as the operator validates a Stream (every problem on one line;
nothing starts if any file is invalid). Then, per Stream, the operator's own reconcile loop
runs: it scrapes the relays' /api/v1/streams, the planner sizes every tier from the viewer
counts and their growth, and each planned Deployment runs as surge-relay processes, one per
replica (scale-downs stop the least-loaded relays first, with SIGTERM and a drain; a crashed
relay is replaced). Scale events and flash crowds are logged.

Addresses: relay n of tier t in region r listens on 127.<B+r>.<t>.<n> with the standard
ports (RTMP 1935, HTTP 8080). B is --first-octet (200); regions are numbered from 0 in the
order origin region, then spec.regions, and each further Stream gets the next block of
octets; t is 0 for the origin, 1 for edges, 1+L for reflector level L. So the first Stream's
origin is rtmp://127.200.0.1:1935/APP/STREAM (publish there) and the first edge of its first
region http://127.200.1.1:8080/APP/STREAM.flv. Linux routes all of 127.0.0.0/8 to lo: no
setup needed. GET /api/v1/streams on --api-listen answers each Stream's spec, its status
(as the Kubernetes Stream's status: endpoints.ingest, endpoints.playback, tiers, conditions;
an endpoint names one relay of its tier, a Ready one first) and its relays (name, address,
pid, ready, draining, log). Durations in the log are trace time (see --speed).

Ctrl-C or SIGTERM stops every relay it started. Killed outright (SIGKILL, a crash), it
leaves its relays and its Service stand-ins (a process of their own, `surge-operator
stand-ins`) running, so viewers, the publisher and the tree's pulls go on; started again with
the same --log-dir (the default is one per --api-listen address), it adopts them from the
records in <log dir>/state/ (each relay checked by pid and start time) instead of starting a
second fleet, and keeps the signing keys in <log dir>/keys/.";

#[derive(clap::Args, Debug)]
struct LocalArgs {
    /// A Stream manifest (YAML, apiVersion surge.dev/v1alpha1, kind Stream; several
    /// documents allowed). Repeat for more files.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "STREAM.yaml",
        required = true
    )]
    files: Vec<PathBuf>,
    /// Run the control loop's clock this many times faster than the wall clock: the
    /// planner's time, the Stream's windows, --scrape-interval, --ready-delay and
    /// --drain-grace are in trace time, so `surge-load replay --speed X` lines up.
    #[arg(long, default_value_t = 1.0, value_parser = positive_speed)]
    speed: f64,
    /// A new relay is not Ready before this (emulated scheduling and image pull; trace time).
    #[arg(long, default_value = "30s", value_parser = duration)]
    ready_delay: Duration,
    /// How often relays are scraped and the tree re-planned (trace time).
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    scrape_interval: Duration,
    /// How long a stopped relay keeps serving its viewers (its --shutdown-grace; trace time).
    #[arg(long, default_value = "30s", value_parser = duration)]
    drain_grace: Duration,
    /// Address of GET /api/v1/streams, /metrics and /healthz.
    #[arg(long, default_value = "127.0.0.1:9090")]
    api_listen: SocketAddr,
    /// The surge-relay binary (default: next to this binary, then ../release/ beside its
    /// directory, then ./target/release/surge-relay).
    #[arg(long, value_name = "PATH")]
    relay_bin: Option<PathBuf>,
    /// Where each relay's log goes (<relay>.log), and the records a restarted operator adopts
    /// the fleet from (default: <temp dir>/surge-local-<api-listen address>-<port>).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Second octet of the first region's addresses (127.<octet>.x.x).
    #[arg(long, default_value_t = DEFAULT_FIRST_REGION_OCTET, value_parser = clap::value_parser!(u8).range(1..=254))]
    first_octet: u8,
    /// Which autoscaler sizes the edge tiers: surge (the planner's forecast), hpa (the
    /// Kubernetes HorizontalPodAutoscaler's default behaviour on the viewers metric, as the
    /// simulator's hpa policy: a sync every 15 s on the 30 s old metric, target
    /// viewersPerEdge, 10% tolerance, scale-up at most max(2x, +4) per sync, scale-down
    /// stabilisation 300 s; in trace time like everything else) or static (minEdges).
    #[arg(long, value_enum, default_value_t = ScalingPolicy::Surge)]
    policy: ScalingPolicy,
    /// A live view on standard output, redrawn every second: each Stream's `kubectl get
    /// streams` row, per region viewers, forecast, edges ready/desired and reflectors, and
    /// the latest scale events. While it is drawn the log goes to <log dir>/operator.log.
    /// auto: when standard output is a terminal (plain log lines otherwise).
    #[arg(long, value_enum, default_value_t = ViewMode::Auto)]
    view: ViewMode,
    /// Put a link between each region and its parent: relays outside the origin's region
    /// reach the origin's Service at 127.<their region's octet>.0.0 (same port) instead of
    /// its stand-in, through their region's own hosts file (<log dir>/<hosts>.<region>).
    /// Nothing listens there: run a forwarder to the stand-in, e.g. `surge-netem forward
    /// --link eu-west,127.201.0.0:1935,127.200.0.0:1935 --control 127.0.0.1:15000`, whose
    /// link faults can then stall, partition or throttle (scripts/demo --parent-links).
    #[arg(long)]
    parent_links: bool,
}

fn positive_speed(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "SURGE_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// How often relays are scraped (GET /api/v1/streams) and the tree re-planned.
    #[arg(long, env = "SURGE_SCRAPE_INTERVAL", default_value = "5s", value_parser = positive_duration)]
    scrape_interval: Duration,
    /// Timeout of one relay scrape; a relay that does not answer marks the Stream Degraded.
    #[arg(long, default_value = "2s", value_parser = positive_duration)]
    scrape_timeout: Duration,
    /// Which autoscaler sizes the edge tiers: surge (the planner's forecast), hpa (the
    /// HorizontalPodAutoscaler's default behaviour on the viewers metric, run inside the
    /// operator for comparisons) or static (minEdges).
    #[arg(long, value_enum, default_value_t = ScalingPolicy::Surge)]
    policy: ScalingPolicy,
    /// Relay image for Streams that set none.
    #[arg(
        long,
        env = "SURGE_RELAY_IMAGE",
        default_value = "ghcr.io/surge-dev/surge-relay:0.1.0"
    )]
    relay_image: String,
    /// imagePullPolicy of relay containers.
    #[arg(long, default_value = "IfNotPresent")]
    relay_image_pull_policy: String,
    /// Images a Stream's spec.relay.image may name, comma-separated: a repository (any tag or
    /// digest of it), a full reference (exactly it) or a prefix ending in `*`. A Stream naming
    /// another image is refused (Ready=False, InvalidSpec, an event naming spec.relay.image).
    /// Empty: any image. --relay-image is always allowed.
    #[arg(long, env = "SURGE_ALLOWED_RELAY_IMAGES", default_value = "", value_parser = parse_image_list)]
    allowed_relay_images: ::std::vec::Vec<String>,
    /// Pod securityContext of relay pods, as JSON (default: the restricted Pod Security
    /// level: runAsNonRoot, runAsUser/runAsGroup 65532, seccompProfile RuntimeDefault).
    #[arg(long, value_name = "JSON", value_parser = parse_json::<PodSecurityContext>)]
    relay_pod_security_context: Option<PodSecurityContext>,
    /// Container securityContext of relays, as JSON (default: allowPrivilegeEscalation false,
    /// capabilities drop ALL, readOnlyRootFilesystem, runAsNonRoot).
    #[arg(long, value_name = "JSON", value_parser = parse_json::<SecurityContext>)]
    relay_security_context: Option<SecurityContext>,
    /// imagePullSecrets of relay pods (Secret names in each Stream's namespace),
    /// comma-separated; a Stream's spec.relay.imagePullSecrets replaces them.
    #[arg(long, default_value = "", value_parser = parse_image_list)]
    relay_image_pull_secrets: ::std::vec::Vec<String>,
    /// Tolerations of relay pods, as a JSON list; a Stream's spec.relay.tolerations replaces them.
    #[arg(long, value_name = "JSON", value_parser = parse_json::<Vec<Toleration>>)]
    relay_tolerations: Option<::std::vec::Vec<Toleration>>,
    /// Affinity of relay pods, as JSON (on top of each region's nodeSelector); a Stream's
    /// spec.relay.affinity replaces it.
    #[arg(long, value_name = "JSON", value_parser = parse_json::<Affinity>)]
    relay_affinity: Option<Affinity>,
    /// topologySpreadConstraints of each reflector and edge tier, as a JSON list (a constraint
    /// without labelSelector gets the tier's labels; `[]`: none). Default: over the zones,
    /// then the nodes, of the region, maxSkew 1, ScheduleAnyway. A Stream's
    /// spec.relay.topologySpreadConstraints replaces them.
    #[arg(long, value_name = "JSON", value_parser = parse_json::<Vec<TopologySpreadConstraint>>)]
    relay_topology_spread_constraints: Option<::std::vec::Vec<TopologySpreadConstraint>>,
    /// Default relay resource requests, e.g. cpu=250m,memory=128Mi.
    #[arg(long, default_value = "cpu=250m,memory=128Mi", value_parser = parse_key_values)]
    relay_requests: BTreeMap<String, String>,
    /// Default relay resource limits, e.g. memory=512Mi (empty for none).
    #[arg(long, default_value = "memory=512Mi", value_parser = parse_key_values)]
    relay_limits: BTreeMap<String, String>,
    /// RTMP port of relays and their Services.
    #[arg(long, default_value_t = 1935)]
    relay_rtmp_port: u16,
    /// HTTP port of relays and their Services (HTTP-FLV playback, the locator).
    #[arg(long, env = "SURGE_RELAY_HTTP_PORT", default_value_t = 8080)]
    relay_http_port: u16,
    /// Admin port of relays (their --admin-listen: /api/v1/streams, /metrics, /healthz,
    /// /readyz): scraped at <pod IP>:<port>, the probes' port and what placement peers poll.
    /// No Service exposes it, so viewers never reach it.
    #[arg(long, env = "SURGE_RELAY_ADMIN_PORT", default_value_t = 9090, value_parser = clap::value_parser!(u16).range(1..))]
    relay_admin_port: u16,
    /// Seconds a relay keeps serving after SIGTERM (its --shutdown-grace).
    #[arg(long, default_value_t = 30)]
    relay_shutdown_grace_seconds: u32,
    /// Seconds the preStop hook waits before SIGTERM, so Services stop routing first.
    #[arg(long, default_value_t = 5)]
    relay_prestop_seconds: u32,
    /// Node label holding the region name (default nodeSelector of a region).
    #[arg(long, default_value = "topology.kubernetes.io/region")]
    region_label: String,
    /// Cluster DNS domain, for upstream and endpoint URLs.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "SURGE_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Take part in leader election (a coordination.k8s.io Lease); disable only for a single replica.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "surge-operator")]
    lease_name: String,
    /// Namespace of the Lease (in cluster: the operator's own, from POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// How long a lease holds without renewal.
    #[arg(long, default_value = "15s", value_parser = positive_duration)]
    lease_duration: Duration,
    /// This replica's identity in the Lease (default: POD_NAME or hostname, plus the pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Run the planner's clock this many times faster than the wall clock, for replaying a
    /// crowd with `surge-load replay --speed X` on a test cluster: the planner's time, the
    /// Stream's windows, --scrape-interval and measured relay ready times are then trace time
    /// (relay grace periods are not: set them with the --relay-*-seconds flags). Keep 1 in
    /// production.
    #[arg(long, default_value_t = 1.0, value_parser = positive_speed)]
    speed: f64,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    // Colours only on a terminal: logs collected from pods or files stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// A comma-separated list flag as one value (clap would otherwise take it as one item).
fn parse_image_list(s: &str) -> Result<Vec<String>, String> {
    Ok(parse_list(s))
}

/// Relay pod defaults from the flags; unset flags keep the built-in defaults.
fn relay_pod_defaults(args: &RunArgs) -> RelayPodDefaults {
    let d = RelayPodDefaults::default();
    RelayPodDefaults {
        pod_security_context: args
            .relay_pod_security_context
            .clone()
            .unwrap_or(d.pod_security_context),
        security_context: args
            .relay_security_context
            .clone()
            .unwrap_or(d.security_context),
        image_pull_secrets: args.relay_image_pull_secrets.clone(),
        tolerations: args.relay_tolerations.clone().unwrap_or_default(),
        affinity: args.relay_affinity.clone(),
        topology_spread_constraints: args.relay_topology_spread_constraints.clone(),
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "surge-operator".to_string());
    format!("{host}-{}", std::process::id())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!(
                "{}",
                surge_operator::crd::crd_yaml().context("serializing the CRD")?
            );
            Ok(())
        }
        Command::Run(args) => {
            init_tracing(args.log_format);
            let relay_pod = relay_pod_defaults(&args);
            let cfg = OperatorConfig {
                relay_image: args.relay_image,
                relay_image_pull_policy: args.relay_image_pull_policy,
                relay_requests: args.relay_requests,
                relay_limits: args.relay_limits,
                relay_rtmp_port: args.relay_rtmp_port,
                relay_http_port: args.relay_http_port,
                relay_admin_port: args.relay_admin_port,
                region_label: args.region_label,
                cluster_domain: args.cluster_domain,
                relay_shutdown_grace_seconds: args.relay_shutdown_grace_seconds,
                relay_prestop_seconds: args.relay_prestop_seconds,
                scrape_interval: args.scrape_interval,
                scrape_timeout: args.scrape_timeout,
                field_manager: "surge-operator".to_string(),
                policy: args.policy,
                relay_pod,
                allowed_relay_images: args.allowed_relay_images,
            };
            let opts = RunOptions {
                metrics_addr: args.metrics_addr,
                namespace: args.namespace,
                leader_election: args.leader_election,
                lease_name: args.lease_name,
                lease_namespace: args.lease_namespace,
                lease_duration: args.lease_duration,
                identity: args
                    .identity
                    .map(|p| format!("{p}-{}", std::process::id()))
                    .unwrap_or_else(default_identity),
                speed: args.speed,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(run(cfg, opts))
        }
        Command::Local(args) => local(*args),
        Command::Pods(args) => pods(*args),
        Command::StandIns(args) => {
            init_tracing(LogFormat::Text);
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime
                .block_on(surge_operator::local::stand_ins::serve(&args.table))
                .with_context(|| format!("serving the stand-ins of {}", args.table.display()))
        }
    }
}

/// `surge-operator pods`.
fn pods(args: PodsArgs) -> anyhow::Result<()> {
    init_tracing(LogFormat::Text);
    let opts = surge_operator::pods::PodsOptions {
        namespace: args.namespace,
        selector: args.selector,
        relay_bin: args.relay_bin,
        log_dir: args.log_dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("surge-pods-{}", std::process::id()))
        }),
        hosts_file: args.hosts_file,
        cluster_domain: args.cluster_domain,
        interval: args.interval,
        stop_grace: args.stop_grace,
        host_ports: args.host_ports,
        load_balancers: args.load_balancers,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(surge_operator::pods::run(opts))
}

/// `surge-operator local`: problems are printed one per line and exit 1.
fn local(args: LocalArgs) -> anyhow::Result<()> {
    let view = args
        .view
        .enabled(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| default_log_dir(args.api_listen));
    if view {
        // The view owns the terminal: log lines would scroll it away.
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating the log dir {}", log_dir.display()))?;
        let path = log_dir.join("operator.log");
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    } else {
        init_tracing(LogFormat::Text);
    }
    let opts = LocalOptions {
        files: args.files,
        speed: args.speed,
        ready_delay: args.ready_delay,
        drain_grace: args.drain_grace,
        scrape_interval: args.scrape_interval,
        api_listen: args.api_listen,
        relay_bin: args.relay_bin,
        log_dir: Some(log_dir),
        first_octet: args.first_octet,
        policy: args.policy,
        view,
        parent_links: args.parent_links,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if let Err(e) = runtime.block_on(run_local(opts)) {
        for line in e.lines() {
            eprintln!("error: {line}");
        }
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<Box<RunArgs>, String> {
        let argv = ["surge-operator", "run"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Run(a) => Ok(a),
            _ => Err("parsed as another command".into()),
        }
    }

    #[test]
    fn durations_name_the_flag_and_never_panic() {
        let err = run_args(&["--scrape-interval", "99999999999999999999999h"]).unwrap_err();
        assert!(
            err.contains("--scrape-interval") && err.contains("too long"),
            "{err}"
        );
        let err = run_args(&["--lease-duration", "0"]).unwrap_err();
        assert!(
            err.contains("--lease-duration") && err.contains("greater than zero"),
            "{err}"
        );
        let a = run_args(&["--scrape-interval", "1500ms", "--scrape-timeout", "1"]).expect("valid");
        assert_eq!(a.scrape_interval, Duration::from_millis(1500));
        assert_eq!(a.scrape_timeout, Duration::from_secs(1));
    }

    #[test]
    fn the_policy_is_surge_unless_named() {
        assert_eq!(run_args(&[]).expect("valid").policy, ScalingPolicy::Surge);
        let a = run_args(&["--policy", "hpa"]).expect("valid");
        assert_eq!(a.policy, ScalingPolicy::Hpa);
        let local = |extra: &[&str]| {
            let argv = ["surge-operator", "local", "-f", "s.yaml"];
            match Cli::try_parse_from(argv.iter().chain(extra)).map(|c| c.command) {
                Ok(Command::Local(a)) => Ok(a.policy),
                Ok(_) => Err("parsed as another command".to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(local(&[]), Ok(ScalingPolicy::Surge));
        assert_eq!(local(&["--policy", "static"]), Ok(ScalingPolicy::Static));
        let err = local(&["--policy", "vpa"]).unwrap_err();
        assert!(err.contains("surge, hpa, static"), "{err}");
    }

    #[test]
    fn relay_pod_flags_set_defaults_and_unset_ones_keep_the_restricted_level() {
        let a = run_args(&[]).expect("valid");
        assert!(a.allowed_relay_images.is_empty());
        assert_eq!(relay_pod_defaults(&a), RelayPodDefaults::default());
        let a = run_args(&[
            "--allowed-relay-images",
            "ghcr.io/surge-dev/surge-relay, registry.example/media/*",
            "--relay-image-pull-secrets=regcred",
            r#"--relay-tolerations=[{"key":"video","operator":"Exists","effect":"NoSchedule"}]"#,
            "--relay-topology-spread-constraints=[]",
        ])
        .expect("valid");
        assert_eq!(
            a.allowed_relay_images,
            ["ghcr.io/surge-dev/surge-relay", "registry.example/media/*"]
        );
        let d = relay_pod_defaults(&a);
        assert_eq!(d.image_pull_secrets, ["regcred"]);
        assert_eq!(d.tolerations[0].key.as_deref(), Some("video"));
        assert_eq!(d.topology_spread_constraints, Some(Vec::new()));
        assert_eq!(
            d.security_context,
            RelayPodDefaults::default().security_context
        );
        let err = run_args(&["--relay-affinity", "{nope"]).unwrap_err();
        assert!(
            err.contains("--relay-affinity") && err.contains("JSON"),
            "{err}"
        );
    }

    #[test]
    fn run_speed_is_one_unless_set_and_must_be_positive() {
        assert_eq!(run_args(&[]).expect("valid").speed, 1.0);
        assert_eq!(run_args(&["--speed", "10"]).expect("valid").speed, 10.0);
        for bad in ["0", "fast", "inf"] {
            let err = run_args(&["--speed", bad]).unwrap_err();
            assert!(
                err.contains("--speed") && err.contains("positive"),
                "{bad}: {err}"
            );
        }
    }
}
