//! `surge-load publish`: an RTMP publisher whose every video frame carries its publish
//! wall-clock time in a timing SEI. Synthetic frames or a looped FLV file; reconnects.

mod signing;
mod source;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::rtmp_client::{RtmpConnection, RtmpError, RtmpUrl};
use crate::tls_client::dial;
use signing::SessionSigner;
pub use source::{Looped, Source, Synthetic};
use std::sync::Arc;
use surge_integrity::SigningKey;
use surge_wire::amf0::{self, Amf0Value, object, string};
use surge_wire::message::MSG_AMF0_DATA;
use tokio_rustls::TlsConnector;

/// How long a connection step (TCP connect, TLS handshake) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// Where to publish: rtmp://HOST:PORT/APP/STREAM, or rtmps://HOST[:PORT]/APP/STREAM for
    /// RTMP in TLS (port 443 when left out). A publish key goes in the stream name:
    /// STREAM?key=SECRET (never logged).
    #[arg(long)]
    pub url: String,
    /// PEM CA certificates that an rtmps:// server's certificate may chain to, besides the
    /// system's (a private or test CA). Repeatable.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// Video bitrate of the synthetic stream, kbit/s.
    #[arg(long, default_value_t = 600)]
    pub bitrate_kbps: u32,
    /// Frames per second of the synthetic stream.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Seconds between keyframes of the synthetic stream.
    #[arg(long, default_value_t = 2.0)]
    pub gop_seconds: f64,
    /// Picture size announced by the synthetic stream's SPS (multiples of 16).
    #[arg(long, default_value = "640x368", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Publish this long (e.g. 90s, 5m, 1h), then exit; `forever` publishes until
    /// interrupted (Ctrl-C) or killed.
    #[arg(long, value_name = "DURATION|forever", default_value = "60s", value_parser = parse_run_for)]
    pub duration: RunFor,
    /// Loop this FLV file (H.264 video, optional AAC audio) instead of synthetic frames.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Sign the stream at the source with this Ed25519 private key (PEM, as `openssl genpkey
    /// -algorithm ed25519` writes it): a `@surgeSignature` data message before each group of
    /// frames, which relays pass on and check with `surge-relay --verify-key`.
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
}

/// How long `surge-load publish` runs (`--duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFor {
    /// `--duration forever`: until interrupted (Ctrl-C) or killed.
    Forever,
    /// `--duration 60s` (the default): this long, then a clean exit.
    Limit(Duration),
}

impl RunFor {
    /// The time limit, `None` for [`RunFor::Forever`].
    pub fn limit(self) -> Option<Duration> {
        match self {
            RunFor::Forever => None,
            RunFor::Limit(d) => Some(d),
        }
    }
}

/// Parses `forever` or a non-zero duration ([`surge_flags::duration`]). Zero is refused rather than
/// read as "forever" (it would publish nothing), so the unbounded run has one spelling.
pub fn parse_run_for(s: &str) -> Result<RunFor, String> {
    if s.trim().eq_ignore_ascii_case("forever") {
        return Ok(RunFor::Forever);
    }
    let d = surge_flags::duration(s)
        .map_err(|e| format!("{e}, or `forever` to run until interrupted"))?;
    if d.is_zero() {
        return Err(format!(
            "`{s}` would publish nothing; use `forever` to run until interrupted"
        ));
    }
    Ok(RunFor::Limit(d))
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("size must look like 640x368")?;
    let w: u32 = w.parse().map_err(|_| "bad width")?;
    let h: u32 = h.parse().map_err(|_| "bad height")?;
    if w == 0 || h == 0 || !w.is_multiple_of(16) || !h.is_multiple_of(16) {
        return Err("width and height must be non-zero multiples of 16".into());
    }
    Ok((w, h))
}

pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn run(args: PublishArgs) -> Result<()> {
    crate::init_logging();
    let url = RtmpUrl::parse(&args.url).map_err(anyhow::Error::msg)?;
    let source = match &args.input {
        Some(path) => {
            let tags = crate::flv::read_flv(path)
                .with_context(|| format!("cannot use --input {}", path.display()))?;
            Source::Looped(
                Looped::new(tags)
                    .map_err(|e| anyhow::anyhow!("cannot use --input {}: {e}", path.display()))?,
            )
        }
        None => {
            anyhow::ensure!(args.fps > 0 && args.fps <= 240, "--fps must be 1..=240");
            anyhow::ensure!(args.bitrate_kbps > 0, "--bitrate-kbps must be positive");
            anyhow::ensure!(args.gop_seconds > 0.0, "--gop-seconds must be positive");
            Source::Synthetic(Synthetic::new(
                args.bitrate_kbps,
                args.fps,
                args.gop_seconds,
                args.size.0,
                args.size.1,
            ))
        }
    };
    let sign_key = match &args.sign_key {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --sign-key {}", path.display()))?;
            let key = SigningKey::from_pem(&pem)
                .with_context(|| format!("cannot use --sign-key {}", path.display()))?;
            info!(key_id = %key.id(), "signing frames");
            Some(Arc::new(key))
        }
        None => None,
    };
    let tls = if url.tls {
        Some(crate::tls_client::connector(&args.ca_file)?)
    } else {
        anyhow::ensure!(
            args.ca_file.is_empty(),
            "--ca-file is only used with rtmps:// URLs"
        );
        None
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(publish_forever(args, url, tls, source, sign_key))
}

