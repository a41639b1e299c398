//! `surge-operator local`: Stream files in, one fleet and one reconcile loop per Stream, the
//! API, and a clean stop on Ctrl-C or SIGTERM. IO.
//!
//! Nothing starts until everything that can be checked first was: the Stream files (every
//! problem, one line each), the relay binary, the API address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::info;

use super::config::{Adoptable, FleetConfig, FleetError};
use super::driver::{DriveError, Driver, LocalStream, scrape_timeout};
use super::fleet::Fleet;
use super::view::{StreamView, render};
use super::{api, streams};
use crate::config::OperatorConfig;
use crate::decide::target;
use crate::metrics::Metrics;
use crate::policy::ScalingPolicy;
use crate::scrape::Scraper;

/// How `surge-operator local` runs.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    pub files: Vec<PathBuf>,
    /// Trace seconds per wall second (> 0).
    pub speed: f64,
    /// Emulated scheduling and image pull before a relay can be Ready, in trace time.
    pub ready_delay: Duration,
    /// How long a stopped relay serves its viewers (`--shutdown-grace`), in trace time.
    pub drain_grace: Duration,
    /// How often relays are scraped and the tree re-planned, in trace time.
    pub scrape_interval: Duration,
    pub api_listen: SocketAddr,
    /// `None`: [`default_relay_bins`], the first that exists.
    pub relay_bin: Option<PathBuf>,
    /// `None`: `<temp dir>/surge-local-<pid>`.
    pub log_dir: Option<PathBuf>,
    /// Second octet of the first Stream's first region.
    pub first_octet: u8,
    /// Which autoscaler sizes the edge tiers.
    pub policy: ScalingPolicy,
    /// Draw the live terminal view on standard output (logs then go to the log dir).
    pub view: bool,
    /// A parent link per region ([`FleetConfig::parent_links`]).
    pub parent_links: bool,
}

/// Why `surge-operator local` stopped or never started; [`LocalError::lines`] says it.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{}", .0.join("; "))]
    Streams(Vec<String>),
    #[error("relay binary not found at {} (build it: cargo build --release -p surge-relay, or give --relay-bin)", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or "))]
    NoRelayBin(Vec<PathBuf>),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("cannot listen on {addr} (--api-listen): {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot watch for signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Drive(#[from] DriveError),
}

impl LocalError {
    /// One line per problem.
    pub fn lines(&self) -> Vec<String> {
        match self {
            LocalError::Streams(problems) => problems.clone(),
            other => vec![other.to_string()],
        }
    }
}

/// Where the relay binary is looked for by default, in order: next to this binary, then in
/// `../release/` beside its directory (a debug operator with a release relay), then
/// `target/release/` under the working directory.
pub fn default_relay_bins(exe: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = exe.and_then(Path::parent) {
        out.push(dir.join("surge-relay"));
        if let Some(up) = dir.parent() {
            out.push(up.join("release").join("surge-relay"));
        }
    }
    out.push(PathBuf::from("target/release/surge-relay"));
    out.dedup();
    out
}

/// Where logs go without `--log-dir`: `<temp dir>/surge-local-<ip>-<port>` of the API
/// address. Two operators cannot share that address, and a restarted one with the same
/// command finds the records the killed one left (it adopts its fleet).
pub fn default_log_dir(api_listen: SocketAddr) -> PathBuf {
    std::env::temp_dir().join(format!(
        "surge-local-{}-{}",
        api_listen.ip(),
        api_listen.port()
    ))
}

