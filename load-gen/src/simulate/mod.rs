//! `surge-load simulate`: plays a trace against scaling policies at 1 s steps and reports
//! under-provisioning, cost and time to capacity, side by side.

mod demand;
mod engine;
mod plot;
pub mod policies;
mod report;
pub mod schedule;
pub mod sweep;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use surge_operator::crd::{Stream, StreamSpec};
use surge_operator::validate::{summary, validate};

use crate::trace::Trace;
use crate::trace::generate::Shape;
pub use demand::Demand;
pub use engine::{Fleet, Outcome, Policy, SimSettings, View, simulate};
use policies::{Hpa, LiveJack, Oracle, PolicyName, Reactive, Surge};
pub use report::{PolicyReport, Report, SurgeResult};
pub use sweep::{FamilyReport, SeedRange, SeedRun, simulate_family};

/// Play a trace against scaling policies (surge, hpa, livejack, reactive, oracle) at 1 s
/// steps.
///
/// Each region's edges are simulated separately: relays asked for become Ready
/// `--ready-seconds` later, viewers follow the trace (linearly interpolated between rows),
/// and Ready capacity is edges × viewers per edge. `surge` plans exactly as the operator does
/// for a Stream (`--stream FILE`, or a Stream that sets nothing but its regions, which are the
/// trace's); the flags below override single settings of it. Every policy's shortfall is
/// also given as a ratio to `reactive`'s (perfect reaction) and its cost as a ratio to the
/// `oracle`'s. Prints a table; `--json` and `--plot` write the same results as JSON and an
/// SVG plot. With `--shape NAME --seeds A..B` it generates that family of traces in memory
/// (as `trace gen` would) and reports every seed and the family.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The trace file (livetrace v1 CSV, e.g. load-gen/traces/facebook.csv).
    #[arg(long, required_unless_present = "shape", conflicts_with = "shape")]
    pub trace: Option<PathBuf>,
    /// Instead of a file: generate this shape's traces (see `trace gen --shape`), one per seed
    /// of --seeds.
    #[arg(long, value_enum)]
    pub shape: Option<Shape>,
    /// Seeds of --shape: `A..B` (inclusive), `N`, or a comma list; default 1.
    #[arg(long, requires = "shape", conflicts_with = "plot")]
    pub seeds: Option<SeedRange>,
    /// Broadcast to simulate (default: the trace's first).
    #[arg(long)]
    pub broadcast: Option<String>,
    /// Policy to run; `all` runs surge, hpa, livejack, reactive and oracle side by side.
    #[arg(long, value_enum, default_value = "all")]
    pub policy: PolicyName,
    /// Seconds from asking for a relay to its being Ready.
    #[arg(long, default_value_t = 30)]
    pub ready_seconds: u64,
    /// A Stream manifest (YAML) whose spec.tree, spec.scaling and region edge ranges surge
    /// plans with; its regions must include the trace's (all with one edge range). Default: a
    /// Stream that sets nothing, with the trace's regions.
    #[arg(long)]
    pub stream: Option<PathBuf>,
    /// Viewers one edge relay serves (the capacity, and every policy's target); default the
    /// Stream's tree.viewersPerEdge (2000).
    #[arg(long)]
    pub viewers_per_edge: Option<u64>,
    /// Fewest edges per region; default the Stream's minEdges (1).
    #[arg(long)]
    pub min_edges: Option<u32>,
    /// Most edges per region; default the --stream file's maxEdges, else 10000 (the most a
    /// Stream allows), so policies are compared on demand rather than on a cap.
    #[arg(long)]
    pub max_edges: Option<u32>,
    /// Surge's forecast horizon (scaling.leadTimeSeconds; default 60).
    #[arg(long)]
    pub lead_time_seconds: Option<u32>,
    /// Surge's headroom above the forecast (scaling.headroom; default 0.2).
    #[arg(long)]
    pub headroom: Option<f64>,
    /// Surge's growth-estimation window (scaling.estimationWindowSeconds; default 60).
    #[arg(long)]
    pub estimation_window_seconds: Option<u32>,
    /// Surge's flash-crowd scale-up factor (scaling.flashCrowd.scaleUpFactor; default 2).
    #[arg(long)]
    pub flash_scale_up_factor: Option<f64>,
    /// Surge's flash-crowd horizon factor (scaling.flashCrowd.leadTimeFactor; default 1.5).
    #[arg(long)]
    pub flash_lead_time_factor: Option<f64>,
    /// Turn surge's flash-crowd mode off (scaling.flashCrowd.enabled = false).
    #[arg(long)]
    pub no_flash_crowd: bool,
    /// Surge's warm pool: edges kept per region beyond the forecast (scaling.warmEdges;
    /// default 0). Their cost is in surge's relay-seconds.
    #[arg(long)]
    pub warm_edges: Option<u32>,
    /// Surge's scheduled events (spec.scaling.schedule): a YAML or JSON list of {start
    /// (RFC 3339; trace second t is 1970-01-01T00:00:00Z + t), expectedViewers, regions?,
    /// durationMinutes?}. Replaces the --stream file's schedule.
    #[arg(long, conflicts_with = "trace_schedule")]
    pub schedule: Option<PathBuf>,
    /// Give surge the schedule in the trace's header (`schedule=[...]`, written by `trace gen
    /// --shape match`: the kick-off, the audience, the match's length).
    #[arg(long)]
    pub trace_schedule: bool,
    /// What an edge really holds, as a fraction of viewers per edge (default 1): 0.5 models a
    /// mis-set viewersPerEdge (or a bitrate twice the Stream's), relays that hold half. Ready
    /// capacity is edges × viewers per edge × this; surge's edges report the load that goes
    /// with it (as relays do on /api/v1/streams); hpa and livejack size with the configured
    /// edge size, reactive and oracle (the yardsticks) with the true one.
    #[arg(long, default_value_t = 1.0)]
    pub true_capacity_factor: f64,
    /// Turn surge's quality signal off (scaling.quality.enabled = false): the edges' load no
    /// longer sizes the region.
    #[arg(long)]
    pub no_quality: bool,
    /// LiveJack: viewers per relay (default 0.7 × viewers per edge, the paper's 350 of 500).
    #[arg(long)]
    pub livejack_viewers_per_relay: Option<f64>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of demand against Ready capacity per policy here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl SimulateArgs {
    /// The command line's defaults for `trace`: every policy, relays Ready after 30 s, a
    /// Stream that sets nothing.
    pub fn for_trace(trace: PathBuf) -> Self {
        SimulateArgs {
            trace: Some(trace),
            shape: None,
            seeds: None,
            broadcast: None,
            policy: PolicyName::All,
            ready_seconds: 30,
            stream: None,
            viewers_per_edge: None,
            min_edges: None,
            max_edges: None,
            lead_time_seconds: None,
            headroom: None,
            estimation_window_seconds: None,
            flash_scale_up_factor: None,
            flash_lead_time_factor: None,
            no_flash_crowd: false,
            warm_edges: None,
            schedule: None,
            trace_schedule: false,
            true_capacity_factor: 1.0,
            no_quality: false,
            livejack_viewers_per_relay: None,
            json: None,
            plot: None,
        }
    }
}

