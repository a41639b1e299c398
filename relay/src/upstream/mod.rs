//! Upstream pulling: one RTMP play connection per stream, tried in `--upstream` order, with
//! failover, capped exponential backoff and monotonic timestamps across reconnects.
//!
//! Where things are:
//! - [`puller`]: the failover loop (which upstream next, backoff, state reports, rebasing).
//! - [`connection`]: one TCP connection: handshake, then bytes in/out of a [`session::PullSession`].
//! - [`session`]: sans-IO play session: the bounded chunk reader of [`surge_wire`] (shared
//!   with ingest) in front of rml_rtmp's `ClientSession`, which only ever sees complete,
//!   checked command messages.
//! - Pure parts: [`status`], [`rebase`], [`backoff`], [`absent_retry`], [`round_trip`], [`url`]; the wire formats are in
//!   [`surge_wire`].

pub mod absent_retry;
pub mod backoff;
mod connection;
pub mod puller;
pub mod quarantine;
pub mod rebase;
pub mod round_trip;
pub mod session;
pub mod status;
pub mod tls;
pub mod url;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::media::MediaMessage;

pub use absent_retry::AbsentRetryPolicy;
pub use backoff::BackoffPolicy;
pub use surge_wire::ChunkLimits;
pub use url::{UpstreamUrl, UrlError};

/// Receives what a puller pulls. Called from the puller's task; implementations must not block.
pub trait MediaSink: Send + Sync + 'static {
    /// Audio, video or metadata, with timestamps already rebased to be monotonic. After a
    /// failover the new upstream's metadata and sequence headers arrive again (mid-stream).
    fn on_media(&self, msg: MediaMessage);
    /// Connection state changes (deduplicated). `Connected` is also reported again when media
    /// resumes after an end of stream on the same connection.
    fn on_upstream_state(&self, state: UpstreamState);
    /// The first audio or video frame came `waited` after the pull started, or after its
    /// upstream was lost while the stream was live (attempts, backoff and failover included).
    fn on_upstream_first_frame(&self, waited: Duration) {
        let _ = waited;
    }
    /// The publisher at the source ended the stream (not a connection failure). The puller keeps
    /// its connection (or keeps retrying quietly) in case the publisher comes back.
    fn on_end_of_stream(&self);
    /// What `upstream` sent failed verification (`--verify-key`); the puller drops it and
    /// fails over. `reason` is a short label.
    fn on_integrity_failure(&self, upstream: &str, reason: &str, detail: &str) {
        let _ = (upstream, reason, detail);
    }
}

/// Picks the relay to pull from in place of the first `--upstream` (a parent of the tier
/// above with room for another child), asked before each attempt on the first upstream.
pub trait ParentChooser: Send + Sync + 'static {
    fn choose(&self) -> ParentChoice;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParentChoice {
    /// `rtmp://host:port` of the parent to pull from.
    Parent(String),
    /// Every parent is full or gone: use `--upstream` as given (the origin last).
    NoneFree,
    /// The relay has not heard from its peers yet (just started): ask again shortly.
    NotYetKnown,
}

/// How long a just-started relay waits for its first view of the parents before it pulls
/// from `--upstream` as given.
pub const PARENT_VIEW_WAIT: Duration = Duration::from_secs(3);

/// Where a puller is in its connection life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum UpstreamState {
    /// First round of attempts, nothing connected yet.
    Connecting,
    /// Playing from `url`.
    Connected { url: String },
    /// Lost the upstream (or the publisher ended and the upstream closed); trying again.
    Reconnecting { last_error: String },
    /// A full round over every upstream failed. The puller keeps retrying at the capped backoff
    /// until it is cancelled.
    Failed,
}

/// What to pull and from where.
#[derive(Clone, Debug, Default)]
pub struct PullerConfig {
    /// `rtmp://host:port/app` in order of preference. A URL without an app uses `app`.
    pub upstreams: Vec<String>,
    pub app: String,
    pub stream: String,
}

