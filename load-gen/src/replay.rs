//! `surge-load replay`: real viewer connections that follow a trace's arrivals and
//! departures per region, with a live progress display, a JSON and an HTML report.

mod connect;
mod histogram;
mod hls;
mod hls_http;
mod hls_stats;
mod html;
pub(crate) mod http_flv;
mod integrity;
mod locator;
mod pace;
mod placement;
mod progress;
mod qoe;
mod qoe_html;
mod qoe_totals;
mod reach;
mod report;
mod schedule;
mod slow;
mod socket;
mod stats;
mod svg;
mod target;
mod viewer;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::task::JoinHandle;
use tracing::info;

pub use histogram::Histogram;
pub use schedule::{RegionSchedule, plan_tick, scale_for};
pub use target::{Access, Endpoint, Protocol, ProtocolChoice, parse_target};

use crate::trace::{TOTAL_REGION, read_trace};
use pace::{Pace, SlowRate, parse_slow_rate};
use stats::Stats;
use surge_flags::{duration, positive_duration};
use viewer::{SessionEnd, ViewerSpec, run_session, run_viewer};

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The trace (livetrace v1 CSV).
    #[arg(long)]
    pub trace: PathBuf,
    /// Which broadcast of the trace to replay (default: the first).
    #[arg(long)]
    pub broadcast: Option<String>,
    /// Where a region's viewers go; repeat per region. Region `*` serves regions without
    /// their own target; a single target serves every region. Two forms:
    /// `REGION=HOST:RTMP_PORT[:HTTP_PORT]`: one relay, every viewer plays there (the HTTP port
    /// is needed for `--protocol flv|mix`).
    /// `REGION=http://HOST:PORT`: the region's locator (a surge-relay started with
    /// `--placement-peer`), which places each viewer as it would a real player: an HTTP-FLV
    /// viewer GETs /APP/STREAM.flv there and follows the 302 (at most 3 redirects;
    /// `X-Surge-Placement` tells edge from overflow), an RTMP viewer asks
    /// /api/v1/locate?app=APP&stream=STREAM&protocol=rtmp and plays the rtmp:// URL it gets.
    /// A 503 there counts as refused and the viewer asks again after its Retry-After (within
    /// 0.25-30 s; 2 s if none) for as long as the trace keeps it. The reports count refusals,
    /// overflow placements and viewers per relay.
    /// Several targets for one region are a pool: each viewer session picks one at random,
    /// as a Kubernetes Service does per connection; a 503 (HTTP-FLV) or NetStream.Play.Failed
    /// (RTMP) from a pool member counts as refused and the viewer retries on a new pick.
    #[arg(long = "target", required = true, value_parser = parse_target, verbatim_doc_comment)]
    pub targets: Vec<Endpoint>,
    /// APP/STREAM to play.
    #[arg(long)]
    pub stream: String,
    /// Trace seconds per wall second. The default 10 replays a 20-minute trace in 2 minutes;
    /// `--speed 1` replays it in real time.
    #[arg(long, default_value_t = 10.0)]
    pub speed: f64,
    /// Scale the trace down so its peak total is at most this many viewers.
    #[arg(long)]
    pub max_viewers: Option<u64>,
    /// Viewer protocol.
    #[arg(long, value_enum, default_value = "rtmp")]
    pub protocol: ProtocolChoice,
    /// The player buffer model's pre-buffer P (seconds buffered before playing and after a
    /// stall): join time, stalls, stall ratio (`stall_ratio`, `details.stalls`, `qoe`) and
    /// playback latency in the report are under this P. `--prebuffer-seconds` is the same
    /// flag (its older name).
    #[arg(
        long = "player-buffer",
        visible_alias = "prebuffer-seconds",
        default_value_t = 2.0
    )]
    pub prebuffer_seconds: f64,
    /// More pre-buffer sizes (seconds, comma-separated) modelled side by side, with
    /// `--player-buffer`'s: the report's stalls, stall ratio and playback latency per P
    /// (`qoe.by_player_buffer`; `details.stall_by_prebuffer` and the HTML plots of stall
    /// ratio against pre-buffer have the same sizes).
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,2,6,9")]
    pub buffer_sweep: Vec<f64>,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the HTML report (with plots) here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Stop after this much wall time even if the trace goes on (e.g. 60s).
    #[arg(long, value_parser = positive_duration)]
    pub duration: Option<Duration>,
    /// Leave the first part of the run (e.g. a ramp, 8s) out of the latency totals
    /// (`lag_ms`, per-region lag, the `qoe` playback latency and buffering delay); the
    /// timeline still shows it, and stalls count from the start. 0: count from the start.
    #[arg(long, value_parser = duration)]
    pub warmup: Option<Duration>,
    /// Skip the start-up check that every target serves the stream.
    #[arg(long)]
    pub no_preflight: bool,
    /// Let the kernel delay TCP ACKs to the relay (TCP_QUICKACK off after each read): about
    /// half the ACKs, which on loopback saves the load generator much of its kernel time.
    /// Real players ACK at once, so the relay does a little less work than with them.
    #[arg(long)]
    pub delayed_acks: bool,
    /// Check signed frames (see the README's "Signed frames"): every viewer runs a verifier
    /// over what it receives, with this Ed25519 public key PEM (or a private key, whose public
    /// half is meant); repeat for several trusted keys. The reports count frames verified,
    /// failed (by reason) and unverified, per second and per viewer. Viewers then read whole
    /// frames, not just their first bytes, which costs the load generator more CPU.
    #[arg(long = "verify-key", value_name = "FILE")]
    pub verify_keys: Vec<PathBuf>,
    /// `--protocol hls`: how many segments from the playlist's end a viewer starts (RFC 8216
    /// §6.3.3: a player should start at least three target durations back; 1 starts with
    /// the newest segment).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=20))]
    pub hls_start_segments: u8,
    /// Slow viewers on top of the trace's crowd (RTMP or HTTP-FLV, as `--protocol`; spread
    /// over the regions' targets): they join at the start like the others, then after their
    /// first keyframe read at `--slow-rate` for the whole run (a trickle reader the relay
    /// disconnects comes back after 1 s). Measured apart: the report's other figures are the
    /// normal viewers', `slow_viewers` has theirs (frames received and skipped, sessions the
    /// relay closed and after how long, lag).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub slow_viewers: u32,
    /// How fast slow viewers read once joined: a rate such as `50kbit`, `1.5mbit` or `800bit`
    /// (k = 1,000, as tc), or `0`: stop reading. At the end of the run a stopped viewer reads
    /// again for up to 2 s to see whether the relay had closed its connection. Default: 0.
    #[arg(long, value_parser = parse_slow_rate)]
    pub slow_rate: Option<SlowRate>,
}