/// The most edges per region a Stream accepts (the CRD's maxEdges bound): the simulator's cap
/// when no --stream file sets one.
const STREAM_MAX_EDGES: u32 = 10_000;

/// The Stream surge plans with: `--stream`, or one that sets nothing but the trace's regions,
/// with the command line's overrides applied and the result validated like the operator
/// validates a Stream.
pub fn stream_spec(args: &SimulateArgs, regions: &[String]) -> Result<StreamSpec> {
    let mut spec = match &args.stream {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_saphyr::from_str::<Stream>(&text)
                .with_context(|| format!("{} is not a Stream manifest", path.display()))?
                .spec
        }
        None => {
            // Through serde, so every unset field takes the Stream's documented default.
            let manifest = serde_json::json!({
                "origin": {"region": regions.first().map_or("default", String::as_str)},
                "regions": regions.iter().map(|r| serde_json::json!({"name": r}))
                    .collect::<Vec<_>>(),
            });
            let mut spec: StreamSpec = serde_json::from_value(manifest)?;
            for r in &mut spec.regions {
                r.max_edges = STREAM_MAX_EDGES;
            }
            spec
        }
    };
    let missing: Vec<&str> = regions
        .iter()
        .filter(|r| !spec.regions.iter().any(|s| &s.name == *r))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "the Stream has no region {} of the trace (its regions: {})",
            missing.join(", "),
            spec.regions
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(v) = args.viewers_per_edge {
        spec.tree
            .set_viewers_per_edge(u32::try_from(v).context("--viewers-per-edge is too large")?);
    }
    for r in &mut spec.regions {
        if let Some(v) = args.min_edges {
            r.min_edges = v;
        }
        if let Some(v) = args.max_edges {
            r.max_edges = v;
        }
    }
    let scaling = &mut spec.scaling;
    if let Some(v) = args.lead_time_seconds {
        scaling.lead_time_seconds = v;
    }
    if let Some(v) = args.headroom {
        scaling.headroom = v;
    }
    if let Some(v) = args.estimation_window_seconds {
        scaling.estimation_window_seconds = v;
    }
    if let Some(v) = args.flash_scale_up_factor {
        scaling.flash_crowd.scale_up_factor = v;
    }
    if let Some(v) = args.flash_lead_time_factor {
        scaling.flash_crowd.lead_time_factor = v;
    }
    if args.no_flash_crowd {
        scaling.flash_crowd.enabled = false;
    }
    if let Some(v) = args.warm_edges {
        scaling.warm_edges = v;
    }
    if args.no_quality {
        scaling.quality.enabled = false;
    }
    if let Some(path) = &args.schedule {
        scaling.schedule = schedule::read_file(path)?;
    }
    let errors = validate("simulated", &spec);
    if !errors.is_empty() {
        bail!("invalid Stream settings: {}", summary(&errors));
    }
    Ok(spec)
}

