use anyhow::Result;
use clap::{Parser, Subcommand};
use surge_load::{publish, replay, simulate, trace};

/// Surge load generator: publish a stream, replay flash-crowd traces with real
/// viewers, simulate scaling policies at internet scale, and make traces.
#[derive(Parser)]
#[command(name = "surge-load", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish a live stream over RTMP with an embedded publish clock in every video frame.
    Publish(publish::PublishArgs),
    /// Open and close real viewer connections following a trace, and report what viewers got.
    Replay(replay::ReplayArgs),
    /// Play a trace against scaling policies (surge, hpa, livejack, oracle) at 1 s steps.
    Simulate(simulate::SimulateArgs),
    /// Generate or check workload traces.
    #[command(subcommand)]
    Trace(trace::TraceCommand),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Publish(args) => publish::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Trace(cmd) => trace::run(cmd),
    }
}
