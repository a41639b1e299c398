//! `surge-operator`: run the controller, or print the Stream CRD.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use surge_flags::positive_duration;
use surge_operator::config::{OperatorConfig, parse_key_values};
use surge_operator::controller::{RunOptions, run};

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
    /// Default relay resource requests, e.g. cpu=250m,memory=128Mi.
    #[arg(long, default_value = "cpu=250m,memory=128Mi", value_parser = parse_key_values)]
    relay_requests: BTreeMap<String, String>,
    /// Default relay resource limits, e.g. memory=512Mi (empty for none).
    #[arg(long, default_value = "memory=512Mi", value_parser = parse_key_values)]
    relay_limits: BTreeMap<String, String>,
    /// RTMP port of relays and their Services.
    #[arg(long, default_value_t = 1935)]
    relay_rtmp_port: u16,
    /// HTTP port of relays (HTTP-FLV, /api/v1/streams, probes); scraped at <pod IP>:<port>.
    #[arg(long, env = "SURGE_RELAY_HTTP_PORT", default_value_t = 8080)]
    relay_http_port: u16,
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
            let cfg = OperatorConfig {
                relay_image: args.relay_image,
                relay_image_pull_policy: args.relay_image_pull_policy,
                relay_requests: args.relay_requests,
                relay_limits: args.relay_limits,
                relay_rtmp_port: args.relay_rtmp_port,
                relay_http_port: args.relay_http_port,
                region_label: args.region_label,
                cluster_domain: args.cluster_domain,
                relay_shutdown_grace_seconds: args.relay_shutdown_grace_seconds,
                relay_prestop_seconds: args.relay_prestop_seconds,
                scrape_interval: args.scrape_interval,
                scrape_timeout: args.scrape_timeout,
                field_manager: "surge-operator".to_string(),
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
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(run(cfg, opts))
        }
    }
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
            Command::Crd => Err("parsed as crd".into()),
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
}