/// The simulation's edge model from the Stream: one edge size and edge range for every region.
fn sim_settings(spec: &StreamSpec, ready_s: u64, true_capacity_factor: f64) -> Result<SimSettings> {
    if !(true_capacity_factor.is_finite()
        && true_capacity_factor > 0.0
        && true_capacity_factor <= 10.0)
    {
        bail!("--true-capacity-factor must be a number in (0, 10], not {true_capacity_factor}");
    }
    let first = spec.regions.first().context("the Stream has no regions")?;
    if spec
        .regions
        .iter()
        .any(|r| (r.min_edges, r.max_edges) != (first.min_edges, first.max_edges))
    {
        bail!(
            "the simulator models one edge range for all regions: give every region of the \
             Stream the same minEdges and maxEdges (or use --min-edges/--max-edges)"
        );
    }
    Ok(SimSettings {
        ready_s,
        viewers_per_edge: u64::from(spec.tree.viewers_per_edge),
        min_edges: first.min_edges,
        max_edges: first.max_edges,
        true_capacity_factor,
    })
}

/// The outcomes of one broadcast: the selected policies, and the yardsticks that were run
/// only for the ratios (the oracle for `cost_vs_oracle`, reactive for
/// `shortfall_vs_reactive`).
pub struct Runs {
    pub selected: Vec<Outcome>,
    pub yardsticks: Vec<Outcome>,
}

impl Runs {
    fn find(&self, name: &str) -> Option<&Outcome> {
        self.selected
            .iter()
            .chain(&self.yardsticks)
            .find(|o| o.name == name)
    }
}