fn relay_bin(given: Option<&PathBuf>) -> Result<PathBuf, LocalError> {
    if let Some(bin) = given {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe().ok();
    let candidates = default_relay_bins(exe.as_deref());
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or(LocalError::NoRelayBin(candidates))
}

/// The operator's settings for local relays: the loop's intervals stay in trace time (the
/// driver divides them by the speed), the relays' drain is in wall seconds.
fn operator_config(opts: &LocalOptions) -> OperatorConfig {
    let grace = opts.drain_grace.div_f64(opts.speed).as_secs_f64().ceil();
    OperatorConfig {
        scrape_interval: opts.scrape_interval,
        scrape_timeout: scrape_timeout(opts.scrape_interval, opts.speed),
        relay_shutdown_grace_seconds: grace.clamp(1.0, f64::from(u32::MAX)) as u32,
        field_manager: "surge-operator-local".to_string(),
        policy: opts.policy,
        ..OperatorConfig::default()
    }
}

fn fleet_config(
    opts: &LocalOptions,
    cfg: &OperatorConfig,
    bin: &Path,
    log_dir: &Path,
    octet: u8,
) -> FleetConfig {
    let mut fc = FleetConfig::new(
        bin.to_path_buf(),
        log_dir.to_path_buf(),
        opts.ready_delay.div_f64(opts.speed),
        Duration::from_secs(u64::from(cfg.relay_shutdown_grace_seconds) + 2),
    );
    fc.first_region_octet = octet;
    fc.parent_links = opts.parent_links;
    fc.cluster_domain = cfg.cluster_domain.clone();
    fc.poll_interval = Duration::from_millis(500)
        .div_f64(opts.speed)
        .clamp(Duration::from_millis(100), Duration::from_millis(500));
    fc
}

/// Ctrl-C or SIGTERM, registered before any relay starts.
struct Signals(Signal, Signal);

impl Signals {
    fn new() -> Result<Signals, LocalError> {
        let int = signal(SignalKind::interrupt()).map_err(LocalError::Signals)?;
        let term = signal(SignalKind::terminate()).map_err(LocalError::Signals)?;
        Ok(Signals(int, term))
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.0.recv() => "SIGINT",
            _ = self.1.recv() => "SIGTERM",
        }
    }
}

