//! `surge-load simulate`: plays a trace against scaling policies at 1 s steps and reports
//! under-provisioning, cost and time to capacity, side by side.

mod demand;
mod engine;
mod plot;
pub mod policies;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use surge_planner::{FlashCrowdSettings, ScalingSettings, TreeSettings};

pub use demand::Demand;
pub use engine::{Fleet, Outcome, Policy, SimSettings, View, simulate};
use policies::{Hpa, LiveJack, Oracle, PolicyName, Surge};
pub use report::{PolicyReport, Report, SurgeResult};

/// Play a trace against scaling policies (surge, hpa, livejack, oracle) at 1 s steps.
///
/// Each region's edges are simulated separately: relays asked for become Ready
/// `--ready-seconds` later, viewers follow the trace (linearly interpolated between rows),
/// and Ready capacity is edges × `--viewers-per-edge`. Prints a table; `--json` and
/// `--plot` write the same results as JSON and an SVG plot.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The trace file (livetrace v1 CSV, e.g. load-gen/traces/facebook.csv).
    #[arg(long)]
    pub trace: PathBuf,
    /// Broadcast to simulate (default: the trace's first).
    #[arg(long)]
    pub broadcast: Option<String>,
    /// Policy to run; `all` runs surge, hpa, livejack and oracle side by side.
    #[arg(long, value_enum, default_value = "all")]
    pub policy: PolicyName,
    /// Seconds from asking for a relay to its being Ready.
    #[arg(long, default_value_t = 30)]
    pub ready_seconds: u64,
    /// Viewers one edge relay serves (the capacity, and surge's and hpa's target).
    #[arg(long, default_value_t = 2000)]
    pub viewers_per_edge: u64,
    /// Fewest edges per region.
    #[arg(long, default_value_t = 1)]
    pub min_edges: u32,
    /// Most edges per region (default: effectively unbounded, so policies are compared on
    /// demand, not on a cap; a Stream's own default is 100).
    #[arg(long, default_value_t = 100_000)]
    pub max_edges: u32,
    /// Surge's forecast horizon (the Stream's scaling.leadTimeSeconds).
    #[arg(long, default_value_t = 60.0)]
    pub lead_time_seconds: f64,
    /// Surge's headroom above the forecast (the Stream's scaling.headroom).
    #[arg(long, default_value_t = 0.2)]
    pub headroom: f64,
    /// Surge's growth-estimation window (the Stream's scaling.estimationWindowSeconds).
    #[arg(long, default_value_t = ScalingSettings::default().estimation_window_seconds)]
    pub estimation_window_seconds: f64,
    /// Surge's flash-crowd scale-up factor (the Stream's scaling.flashCrowd.scaleUpFactor).
    #[arg(long, default_value_t = FlashCrowdSettings::default().scale_up_factor)]
    pub flash_scale_up_factor: f64,
    /// Surge's flash-crowd horizon factor (scaling.flashCrowd.leadTimeFactor).
    #[arg(long, default_value_t = FlashCrowdSettings::default().lead_time_factor)]
    pub flash_lead_time_factor: f64,
    /// Turn surge's flash-crowd mode off (scaling.flashCrowd.enabled = false).
    #[arg(long)]
    pub no_flash_crowd: bool,
    /// LiveJack: viewers per relay (default 0.7 × viewers-per-edge, the paper's 350 of 500).
    #[arg(long)]
    pub livejack_viewers_per_relay: Option<f64>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of demand against Ready capacity per policy here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Runs the selected policies (and the oracle, for `cost_vs_oracle`) on one broadcast.
