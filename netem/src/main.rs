use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use surge_netem::topology::{Topology, node_address, router_address};
use surge_netem::{forward, probe, proxy};

/// Network emulation for Surge's tests and benchmarks (driven by scripts/netem/).
#[derive(Parser)]
#[command(name = "surge-netem", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a topology file; print its nodes (index, name, address, gateway, access rate in
    /// bit/s or -) and links (name, a, b, delay ms, jitter ms, rate or -), one per line.
    Plan {
        /// The topology file.
        topology: PathBuf,
    },
    /// Check a rate (`2mbit`, `500kbit`) and print it in bit/s.
    Rate { value: String },
    /// Run the transparent proxy (inside the router namespace).
    Proxy {
        #[arg(long)]
        topology: PathBuf,
        /// Where nftables redirects the nodes' TCP connections.
        #[arg(long)]
        listen: SocketAddr,
        /// Line commands: set, stall, partition, reset, show, ping.
        #[arg(long)]
        control: SocketAddr,
    },
    /// Forward connections from fixed addresses of this machine to fixed targets, each across
    /// a named link (no namespaces, no root): `--link NAME,LISTEN,TARGET[,delay=D][,jitter=D]
    /// [,rate=R]`, repeatable; the control port takes the proxy's commands for those links.
    Forward {
        #[arg(long = "link", required = true, value_parser = forward::parse)]
        links: Vec<forward::Forward>,
        /// Line commands: set, stall, partition, reset, show, ping.
        #[arg(long)]
        control: SocketAddr,
    },
    /// Answer probes (echo and download) on an address.
    Serve {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Measure round trips to a `serve`: JSON with connect, first reply and RTT statistics.
    Rtt {
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long, default_value_t = 20)]
        count: usize,
        #[arg(long, default_value = "20ms", value_parser = surge_flags::duration)]
        interval: Duration,
    },
    /// Download BYTES from a `serve`: JSON with the time taken and the rate.
    Download {
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long)]
        bytes: u64,
    },
}

fn read_topology(path: &PathBuf) -> Result<Topology> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read topology {}", path.display()))?;
    Topology::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Plan { topology } => {
            let t = read_topology(&topology)?;
            for (i, n) in t.nodes.iter().enumerate() {
                let rate = n.rate.map_or("-".into(), |r| r.bits_per_second.to_string());
                println!(
                    "node {i} {} {} {} {rate}",
                    n.name,
                    node_address(i),
                    router_address(i)
                );
            }
            for l in &t.links {
                let rate = l
                    .params
                    .rate
                    .map_or("-".into(), |r| format!("{}bit", r.bits_per_second));
                println!(
                    "link {} {} {} {} {} {rate}",
                    l.name,
                    t.nodes[l.a].name,
                    t.nodes[l.b].name,
                    l.params.delay.as_millis(),
                    l.params.jitter.as_millis()
                );
            }
            Ok(())
        }
        Command::Rate { value } => {
            let rate = surge_netem::topology::parse_rate(&value).map_err(anyhow::Error::msg)?;
            println!("{}", rate.bits_per_second);
            Ok(())
        }
        Command::Proxy {
            topology,
            listen,
            control,
        } => {
            let t = read_topology(&topology)?;
            runtime.block_on(proxy::run(proxy::Shared::new(t), listen, control))
        }
        Command::Forward { links, control } => runtime.block_on(forward::run(links, control)),
        Command::Serve { listen } => runtime.block_on(probe::serve(listen)),
        Command::Rtt {
            connect,
            count,
            interval,
        } => {
            let v = runtime.block_on(probe::rtt(connect, count, interval))?;
            println!("{v}");
            Ok(())
        }
        Command::Download { connect, bytes } => {
            let v = runtime.block_on(probe::download(connect, bytes))?;
            println!("{v}");
            Ok(())
        }
    }
}