/// Runs every Stream of `opts.files` until Ctrl-C or SIGTERM (then `Ok`) or a fatal error;
/// either way every relay started is stopped before it returns.
pub async fn run(opts: LocalOptions) -> Result<(), LocalError> {
    let mut signals = Signals::new()?;
    let loaded = streams::load(&opts.files).map_err(LocalError::Streams)?;
    let octets = streams::first_region_octets(&loaded, opts.first_octet)
        .map_err(|p| LocalError::Streams(vec![p]))?;
    let bin = relay_bin(opts.relay_bin.as_ref())?;
    let log_dir = opts
        .log_dir
        .clone()
        .unwrap_or_else(|| default_log_dir(opts.api_listen));
    let operator_bin = std::env::current_exe().ok();
    let listener = tokio::net::TcpListener::bind(opts.api_listen)
        .await
        .map_err(|source| LocalError::Listen {
            addr: opts.api_listen,
            source,
        })?;
    let cfg = operator_config(&opts);
    let mut locals = Vec::new();
    for (stream, octet) in loaded.into_iter().zip(octets) {
        let Some(target) = target(&stream) else {
            // `streams::parse` gives every Stream a namespace and a uid.
            continue;
        };
        let mut fc = fleet_config(&opts, &cfg, &bin, &log_dir, octet);
        // Each fleet keeps its own hosts file (its Services' names).
        fc.hosts_file = log_dir.join(format!("{}.{}.hosts", target.namespace, target.stream));
        // Stand-ins in a process of their own and relay records, so a restart adopts them.
        fc.adoptable = operator_bin.clone().map(|bin| Adoptable {
            state_dir: log_dir
                .join("state")
                .join(format!("{}.{}", target.namespace, target.stream)),
            operator_bin: bin,
            stand_ins_log: log_dir.join(format!(
                "{}.{}.stand-ins.log",
                target.namespace, target.stream
            )),
        });
        let fleet = Fleet::with_config(fc)?;
        locals.push(Arc::new(LocalStream {
            stream,
            target,
            fleet: Arc::new(fleet),
            status: Mutex::new(None),
            events: Mutex::new(std::collections::VecDeque::new()),
        }));
    }
    let locals = Arc::new(locals);
    let metrics = Arc::new(Metrics::new());
    metrics.set_leading();
    let app = api::router(locals.clone(), metrics.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    info!(
        "surge-operator local: {} Stream(s) at speed {}, policy {}; API on http://{}{}; relay {}; relay logs in {}",
        locals.len(),
        opts.speed,
        opts.policy.name(),
        opts.api_listen,
        api::STREAMS_PATH,
        bin.display(),
        log_dir.display()
    );

    let view = opts.view.then(|| {
        let header = format!(
            "surge-operator local: speed {}, policy {}, API http://{}{}, logs in {} (Ctrl-C stops)",
            opts.speed,
            opts.policy.name(),
            opts.api_listen,
            api::STREAMS_PATH,
            log_dir.display()
        );
        tokio::spawn(draw_view(locals.clone(), header, opts.speed))
    });

    let scraper = Scraper::new(cfg.scrape_timeout);
    let driver = Driver::new(cfg, scraper, metrics, opts.speed);
    let loops = futures::future::try_join_all(locals.iter().map(|l| driver.drive(l)));
    let result = tokio::select! {
        r = loops => r.map(|_| ()).map_err(LocalError::from),
        which = signals.recv() => {
            info!("{which}: stopping every relay");
            Ok(())
        }
    };
    if let Some(view) = view {
        view.abort();
    }
    for local in locals.iter() {
        let pids = local.fleet.shutdown().await;
        let line = format!(
            "{}: stopped {} relay(s){}",
            local.target.stream,
            pids.len(),
            if pids.is_empty() {
                String::new()
            } else {
                format!(" (pids {pids:?})")
            }
        );
        if opts.view {
            // The log is in a file: say it where the view was.
            println!("{line}");
        }
        info!("{line}");
    }
    server.abort();
    result
}

/// Redraws the terminal view every second until aborted.
async fn draw_view(locals: Arc<Vec<Arc<LocalStream>>>, header: String, speed: f64) {
    use std::io::Write as _;
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let trace = started.elapsed().as_secs_f64() * speed;
        let snapshots: Vec<_> = locals
            .iter()
            .map(|l| {
                let status = l.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let events = l.events.lock().unwrap_or_else(|e| e.into_inner()).clone();
                (l.target.stream.as_str(), status, events)
            })
            .collect();
        let streams: Vec<StreamView<'_>> = snapshots
            .iter()
            .map(|(name, status, events)| StreamView {
                name,
                status: status.as_ref(),
                events,
            })
            .collect();
        let screen = render(&format!("{header}\ntrace time {:.0} s", trace), &streams);
        // Home the cursor and clear, then the screen: one write, so it does not flicker.
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[H\x1b[2J{screen}");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::addresses::DEFAULT_FIRST_REGION_OCTET;

    #[test]
    fn the_relay_is_looked_for_next_to_the_operator_first() {
        let exe = Path::new("/w/target/debug/surge-operator");
        assert_eq!(
            default_relay_bins(Some(exe)),
            [
                PathBuf::from("/w/target/debug/surge-relay"),
                PathBuf::from("/w/target/release/surge-relay"),
                PathBuf::from("target/release/surge-relay"),
            ]
        );
        assert_eq!(
            default_relay_bins(None),
            [PathBuf::from("target/release/surge-relay")]
        );
    }

    #[test]
    fn trace_times_become_wall_times() {
        let opts = LocalOptions {
            files: Vec::new(),
            speed: 10.0,
            ready_delay: Duration::from_secs(30),
            drain_grace: Duration::from_secs(30),
            scrape_interval: Duration::from_secs(5),
            api_listen: "127.0.0.1:0".parse().expect("address"),
            relay_bin: None,
            log_dir: None,
            first_octet: DEFAULT_FIRST_REGION_OCTET,
            policy: ScalingPolicy::Hpa,
            view: false,
            parent_links: false,
        };
        let cfg = operator_config(&opts);
        // The loop divides its intervals itself; relays drain 30 s of trace time.
        assert_eq!(cfg.scrape_interval, Duration::from_secs(5));
        assert_eq!(cfg.relay_shutdown_grace_seconds, 3);
        assert_eq!(cfg.policy, ScalingPolicy::Hpa);
        let fc = fleet_config(&opts, &cfg, Path::new("/bin/true"), Path::new("/tmp"), 201);
        assert_eq!(fc.ready_delay, Duration::from_secs(3));
        assert_eq!(fc.drain_grace, Duration::from_secs(5));
        assert_eq!(fc.first_region_octet, 201);
        let slow = LocalOptions { speed: 0.5, ..opts };
        assert_eq!(operator_config(&slow).relay_shutdown_grace_seconds, 60);
    }
}