/// One region's plan and its live viewers.
struct RegionRun {
    schedule: RegionSchedule,
    endpoints: Rc<[Endpoint]>,
    viewers: Vec<JoinHandle<()>>,
    arrivals_made: u64,
}

pub fn run(args: ReplayArgs) -> Result<()> {
    crate::init_logging();
    let prepared = prepare(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&runtime, replay(args.clone(), prepared))?;
    print_summary(&report);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        info!("JSON report: {}", path.display());
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
        info!("HTML report: {}", path.display());
    }
    Ok(())
}

struct Prepared {
    broadcast: String,
    /// Each region's schedule and its target (several: a pool picked from at random).
    regions: Vec<(RegionSchedule, Vec<Endpoint>)>,
    app: String,
    stream: String,
    scale: f64,
    verify: Option<Rc<surge_integrity::KeyRing>>,
}

/// Everything that can be checked before connecting: the trace, the targets, the flags.
fn prepare(args: &ReplayArgs) -> Result<Prepared> {
    anyhow::ensure!(
        args.speed > 0.0 && args.speed.is_finite(),
        "--speed must be positive"
    );
    anyhow::ensure!(
        args.prebuffer_seconds >= 0.0 && args.prebuffer_seconds <= 60.0,
        "--player-buffer must be between 0 and 60 seconds"
    );
    anyhow::ensure!(
        args.buffer_sweep.len() <= 16 && args.buffer_sweep.iter().all(|p| (0.0..=60.0).contains(p)),
        "--buffer-sweep takes at most 16 sizes, each between 0 and 60 seconds"
    );
    anyhow::ensure!(
        args.slow_viewers == 0 || args.protocol != ProtocolChoice::Hls,
        "--slow-viewers plays RTMP or HTTP-FLV, not --protocol hls"
    );
    anyhow::ensure!(
        args.slow_viewers > 0 || args.slow_rate.is_none(),
        "--slow-rate needs --slow-viewers N (N > 0)"
    );
    let verify = integrity::load_keys(&args.verify_keys)?.map(Rc::new);
    let (app, stream) = args
        .stream
        .split_once('/')
        .filter(|(a, s)| !a.is_empty() && !s.is_empty())
        .with_context(|| format!("--stream `{}` must be APP/STREAM", args.stream))?;
    let trace = read_trace(&args.trace)
        .with_context(|| format!("invalid trace {}", args.trace.display()))?;
    let ids = trace.broadcast_ids();
    let broadcast = match &args.broadcast {
        Some(b) if ids.contains(b) => b.clone(),
        Some(b) => bail!(
            "broadcast `{b}` is not in {} (it has: {})",
            args.trace.display(),
            ids.join(", ")
        ),
        None => ids.first().cloned().context("trace has no broadcasts")?,
    };
    let mut regions = trace.regions(&broadcast);
    if regions.is_empty() {
        regions.push(TOTAL_REGION.to_owned());
    }
    let total = trace.series(&broadcast, TOTAL_REGION);
    let peak = total.iter().map(|s| s.viewers).max().unwrap_or(0);
    let scale = scale_for(peak, args.max_viewers);
    let mut planned = Vec::new();
    for region in &regions {
        let endpoints = target::endpoints_for(&args.targets, region);
        if endpoints.is_empty() {
            bail!(
                "no --target for region `{region}` of broadcast `{broadcast}` (add --target {region}=HOST:PORT or a default --target '*=HOST:PORT')"
            );
        }
        for endpoint in &endpoints {
            if args.protocol == ProtocolChoice::Hls && endpoint.is_locator() {
                bail!(
                    "--protocol hls plays from a server's HTTP port (--target {}=HOST:RTMP_PORT:HTTP_PORT), not through a locator",
                    endpoint.region
                );
            }
            if args.protocol.needs_http() && endpoint.http_port().is_none() {
                bail!(
                    "--protocol {:?} needs an HTTP port: --target {endpoint}:HTTP_PORT (or a locator, --target {}=http://HOST:PORT)",
                    args.protocol,
                    endpoint.region,
                );
            }
        }
        let samples = trace.series(&broadcast, region);
        planned.push((
            RegionSchedule::new(region, &samples, scale),
            endpoints.into_iter().cloned().collect(),
        ));
    }
    Ok(Prepared {
        broadcast,
        regions: planned,
        app: app.to_owned(),
        stream: stream.to_owned(),
        scale,
        verify,
    })
}