pub fn run_policies(
    demand: &Demand,
    args: &SimulateArgs,
) -> Result<(Vec<Outcome>, Option<Outcome>)> {
    if args.ready_seconds > 24 * 3600 {
        bail!("--ready-seconds must be at most a day");
    }
    if args.viewers_per_edge == 0 {
        bail!("--viewers-per-edge must be at least 1");
    }
    if args.min_edges == 0 || args.max_edges < args.min_edges {
        bail!("--min-edges must be at least 1 and at most --max-edges");
    }
    let settings = SimSettings {
        ready_s: args.ready_seconds,
        viewers_per_edge: args.viewers_per_edge,
        min_edges: args.min_edges,
        max_edges: args.max_edges,
    };
    let tree = TreeSettings {
        viewers_per_edge: args.viewers_per_edge,
        min_edges: args.min_edges,
        max_edges: args.max_edges,
        ..TreeSettings::default()
    };
    let scaling = ScalingSettings {
        lead_time_seconds: args.lead_time_seconds,
        headroom: args.headroom,
        estimation_window_seconds: args.estimation_window_seconds,
        flash_crowd: FlashCrowdSettings {
            enabled: !args.no_flash_crowd,
            scale_up_factor: args.flash_scale_up_factor,
            lead_time_factor: args.flash_lead_time_factor,
            ..FlashCrowdSettings::default()
        },
        ..ScalingSettings::default()
    };
    tree.validate().context("surge settings")?;
    scaling.validate().context("surge settings")?;
    let regions = demand.regions.len();
    let livejack_per_relay = args
        .livejack_viewers_per_relay
        .unwrap_or(0.7 * args.viewers_per_edge as f64);
    let wanted = |p: PolicyName| args.policy == PolicyName::All || args.policy == p;

    let oracle = simulate(&mut Oracle::new(demand, &settings), demand, &settings);
    let mut outcomes = Vec::new();
    if wanted(PolicyName::Surge) {
        let mut surge = Surge::new(&demand.regions, tree, scaling);
        outcomes.push(simulate(&mut surge, demand, &settings));
    }
    if wanted(PolicyName::Hpa) {
        outcomes.push(simulate(&mut Hpa::new(regions), demand, &settings));
    }
    if wanted(PolicyName::Livejack) {
        let mut lj = LiveJack::new(regions, livejack_per_relay);
        outcomes.push(simulate(&mut lj, demand, &settings));
    }
    if wanted(PolicyName::Oracle) {
        outcomes.push(oracle);
        Ok((outcomes, None))
    } else {
        Ok((outcomes, Some(oracle)))
    }
}

/// Simulates and builds the report (no output written).
pub fn simulate_trace(args: &SimulateArgs) -> Result<(Report, Demand, Vec<Outcome>)> {
    let trace = crate::trace::read_trace(&args.trace)
        .with_context(|| format!("invalid trace {}", args.trace.display()))?;
    let demand = Demand::from_trace(&trace, args.broadcast.as_deref())?;
    let (outcomes, extra_oracle) = run_policies(&demand, args)?;
    let oracle_cost = outcomes
        .iter()
        .chain(extra_oracle.iter())
        .find(|o| o.name == "oracle")
        .map_or(0.0, |o| o.relay_seconds);
    let surges = report::find_surges(&demand);
    let report = Report {
        trace: args.trace.display().to_string(),
        header: trace.header.trim().to_owned(),
        broadcast: demand.broadcast_id.clone(),
        regions: demand.regions.clone(),
        duration_s: demand.len().saturating_sub(1) as u64,
        peak_viewers: (0..demand.len())
            .map(|i| demand.total(i))
            .fold(0.0, f64::max)
            .round(),
        ready_seconds: args.ready_seconds,
        viewers_per_edge: args.viewers_per_edge,
        surges: report::surge_summaries(&demand, &surges),
        policies: outcomes
            .iter()
            .map(|o| report::policy_report(o, oracle_cost, &surges))
            .collect(),
    };
    Ok((report, demand, outcomes))
}

pub fn run(args: SimulateArgs) -> Result<()> {
    let started = Instant::now();
    let (report, demand, outcomes) = simulate_trace(&args)?;
    let elapsed = started.elapsed();
    print!("{}", report::table(&report));
    eprintln!(
        "simulated {} s x {} regions x {} policies in {:.2} s",
        demand.len(),
        demand.regions.len(),
        outcomes.len(),
        elapsed.as_secs_f64()
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        let refs: Vec<&Outcome> = outcomes.iter().collect();
        std::fs::write(path, plot::svg(&report, &demand, &refs))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