/// Tuning knobs; [`spawn_puller`] uses the defaults.
#[derive(Clone)]
pub struct PullerOptions {
    pub backoff: BackoffPolicy,
    /// An upstream that answers but does not have the stream (yet) is retried on this short
    /// interval for a while instead of backing off ([`absent_retry`]).
    pub absent_retry: AbsentRetryPolicy,
    /// TCP connect limit per attempt.
    pub connect_timeout: Duration,
    /// From TCP connect to playback accepted.
    pub setup_timeout: Duration,
    /// Silence while playing (publisher live) after which the upstream is declared dead.
    pub idle_timeout: Duration,
    /// Media silence while playing (publisher live) after which the upstream is pinged: a hung
    /// upstream (a stopped process, a dead host behind an open socket) does not answer, a live
    /// one whose publisher paused does. Zero: no probe, the idle timeout only (what a puller
    /// with a single upstream and no parent chooser uses: it has nowhere else to go).
    pub hang_probe_after: Duration,
    /// How long a ping may go unanswered before the upstream is declared hung, at least;
    /// twice the round trip is added (the largest of the last three measured: the handshake,
    /// then answers to pings), so a far upstream is not declared hung for its distance.
    pub hang_probe_answer: Duration,
    /// While playing with the hang probe on, a ping this often measures the round trip
    /// ([`round_trip`]), so a slow handshake (set up through a stalled link) does not widen
    /// the hang timeout for the connection's life. Zero: the handshake's round trip only.
    pub rtt_ping_interval: Duration,
    /// After the publisher ended the upstream may stay silent for long: after this much silence
    /// the puller sends a ping, and drops the connection (to retry quietly) if another such
    /// period passes without a byte, so a half-open connection is not kept forever.
    pub quiet_ping_interval: Duration,
    /// A connection that played at least this long counts as healthy: the next attempt after
    /// losing it starts at once instead of backing off.
    pub healthy_after: Duration,
    /// While pulling from a less preferred upstream for this long, probe the more preferred ones
    /// (a full play until their first keyframe) and move back to the first that works, so a
    /// restarted reflector takes its edges back from the origin. `None` disables it.
    pub return_to_preferred_after: Option<Duration>,
    /// Pause between two rounds of such probes.
    pub preferred_probe_interval: Duration,
    /// Spacing between the last timestamp delivered and the first of a new upstream.
    pub rebase_gap_ms: u32,
    pub chunk_limits: ChunkLimits,
    /// With `--parent-peer`: chooses the parent tried in place of the first upstream.
    pub parent: Option<Arc<dyn ParentChooser>>,
    /// Resolves upstream host names (the hosts file first, with `--hosts-file`).
    pub resolver: crate::resolve::Resolver,
    /// With `--verify-key`: the keys what is pulled must be signed with. Frames are passed
    /// on as they arrive; a failure drops the upstream and fails over.
    pub verify: Option<surge_integrity::KeyRing>,
    /// An upstream that failed verification is neither probed nor chosen again for this
    /// long while another upstream is left.
    pub integrity_quarantine: Duration,
    /// The TLS client of `rtmps://` upstreams (`--upstream-ca`); `None`: the system's CAs
    /// only ([`tls::default_connector`]).
    pub tls: Option<tokio_rustls::TlsConnector>,
}

impl Default for PullerOptions {
    fn default() -> Self {
        PullerOptions {
            backoff: BackoffPolicy::default(),
            absent_retry: AbsentRetryPolicy::default(),
            connect_timeout: Duration::from_secs(3),
            setup_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            hang_probe_after: Duration::from_millis(400),
            hang_probe_answer: Duration::from_millis(500),
            rtt_ping_interval: Duration::from_secs(1),
            quiet_ping_interval: Duration::from_secs(15),
            healthy_after: Duration::from_secs(2),
            return_to_preferred_after: Some(Duration::from_secs(30)),
            preferred_probe_interval: Duration::from_secs(10),
            rebase_gap_ms: rebase::DEFAULT_REBASE_GAP_MS,
            chunk_limits: ChunkLimits::default(),
            parent: None,
            resolver: crate::resolve::Resolver::default(),
            verify: None,
            integrity_quarantine: Duration::from_secs(300),
            tls: None,
        }
    }
}

/// Starts pulling `cfg.app/cfg.stream` with default options. The task ends when `cancel` fires
/// (closing its socket at once), or at once with `Failed` when no upstream URL is valid.
pub fn spawn_puller(
    cfg: PullerConfig,
    sink: Arc<dyn MediaSink>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    spawn_puller_with(cfg, PullerOptions::default(), sink, cancel)
}

/// [`spawn_puller`] with explicit options.
pub fn spawn_puller_with(
    cfg: PullerConfig,
    opts: PullerOptions,
    sink: Arc<dyn MediaSink>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(puller::run(cfg, opts, sink, cancel))
}

/// Checks `--upstream` values up front so the CLI can refuse bad ones with a clear message.
pub fn validate_upstreams(urls: &[String]) -> Result<Vec<UpstreamUrl>, UrlError> {
    urls.iter().map(|u| UpstreamUrl::parse(u)).collect()
}