/// Checks that every target is reachable and serves the stream, with one probe viewer
/// per target and protocol.
async fn preflight(
    args: &ReplayArgs,
    p: &Prepared,
    protocol: ProtocolChoice,
    stats: &Rc<RefCell<Stats>>,
) -> Result<()> {
    let mut checked: Vec<(String, Protocol)> = Vec::new();
    let targets = p
        .regions
        .iter()
        .enumerate()
        .flat_map(|(i, (sched, eps))| eps.iter().map(move |e| (i, sched, e)));
    for (i, sched, endpoint) in targets {
        let mut protocols = Vec::new();
        if protocol.needs_rtmp() {
            protocols.push(Protocol::Rtmp);
        }
        if protocol.needs_http() {
            protocols.push(protocol.for_viewer(1));
        }
        for proto in protocols {
            let key = (format!("{endpoint:?}"), proto);
            if checked.contains(&key) {
                continue;
            }
            let spec = ViewerSpec {
                region: i,
                protocol: proto,
                endpoints: Rc::from(vec![endpoint.clone()]),
                app: p.app.as_str().into(),
                stream: p.stream.as_str().into(),
                delayed_acks: false,
                viewer: 0,
                verify: None,
                hls_start_segments: args.hls_start_segments.into(),
                pace: Pace::Full,
            };
            let url = match (proto, endpoint.rtmp_addr()) {
                (Protocol::Rtmp, Some(addr)) => format!("rtmp://{addr}/{}/{}", p.app, p.stream),
                (Protocol::Rtmp, None) => format!(
                    "rtmp via locator http://{}",
                    endpoint.http_addr().unwrap_or_default()
                ),
                (Protocol::Flv, _) => format!(
                    "http://{}/{}/{}.flv",
                    endpoint.http_addr().unwrap_or_default(),
                    p.app,
                    p.stream
                ),
                (Protocol::Hls, _) => format!(
                    "http://{}/{}/{}.m3u8",
                    endpoint.http_addr().unwrap_or_default(),
                    p.app,
                    p.stream
                ),
            };
            // A publisher started at the same moment may need a few seconds to go live:
            // retry "not found" answers for a while, fail at once on anything else.
            let deadline = Instant::now() + PREFLIGHT_PATIENCE;
            loop {
                match run_session(&spec, stats, true, &Default::default()).await {
                    SessionEnd::Probed(t) => {
                        info!(region = %sched.region, "{url} serves video (first keyframe after {t:.0?})");
                        break;
                    }
                    SessionEnd::Error(e) | SessionEnd::Disconnected(e)
                        if is_not_live(&e) && Instant::now() < deadline =>
                    {
                        info!(region = %sched.region, "{url}: {e}; waiting for the stream");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    // A locator whose peers are not polled yet, or are all full, may have
                    // room in a moment: as patient as with a stream not live yet.
                    SessionEnd::Refused(wait) if Instant::now() + wait < deadline => {
                        info!(region = %sched.region, "{url}: refused (no room); asking again in {wait:?}");
                        tokio::time::sleep(wait).await;
                    }
                    SessionEnd::Refused(_) => bail!(
                        "target for region `{}` is not usable: {url}: refused (nothing has room) for {PREFLIGHT_PATIENCE:?}",
                        sched.region
                    ),
                    SessionEnd::Error(e) | SessionEnd::Disconnected(e) => bail!(
                        "target for region `{}` is not usable: {url}: {e}",
                        sched.region
                    ),
                }
            }
            checked.push(key);
        }
    }
    Ok(())
}

/// How long the preflight waits for a stream that is not live yet.
const PREFLIGHT_PATIENCE: Duration = Duration::from_secs(15);

/// Answers that mean "no such stream (yet)" rather than "broken target".
fn is_not_live(error: &str) -> bool {
    error.contains("NotFound") || error.contains("HTTP 404") || error.contains("Failed")
}

/// A tiny xorshift generator: picks which viewers leave.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

async fn replay(args: ReplayArgs, p: Prepared) -> Result<serde_json::Value> {
    let region_names: Vec<String> = p.regions.iter().map(|(s, _)| s.region.clone()).collect();
    let stats = Rc::new(RefCell::new(Stats::new(
        &region_names,
        args.prebuffer_seconds,
        &args.buffer_sweep,
    )));
    if !args.no_preflight {
        preflight(&args, &p, args.protocol, &stats).await?;
    }
    // Start measuring afresh once the probes are done.
    *stats.borrow_mut() = Stats::new(&region_names, args.prebuffer_seconds, &args.buffer_sweep);
    if p.verify.is_some() {
        stats.borrow_mut().integrity = Some(Default::default());
    }
    let app: Rc<str> = p.app.as_str().into();
    let stream: Rc<str> = p.stream.as_str().into();
    let mut regions: Vec<RegionRun> = p
        .regions
        .iter()
        .map(|(schedule, endpoints)| RegionRun {
            schedule: schedule.clone(),
            endpoints: Rc::from(endpoints.clone()),
            viewers: Vec::new(),
            arrivals_made: 0,
        })
        .collect();
    let t_start = regions
        .iter()
        .map(|r| r.schedule.start())
        .fold(f64::MAX, f64::min);
    let t_end = regions
        .iter()
        .map(|r| r.schedule.end())
        .fold(f64::MIN, f64::max);
    let wall_total = (t_end - t_start) / args.speed;
    info!(
        broadcast = %p.broadcast,
        regions = regions.len(),
        scale = format!("{:.4}", p.scale),
        "replaying {:.0} s of trace in {:.0} s",
        t_end - t_start,
        args.duration.map(|d| d.as_secs_f64()).unwrap_or(f64::MAX).min(wall_total)
    );
    let interrupted = Rc::new(std::cell::Cell::new(false));
    {
        let flag = interrupted.clone();
        tokio::task::spawn_local(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.set(true);
            }
        });
    }
    let mut display = progress::Progress::new(t_end - t_start);
    stats.borrow_mut().start(args.warmup.unwrap_or_default());
    let slow = (args.slow_viewers > 0).then(|| {
        let endpoints: Vec<Rc<[Endpoint]>> = regions.iter().map(|r| r.endpoints.clone()).collect();
        let mut st = Stats::new(&region_names, args.prebuffer_seconds, &args.buffer_sweep);
        // Their lag counts from the start: falling behind is what they are there for.
        st.start(Duration::ZERO);
        let rate = args.slow_rate.unwrap_or(SlowRate::Stop);
        info!(
            viewers = args.slow_viewers,
            "slow viewers: reading at {rate} once joined"
        );
        slow::SlowCrowd::start(
            args.slow_viewers,
            rate,
            st,
            &slow::Placement {
                regions: &endpoints,
                protocol: args.protocol,
                app: app.clone(),
                stream: stream.clone(),
                delayed_acks: args.delayed_acks,
            },
        )
    });
    let started = stats.borrow().started;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut viewer_counter = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_window = started + Duration::from_secs(1);
    loop {
        tick.tick().await;
        let elapsed = started.elapsed();
        let trace_t = t_start + elapsed.as_secs_f64() * args.speed;
        let over = trace_t > t_end || args.duration.is_some_and(|d| elapsed >= d);
        let mut target_total = 0;
        for (i, r) in regions.iter_mut().enumerate() {
            let target = r.schedule.target(trace_t);
            target_total += target;
            let (joins, leaves) = plan_tick(
                r.viewers.len() as u64,
                r.arrivals_made,
                target,
                r.schedule.arrivals_by(trace_t),
            );
            for _ in 0..leaves {
                let k = rng.below(r.viewers.len());
                r.viewers.swap_remove(k).abort();
            }
            for _ in 0..joins {
                let spec = ViewerSpec {
                    region: i,
                    protocol: args.protocol.for_viewer(viewer_counter),
                    endpoints: r.endpoints.clone(),
                    app: app.clone(),
                    stream: stream.clone(),
                    delayed_acks: args.delayed_acks,
                    viewer: viewer_counter,
                    verify: p.verify.clone(),
                    hls_start_segments: args.hls_start_segments.into(),
                    pace: Pace::Full,
                };
                viewer_counter += 1;
                r.viewers
                    .push(tokio::task::spawn_local(run_viewer(spec, stats.clone())));
            }
            r.arrivals_made += joins;
        }
        if Instant::now() >= next_window || over {
            next_window += Duration::from_secs(1);
            let mut st = stats.borrow_mut();
            let point = st.close_window(trace_t.min(t_end), target_total);
            display.update(point, trace_t - t_start);
        }
        if over || interrupted.get() {
            if interrupted.get() {
                info!("interrupted: writing the report for what ran");
            }
            break;
        }
    }
    display.finish();
    // Every viewer leaves; aborted tasks record their sessions as they drop.
    let handles: Vec<JoinHandle<()>> = regions
        .iter_mut()
        .flat_map(|r| r.viewers.drain(..))
        .collect();
    for h in &handles {
        h.abort();
    }
    for h in handles {
        let _ = h.await;
    }
    let info = report::RunInfo {
        trace: args.trace.display().to_string(),
        broadcast: p.broadcast.clone(),
        regions: regions.iter().map(|r| r.schedule.region.clone()).collect(),
        targets: args.targets.iter().map(ToString::to_string).collect(),
        stream: args.stream.clone(),
        protocol: format!("{:?}", args.protocol).to_lowercase(),
        scale: p.scale,
        speed: args.speed,
        prebuffer_seconds: args.prebuffer_seconds,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    let wall_seconds = info.wall_seconds;
    let mut report = report::build(&stats.borrow(), &info);
    if let Some(slow) = slow {
        report["slow_viewers"] = slow.finish().await.report(wall_seconds);
    }
    Ok(report)
}

