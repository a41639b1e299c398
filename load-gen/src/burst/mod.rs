//! `surge-load burst`: a burst of connections joining at once — HTTP(S)-FLV viewers or
//! RTMP(S) publishers — and how long each step took (TCP connect, TLS handshake, first
//! video or publish accepted). It measures what a crowd's arrival costs a relay, for
//! example with TLS against without (scripts/bench/tls-burst.sh reads the relay's CPU
//! around it).

mod connection;
mod report;
mod target;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use connection::{Held, Joined};
pub use report::{BurstReport, Summary};
pub use target::BurstTarget;

/// The open-file limit here is 20,000 per process: leave room for everything else.
const MAX_CONNECTIONS: u64 = 15_000;

#[derive(Debug, Clone, clap::Args)]
pub struct BurstArgs {
    /// What each connection does: http(s)://HOST[:PORT]/APP/STREAM.flv plays until the first
    /// video tag; rtmp(s)://HOST[:PORT]/APP/STREAM[?key=SECRET] publishes until the server
    /// answers NetStream.Publish.Start. `{n}` is replaced by the connection's number (0, 1,
    /// ...), so publishers can each take their own stream name.
    #[arg(long)]
    pub url: String,
    /// How many connections.
    #[arg(long, default_value_t = 100)]
    pub count: u64,
    /// Spread the connections' starts evenly over this long (e.g. 1s); 0 starts all at once.
    #[arg(long, default_value = "0s", value_parser = surge_flags::duration)]
    pub over: Duration,
    /// Keep each connection open this long after it joined (viewers keep reading), so the
    /// relay holds the whole burst at once.
    #[arg(long, default_value = "2s", value_parser = surge_flags::duration)]
    pub hold: Duration,
    /// PEM CA certificates that an https:// or rtmps:// server's certificate may chain to,
    /// besides the system's. Repeatable.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub fn run(args: BurstArgs) -> Result<()> {
    crate::init_logging();
    anyhow::ensure!(
        (1..=MAX_CONNECTIONS).contains(&args.count),
        "--count must be 1..={MAX_CONNECTIONS} (the open-file limit is 20,000 per process)"
    );
    let first = BurstTarget::parse(&args.url, 0).map_err(anyhow::Error::msg)?;
    let tls = if first.tls() {
        Some(crate::tls_client::connector(&args.ca_file)?)
    } else {
        anyhow::ensure!(
            args.ca_file.is_empty(),
            "--ca-file is only used with https:// and rtmps:// URLs"
        );
        None
    };
    let targets: Vec<BurstTarget> = (0..args.count)
        .map(|n| BurstTarget::parse(&args.url, n))
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (results, wall) = runtime.block_on(burst(targets, tls, args.over, args.hold));
    let report = BurstReport::new(
        crate::publish::redacted(&args.url),
        first.kind(),
        first.tls(),
        args.over,
        &results,
        wall,
    );
    print!("{}", report.text());
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write --report {}", path.display()))?;
    }
    anyhow::ensure!(report.joined > 0, "no connection joined");
    Ok(())
}

/// Starts every connection on schedule; returns each one's outcome and the time from the
/// first start to the last join.
async fn burst(
    targets: Vec<BurstTarget>,
    tls: Option<tokio_rustls::TlsConnector>,
    over: Duration,
    hold: Duration,
) -> (Vec<Result<Joined, String>>, Duration) {
    let count = targets.len() as u32;
    let t0 = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for (i, target) in targets.into_iter().enumerate() {
        let start = t0 + over * i as u32 / count.max(1);
        let tls = tls.clone();
        tasks.spawn(async move {
            tokio::time::sleep_until(start).await;
            let outcome = connection::join(&target, tls.as_ref()).await;
            let joined_at = Instant::now();
            match outcome {
                Ok((joined, held)) => {
                    keep(held, hold).await;
                    (Ok(joined), Some(joined_at))
                }
                Err(e) => (Err(e), None),
            }
        });
    }
    let started = Instant::now();
    let mut results = Vec::with_capacity(count as usize);
    let mut last_join = started;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((r, at)) => {
                last_join = at.map_or(last_join, |at| at.max(last_join));
                results.push(r);
            }
            Err(e) => results.push(Err(format!("connection task failed: {e}"))),
        }
    }
    (results, last_join.saturating_duration_since(started))
}

/// Holds a joined connection open for `hold`; a viewer keeps reading what it is sent.
async fn keep(held: Held, hold: Duration) {
    match held {
        Held::Viewer(mut socket) => {
            let mut buf = vec![0u8; 16 * 1024];
            let _ = tokio::time::timeout(hold, async {
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
            })
            .await;
        }
        Held::Publisher(conn) => {
            tokio::time::sleep(hold).await;
            drop(conn);
        }
    }
}