/// `url` with the value of every `key=` / `token=` query parameter hidden, for logs: a stream
/// key is a secret.
pub(crate) fn redacted(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((name, _)) if name == "key" || name == "token" => format!("{name}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

/// Counters over the whole run.
#[derive(Default)]
struct Totals {
    frames: u64,
    bytes: u64,
    sessions: u64,
}

async fn publish_forever(
    args: PublishArgs,
    url: RtmpUrl,
    tls: Option<TlsConnector>,
    mut source: Source,
    sign_key: Option<Arc<SigningKey>>,
) -> Result<()> {
    let shown = redacted(&args.url);
    info!(url = %shown, "publishing {}", source.describe());
    let started = Instant::now();
    let deadline = args.duration.limit().map(|d| started + d);
    let mut totals = Totals::default();
    let mut backoff = Duration::from_millis(250);
    loop {
        let signer = sign_key.clone().map(SessionSigner::new);
        let session = publish_session(
            &url,
            tls.as_ref(),
            &mut source,
            started,
            deadline,
            &mut totals,
            signer,
        );
        let outcome = tokio::select! {
            r = session => r,
            _ = tokio::signal::ctrl_c() => {
                info!("interrupted");
                break;
            }
        };
        match outcome {
            Ok(()) => break,
            Err(e) => {
                if deadline.is_some_and(|d| Instant::now() + backoff >= d) {
                    warn!(url = %shown, "publish failed: {e}; deadline reached");
                    break;
                }
                warn!(url = %shown, "publish failed: {e}; reconnecting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(4));
            }
        }
        if totals.sessions > 0 && totals.frames > 0 {
            backoff = backoff.min(Duration::from_secs(1));
        }
    }
    info!(
        frames = totals.frames,
        mbytes = totals.bytes as f64 / 1e6,
        sessions = totals.sessions,
        secs = started.elapsed().as_secs_f64(),
        "publisher done"
    );
    Ok(())
}

async fn publish_session(
    url: &RtmpUrl,
    tls: Option<&TlsConnector>,
    source: &mut Source,
    started: Instant,
    deadline: Option<Instant>,
    totals: &mut Totals,
    mut signer: Option<SessionSigner>,
) -> Result<(), RtmpError> {
    let (socket, _) = dial(&url.addr(), &url.host, tls, STEP_TIMEOUT).await?;
    let mut conn = RtmpConnection::over(socket, &url.app, &url.tc_url()).await?;
    let stream_id = conn.create_stream().await?;
    conn.publish(stream_id, &url.stream).await?;
    totals.sessions += 1;
    info!(
        session = totals.sessions,
        "publishing to {}",
        redacted(&format!("{}/{}", url.tc_url(), url.stream))
    );
    let (w, h, fps, kbps) = source.width_height_fps_kbps();
    let mut meta = vec![
        ("videocodecid", Amf0Value::Number(7.0)),
        ("encoder", string("surge-load")),
    ];
    if w > 0 {
        meta.extend([
            ("width", Amf0Value::Number(w as f64)),
            ("height", Amf0Value::Number(h as f64)),
            ("framerate", Amf0Value::Number(fps as f64)),
            ("videodatarate", Amf0Value::Number(kbps as f64)),
        ]);
    }
    // Encoded once here (not by queue_metadata): a signature covers these exact bytes.
    let meta = amf0::encode(vec![
        string("@setDataFrame"),
        string("onMetaData"),
        object(meta),
    ])?;
    if let Some(sig) = signer.as_mut().and_then(|s| s.metadata(&meta)) {
        conn.queue_media(stream_id, MSG_AMF0_DATA, 0, &sig);
    }
    conn.queue_media(stream_id, MSG_AMF0_DATA, 0, &meta);
    let at_ms = started.elapsed().as_millis() as u32;
    source.restart(at_ms);
    for (type_id, payload) in source.headers() {
        if let Some(sig) = signer
            .as_mut()
            .and_then(|s| s.media(type_id, at_ms, &payload))
        {
            conn.queue_media(stream_id, MSG_AMF0_DATA, at_ms, &sig);
        }
        conn.queue_media(stream_id, type_id, at_ms, &payload);
    }
    conn.flush().await?;
    let mut payload = Vec::with_capacity(64 * 1024);
    let mut last_log = Instant::now();
    let mut frames_at_log = totals.frames;
    let mut bytes_at_log = totals.bytes;
    loop {
        let due = started + Duration::from_millis(source.next_due_ms() as u64);
        if deadline.is_some_and(|d| due >= d) {
            if let Some(sig) = signer.as_mut().and_then(|s| s.finish()) {
                let ts = started.elapsed().as_millis() as u32;
                conn.queue_media(stream_id, MSG_AMF0_DATA, ts, &sig);
                conn.flush().await?;
            }
            return Ok(());
        }
        tokio::time::sleep_until(due.into()).await;
        conn.poll_incoming()?;
        // Send everything that is due now as one write.
        while started + Duration::from_millis(source.next_due_ms() as u64) <= Instant::now() {
            let (type_id, ts, video) = source.emit(unix_micros(), totals.frames, &mut payload);
            if let Some(sig) = signer.as_mut().and_then(|s| s.media(type_id, ts, &payload)) {
                conn.queue_media(stream_id, MSG_AMF0_DATA, ts, &sig);
            }
            conn.queue_media(stream_id, type_id, ts, &payload);
            totals.bytes += payload.len() as u64;
            if video {
                totals.frames += 1;
            }
        }
        conn.flush().await?;
        if last_log.elapsed() >= Duration::from_secs(10) {
            let secs = last_log.elapsed().as_secs_f64();
            info!(
                fps = format!("{:.1}", (totals.frames - frames_at_log) as f64 / secs),
                kbps = format!(
                    "{:.0}",
                    (totals.bytes - bytes_at_log) as f64 * 8.0 / 1000.0 / secs
                ),
                frames = totals.frames,
                "publishing"
            );
            last_log = Instant::now();
            frames_at_log = totals.frames;
            bytes_at_log = totals.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_never_reach_the_log() {
        assert_eq!(
            redacted("rtmp://h:1935/live/s?key=SECRET&x=1"),
            "rtmp://h:1935/live/s?key=***&x=1"
        );
        assert_eq!(
            redacted("rtmp://h/live/s?token=t"),
            "rtmp://h/live/s?token=***"
        );
        assert_eq!(redacted("rtmp://h/live/s"), "rtmp://h/live/s");
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("320x240"), Ok((320, 240)));
        assert!(parse_size("321x240").is_err());
    }

    #[test]
    fn parses_run_for() {
        assert_eq!(parse_run_for("forever"), Ok(RunFor::Forever));
        assert_eq!(parse_run_for("Forever"), Ok(RunFor::Forever));
        assert_eq!(
            parse_run_for("90s"),
            Ok(RunFor::Limit(Duration::from_secs(90)))
        );
        assert_eq!(RunFor::Forever.limit(), None);
        assert_eq!(
            RunFor::Limit(Duration::from_secs(5)).limit(),
            Some(Duration::from_secs(5))
        );
        // Zero is not a second spelling of "forever": it is refused, naming `forever`.
        for zero in ["0", "0s", "0ms"] {
            let err = parse_run_for(zero).expect_err(zero);
            assert!(err.contains("forever"), "{err}");
        }
        let err = parse_run_for("fast").expect_err("not a duration");
        assert!(err.contains("forever"), "{err}");
    }
}