/// Runs the selected policies (and the oracle and reactive yardsticks) on one broadcast,
/// surge planning for `spec` (see [`stream_spec`]).
pub fn run_policies(demand: &Demand, args: &SimulateArgs, spec: StreamSpec) -> Result<Runs> {
    if args.ready_seconds > 24 * 3600 {
        bail!("--ready-seconds must be at most a day");
    }
    let settings = sim_settings(&spec, args.ready_seconds, args.true_capacity_factor)?;
    let regions = demand.regions.len();
    let livejack_per_relay = args
        .livejack_viewers_per_relay
        .unwrap_or(0.7 * settings.viewers_per_edge as f64);
    let wanted = |p: PolicyName| args.policy == PolicyName::All || args.policy == p;

    let oracle = simulate(&mut Oracle::new(demand, &settings), demand, &settings);
    let reactive = simulate(&mut Reactive, demand, &settings);
    let mut outcomes = Vec::new();
    let mut yardsticks = Vec::new();
    if wanted(PolicyName::Surge) {
        // Step 0 is the trace's first second: its Unix time for the schedule.
        let mut surge = Surge::new(&demand.regions, spec)
            .with_unix_offset(demand.start_s as f64)
            .with_true_capacity(settings.true_capacity_factor);
        outcomes.push(simulate(&mut surge, demand, &settings));
    }
    if wanted(PolicyName::Hpa) {
        outcomes.push(simulate(&mut Hpa::new(regions), demand, &settings));
    }
    if wanted(PolicyName::Livejack) {
        let mut lj = LiveJack::new(regions, livejack_per_relay);
        outcomes.push(simulate(&mut lj, demand, &settings));
    }
    for (name, outcome) in [
        (PolicyName::Reactive, reactive),
        (PolicyName::Oracle, oracle),
    ] {
        if wanted(name) {
            outcomes.push(outcome);
        } else {
            yardsticks.push(outcome);
        }
    }
    Ok(Runs {
        selected: outcomes,
        yardsticks,
    })
}

/// Simulates the `--trace` file and builds the report (no output written).
pub fn simulate_trace(args: &SimulateArgs) -> Result<(Report, Demand, Vec<Outcome>)> {
    let path = args
        .trace
        .as_ref()
        .context("simulate_trace needs a trace file (--trace)")?;
    let trace = crate::trace::read_trace(path)
        .with_context(|| format!("invalid trace {}", path.display()))?;
    simulate_loaded(&trace, &path.display().to_string(), args)
}

/// Simulates a trace already in memory; `label` names it in the report.
pub fn simulate_loaded(
    trace: &Trace,
    label: &str,
    args: &SimulateArgs,
) -> Result<(Report, Demand, Vec<Outcome>)> {
    let demand = Demand::from_trace(trace, args.broadcast.as_deref())?;
    let mut spec = stream_spec(args, &demand.regions)?;
    if args.trace_schedule {
        spec.scaling.schedule = schedule::from_header(&trace.header)?
            .context("--trace-schedule: the trace's header has no schedule=[...] field")?;
        let errors = validate("simulated", &spec);
        if !errors.is_empty() {
            bail!("invalid schedule in the trace header: {}", summary(&errors));
        }
    }
    let viewers_per_edge = u64::from(surge_operator::sizing::viewers_per_edge(&spec));
    let runs = run_policies(&demand, args, spec)?;
    let oracle_cost = runs.find("oracle").map_or(0.0, |o| o.relay_seconds);
    let reactive_shortfall = runs
        .find("reactive")
        .map_or(0.0, |o| o.underprovisioned_viewer_seconds);
    let surges = report::find_surges(&demand);
    let outcomes = runs.selected;
    let report = Report {
        trace: label.to_owned(),
        header: trace.header.trim().to_owned(),
        broadcast: demand.broadcast_id.clone(),
        regions: demand.regions.clone(),
        duration_s: demand.len().saturating_sub(1) as u64,
        peak_viewers: (0..demand.len())
            .map(|i| demand.total(i))
            .fold(0.0, f64::max)
            .round(),
        ready_seconds: args.ready_seconds,
        viewers_per_edge,
        true_capacity_factor: args.true_capacity_factor,
        oracle_relay_seconds: oracle_cost,
        reactive_underprovisioned_viewer_seconds: reactive_shortfall.round(),
        surges: report::surge_summaries(&demand, &surges),
        policies: outcomes
            .iter()
            .map(|o| report::policy_report(o, oracle_cost, reactive_shortfall, &surges))
            .collect(),
    };
    Ok((report, demand, outcomes))
}

pub fn run(args: SimulateArgs) -> Result<()> {
    if args.shape.is_some() {
        return sweep::run(&args);
    }
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