fn print_summary(report: &serde_json::Value) {
    let f = |v: &serde_json::Value| {
        v.as_f64()
            .map(|x| format!("{x:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "viewers peak {} | sessions {} | startup p50 {} ms p99 {} ms | lag p50 {} ms p99 {} ms max {} ms | stall ratio {:.4} | errors {} | disconnects {}",
        report["viewers_peak"],
        report["viewer_sessions"],
        f(&report["startup_ms"]["p50"]),
        f(&report["startup_ms"]["p99"]),
        f(&report["lag_ms"]["p50"]),
        f(&report["lag_ms"]["p99"]),
        f(&report["lag_ms"]["max"]),
        report["stall_ratio"].as_f64().unwrap_or(0.0),
        report["errors"],
        report["details"]["disconnects"],
    );
    let reconnects = &report["details"]["reconnects"];
    if reconnects["count"].as_u64().unwrap_or(0) > 0 {
        println!(
            "reconnects {} | back to playing p50 {} ms p99 {} ms max {} ms | longest gap between frames {} ms | frames out of order {}",
            reconnects["count"],
            f(&reconnects["p50_ms"]),
            f(&reconnects["p99_ms"]),
            f(&reconnects["max_ms"]),
            f(&report["details"]["frame_gap_max_ms"]),
            report["details"]["frames_out_of_order"],
        );
    }
    for line in report::placement_lines(report) {
        println!("{line}");
    }
    if !report["integrity"].is_null() {
        println!("{}", integrity::summary_line(&report["integrity"]));
    }
    let slow = &report["slow_viewers"];
    if !slow.is_null() {
        println!(
            "slow viewers {} at {} | joined {} | frames {} (skipped by the relay {}) | lag p50 {} ms p99 {} ms | closed by the relay {} (after p50 {} s) | still served at the end {}",
            slow["viewers"],
            slow["rate"].as_str().unwrap_or("-"),
            slow["joined"],
            slow["frames"],
            slow["frames_skipped"],
            f(&slow["lag_ms"]["p50"]),
            f(&slow["lag_ms"]["p99"]),
            slow["closed_by_relay"],
            f(&slow["closed_after_s"]["p50"]),
            slow["still_served_at_final_check"],
        );
    }
    let hls = &report["hls"];
    if !hls.is_null() {
        println!(
            "hls: chunking p50 {} ms | polling p50 {} ms | download p50 {} ms | playlist fetches {} ({} unchanged) | segments {} (missed {})",
            f(&hls["chunking_ms"]["p50"]),
            f(&hls["polling_ms"]["p50"]),
            f(&hls["download_ms"]["p50"]),
            hls["playlist_fetches"],
            hls["playlists_unchanged"],
            hls["segments"],
            hls["segments_missed"],
        );
    }
}
