//! Command line and environment configuration (every flag has a `SURGE_*` variable).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use surge_flags::{duration, positive_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tier {
    Origin,
    Reflector,
    Edge,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Origin => "origin",
            Tier::Reflector => "reflector",
            Tier::Edge => "edge",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Surge live-video relay: takes RTMP publishers or pulls from upstream relays, and serves
/// viewers over RTMP (rtmp://HOST:PORT/APP/STREAM) and HTTP-FLV (http://HOST:PORT/APP/STREAM.flv).
#[derive(Debug, Clone, Parser)]
#[command(name = "surge-relay", version, about, long_about = None)]
pub struct Config {
    /// Address for RTMP publishers and players.
    #[arg(long, env = "SURGE_RTMP_LISTEN", default_value = "0.0.0.0:1935")]
    pub rtmp_listen: SocketAddr,

    /// Address for HTTP-FLV playback and the locator (/api/v1/locate). Without
    /// --admin-listen it also serves /api/v1/streams, /metrics, /healthz and /readyz.
    #[arg(long, env = "SURGE_HTTP_LISTEN", default_value = "0.0.0.0:8080")]
    pub http_listen: SocketAddr,

    /// Address for the admin endpoints: /metrics, /api/v1/streams (what the operator scrapes
    /// and placement peers poll), /healthz and /readyz, e.g. 0.0.0.0:9090. Keep it off public
    /// Services: with it set, the playback ports (--http-listen, --https-listen) serve only
    /// playback and the locator and answer 404 for these paths. Unset: they stay on the
    /// playback ports (a warning at startup says so).
    #[arg(long, env = "SURGE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Address for RTMPS (RTMP over TLS) publishers and players, e.g. 0.0.0.0:1936; needs
    /// --tls-cert and --tls-key. Unset: no RTMPS. The plain --rtmp-listen keeps working.
    #[arg(long, env = "SURGE_RTMPS_LISTEN")]
    pub rtmps_listen: Option<SocketAddr>,

    /// Address for HTTPS: the --http-listen endpoints (HTTP-FLV playback, the locator) over
    /// TLS, e.g. 0.0.0.0:8443; needs --tls-cert and --tls-key. Unset: no HTTPS.
    #[arg(long, env = "SURGE_HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,

    /// PEM certificate chain, leaf first (a kubernetes.io/tls Secret's tls.crt), for
    /// --rtmps-listen and --https-listen. Read again when it or the key changes: the next TLS
    /// connection gets the new certificate, open ones are untouched; a pair that cannot be
    /// used then is logged and the previous one kept.
    #[arg(long, env = "SURGE_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1; a Secret's tls.key).
    #[arg(long, env = "SURGE_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Where to pull a stream this relay does not have, as rtmp://HOST:PORT/APP (or
    /// rtmps://HOST:PORT/APP: RTMP in TLS, port 443 by default). Repeat the flag (or
    /// comma-separate the variable) in order of preference; later ones are failovers.
    #[arg(long = "upstream", env = "SURGE_UPSTREAM", value_delimiter = ',')]
    pub upstreams: Vec<String>,

    /// PEM CA certificates that rtmps:// upstreams' certificates may chain to, besides the
    /// system's (repeatable, or comma-separated in the variable): a private or test CA.
    #[arg(long = "upstream-ca", env = "SURGE_UPSTREAM_CA", value_delimiter = ',')]
    pub upstream_ca: Vec<std::path::PathBuf>,

    /// APP/STREAM to pull at start and keep warm even with no viewers (repeatable; needs
    /// --upstream). /readyz waits until each is connected and holds a keyframe.
    #[arg(long = "prewarm", env = "SURGE_PREWARM", value_delimiter = ',', value_parser = parse_stream_path)]
    pub prewarm: Vec<(String, String)>,

    /// Role in the tree, reported in stats and metrics. Only an origin takes publishers;
    /// reflectors and edges refuse them.
    #[arg(long, env = "SURGE_TIER", value_enum, default_value = "origin")]
    pub tier: Tier,

    /// Publish keys, one per line (`#` starts a comment; several keys for a rotation). With
    /// it, a broadcaster must publish with the stream key `NAME?key=SECRET` (ffmpeg:
    /// rtmp://HOST/APP/NAME?key=SECRET); others are refused with NetStream.Publish.BadName.
    /// The file is read again when it changes (checked at each publish): a new key takes
    /// effect without a restart, and live broadcasters are never cut.
    #[arg(long, env = "SURGE_PUBLISH_KEYS_FILE")]
    pub publish_keys_file: Option<std::path::PathBuf>,

    /// Ed25519 private key (PEM, as `openssl genpkey -algorithm ed25519` writes it): the
    /// origin signs what publishers send (groups of frames, in-band `@surgeSignature` data
    /// messages), unless a publisher signs its frames itself.
    #[arg(long, env = "SURGE_SIGN_KEY")]
    pub sign_key: Option<std::path::PathBuf>,

    /// Ed25519 public key (PEM, `openssl pkey -pubout`) that streams pulled from --upstream
    /// must be signed with; repeat it (or comma-separate the variable) during a key rotation.
    /// Frames are passed on as they arrive; a group that fails verification drops the
    /// upstream and the relay fails over to the next one.
    #[arg(long = "verify-key", env = "SURGE_VERIFY_KEY", value_delimiter = ',')]
    pub verify_keys: Vec<std::path::PathBuf>,

    /// Region name reported in stats and metrics.
    #[arg(long, env = "SURGE_REGION", default_value = "default")]
    pub region: String,

    /// A constant label on every series of /metrics, as `tier` and `region` are: NAME=VALUE,
    /// e.g. `--metrics-label cluster=eu1` (repeatable; comma-separate the variable). NAME is a
    /// Prometheus label name and not one the relay sets itself (tier, region, app, stream,
    /// protocol, reason, outcome, upstream, component, version, le), each NAME once; VALUE is
    /// not empty. The operator passes surge_namespace and surge_stream (the Stream's).
    #[arg(
        long = "metrics-label",
        env = "SURGE_METRICS_LABELS",
        value_delimiter = ',',
        value_name = "NAME=VALUE",
        value_parser = crate::metrics::labels::parse_metrics_label
    )]
    pub metrics_labels: Vec<(String, String)>,

    /// Most viewers (RTMP + HTTP-FLV) this relay accepts; further plays are refused.
    #[arg(long, env = "SURGE_MAX_VIEWERS", default_value_t = 10_000)]
    pub max_viewers: usize,

    /// Egress budget in Mbit/s: the relay holds at most this divided by the stream's measured
    /// bitrate in viewers (and never more than --max-viewers). Unset: only --max-viewers limits.
    #[arg(long, env = "SURGE_MAX_EGRESS_MBPS", value_parser = positive_mbps)]
    pub max_egress_mbps: Option<f64>,

    /// Bitrate (kbit/s) a viewer is assumed to cost while its stream measures less, e.g. in the
    /// first seconds of a pull; set it to the stream's nominal bitrate.
    #[arg(long, env = "SURGE_BITRATE_FLOOR_KBPS", default_value_t = crate::placement::capacity::DEFAULT_BITRATE_FLOOR_KBPS)]
    pub bitrate_floor_kbps: u64,

    /// /readyz answers 503 `full` once load (viewers / capacity) reaches this, so Services and
    /// load balancers send new viewers elsewhere; the viewers it has stay.
    #[arg(long, env = "SURGE_READY_MAX_LOAD", default_value_t = 0.9)]
    pub ready_max_load: f64,

    /// Admin addresses (`host:port`: a relay's --admin-listen, or its --http-listen when it
    /// has none) of the relays this one places viewers among as its region's locator: its
    /// sibling edges, the tier above, other regions' edges. Names are resolved on every poll,
    /// so a headless Service name stands for all its Ready pods.
    /// Empty: HTTP-FLV plays are served here without placement.
    #[arg(
        long = "placement-peer",
        env = "SURGE_PLACEMENT_PEERS",
        value_delimiter = ',',
        value_parser = parse_peer
    )]
    pub placement_peers: Vec<String>,

    /// Admin addresses (`host:port`, as for `--placement-peer`) of the relays one tier up
    /// that this relay may pull from (a headless Service name stands for all its pods).
    /// Before pulling from its first `--upstream`, it picks the Ready one among them with the
    /// fewest children (fewer than `--parent-fanout`), counting children from what its
    /// `--sibling-peer`s, its `--placement-peer`s and these say they pull from; with none free
    /// it uses `--upstream` as given (the origin last).
    #[arg(
        long = "parent-peer",
        env = "SURGE_PARENT_PEERS",
        value_delimiter = ',',
        value_parser = parse_peer
    )]
    pub parent_peers: Vec<String>,

    /// Admin addresses (`host:port`, as for `--placement-peer`) of this relay's siblings:
    /// relays that pick among the same parents (a headless Service name stands for all).
    /// Polled only to count each parent's children; never chosen as a parent, and no viewers
    /// are placed on them unless they are also `--placement-peer`s.
    #[arg(
        long = "sibling-peer",
        env = "SURGE_SIBLING_PEERS",
        value_delimiter = ',',
        value_parser = parse_peer
    )]
    pub sibling_peers: Vec<String>,

    /// Most child relays a parent feeds, used when picking a parent with `--parent-peer` (the
    /// Stream's `spec.tree.fanout`).
    #[arg(long, env = "SURGE_PARENT_FANOUT", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub parent_fanout: u32,

    /// A hosts-style file, read again on every lookup, that names resolve from before DNS:
    /// one `NAME [ADDRESS ...]` per line (a name with no address resolves to none). Names it
    /// does not list, and all names while it is missing, use the system resolver. Used for
    /// `--upstream` hosts and the `--*-peer` names; `surge-operator local` writes one for its
    /// Services' names and keeps it current as relays come and go.
    #[arg(long, env = "SURGE_HOSTS_FILE")]
    pub hosts_file: Option<std::path::PathBuf>,

    /// Where viewers go when every edge of the region is full, in order: `tier-above` (the
    /// region's reflectors, or the origin) and region names (their edges).
    #[arg(long, env = "SURGE_OVERFLOW", value_delimiter = ',', default_value = "tier-above", value_parser = parse_overflow_step)]
    pub overflow: Vec<crate::placement::OverflowStep>,

    /// Host viewers and other relays reach this relay at (reported to locators; a node's
    /// external address when each edge is exposed on its own). Default: the address a locator
    /// polled it at.
    #[arg(long, env = "SURGE_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,

    /// A file holding the host to advertise (one name or address), read again while running;
    /// when it exists and holds a usable host it wins over `--advertise-host`. On Kubernetes a
    /// Downward API volume puts a pod annotation there, so the operator can hand an edge its
    /// node's external address once the pod is scheduled.
    #[arg(long, env = "SURGE_ADVERTISE_HOST_FILE")]
    pub advertise_host_file: Option<std::path::PathBuf>,

    /// RTMP port viewers are sent to when it differs from the listening port (a node's host
    /// port mapped onto the pod's, as for reflectors exposed to take a region's overflow).
    /// Other relays still pull from the listening port at the address they polled.
    #[arg(long, env = "SURGE_ADVERTISE_RTMP_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub advertise_rtmp_port: Option<u16>,

    /// HTTP port viewers are sent to when it differs from the listening port (see
    /// `--advertise-rtmp-port`).
    #[arg(long, env = "SURGE_ADVERTISE_HTTP_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub advertise_http_port: Option<u16>,

    /// A full relay counts as Ready again once load falls below this (hysteresis: no flapping).
    #[arg(long, env = "SURGE_READY_RESUME_LOAD", default_value_t = 0.8)]
    pub ready_resume_load: f64,

    /// A client whose socket accepts nothing for this long is disconnected: a stuck viewer, or
    /// a client that sends commands but never reads the replies (e.g. 10s, 500ms; not 0).
    #[arg(long, env = "SURGE_SLOW_VIEWER_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub slow_viewer_timeout: Duration,

    /// Bytes a viewer may fall behind before it skips to the newest keyframe (dropped frames).
    #[arg(long, env = "SURGE_VIEWER_BACKLOG_BYTES", default_value_t = 8 << 20)]
    pub viewer_backlog_bytes: u64,

    /// Kernel send buffer per viewer socket. Bounds memory per viewer and how long a viewer
    /// that stopped reading goes unnoticed; 0 leaves the OS default (autotuning).
    #[arg(long, env = "SURGE_VIEWER_SEND_BUFFER_BYTES", default_value_t = 256 << 10)]
    pub viewer_send_buffer_bytes: usize,

    /// Tasks per stream that write new frames to viewers whose sockets keep up, RTMP and
    /// plain HTTP-FLV alike (one wake-up per task per frame instead of one per viewer). `auto`: one per core this
    /// process may use; `0`: every viewer writes from its own task.
    #[arg(long, env = "SURGE_FANOUT_TASKS", default_value = "auto", value_parser = parse_fanout_tasks)]
    pub fanout_tasks: usize,

    /// The latency budget: how long a new frame may wait for the frames after it before the
    /// shared writer tasks send it, so each caught-up viewer gets several frames in one write
    /// (fewer syscalls and wake-ups: less CPU per viewer, at most this much more lag). `0`
    /// (the default): every frame leaves at once. At most 1s.
    #[arg(long, env = "SURGE_MAX_WRITE_DELAY", default_value = "0s", value_parser = write_delay)]
    pub max_write_delay: Duration,

    /// TCP_NODELAY on RTMP viewer sockets: each frame leaves at once. `false` lets the kernel hold
    /// a frame until the previous one is acknowledged (Nagle, as nginx-rtmp's sockets are):
    /// less CPU per byte, up to one round trip more lag.
    #[arg(long, env = "SURGE_VIEWER_TCP_NODELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub viewer_tcp_nodelay: bool,

    /// Most bytes of recent frames held per stream (GOP cache and ring).
    #[arg(long, env = "SURGE_GOP_CACHE_MAX_BYTES", default_value_t = 64 << 20)]
    pub gop_cache_max_bytes: usize,

    /// How long to keep pulling a stream after its last viewer leaves (not for --prewarm);
    /// 0 stops the pull as soon as the last viewer leaves.
    #[arg(long, env = "SURGE_UPSTREAM_LINGER", default_value = "30s", value_parser = duration)]
    pub upstream_linger: Duration,

    /// On SIGTERM/SIGINT: stop accepting, keep serving current viewers up to this long;
    /// 0 exits at once.
    #[arg(long, env = "SURGE_SHUTDOWN_GRACE", default_value = "30s", value_parser = duration)]
    pub shutdown_grace: Duration,

    /// Log line format.
    #[arg(long, env = "SURGE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Time allowed for the RTMP handshake and connect/publish/play commands (not 0).
    #[arg(long, env = "SURGE_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub handshake_timeout: Duration,
}

/// A placement peer: `HOST:PORT` (a name is resolved on every poll).
pub fn parse_peer(s: &str) -> Result<String, String> {
    let s = s.trim();
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(s.to_string())
        }
        _ => Err(format!(
            "expected HOST:PORT of a relay's admin (or HTTP) listener, got {s:?}"
        )),
    }
}

/// One overflow step: `tier-above` or a region name.
pub fn parse_overflow_step(s: &str) -> Result<crate::placement::OverflowStep, String> {
    match s.trim() {
        "tier-above" => Ok(crate::placement::OverflowStep::TierAbove),
        region
            if !region.is_empty()
                && region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Ok(crate::placement::OverflowStep::Region(region.to_string()))
        }
        other => Err(format!(
            "{other:?} is neither tier-above nor a region name (letters, digits, - and _)"
        )),
    }
}

/// An egress budget in Mbit/s: a finite number above zero.
pub fn positive_mbps(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "expected a number of Mbit/s above 0 (e.g. 1000), got {s:?}"
        )),
    }
}

impl Config {
    /// The relay's capacity limits, from --max-viewers, --max-egress-mbps, --bitrate-floor-kbps.
    pub fn capacity_limits(&self) -> crate::placement::CapacityLimits {
        crate::placement::CapacityLimits {
            max_viewers: self.max_viewers,
            max_egress_kbps: self.max_egress_mbps.map(|m| (m * 1000.0) as u64),
            bitrate_floor_kbps: self.bitrate_floor_kbps,
        }
    }

    /// The readiness gate from --ready-max-load and --ready-resume-load.
    pub fn room_gate(&self) -> Result<crate::placement::RoomGate, crate::placement::RoomGateError> {
        crate::placement::RoomGate::new(self.ready_max_load, self.ready_resume_load)
    }
}

/// Parses `APP/STREAM`.
pub fn parse_stream_path(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((app, stream)) if !app.is_empty() && !stream.is_empty() && !stream.contains('/') => {
            Ok((app.to_string(), stream.to_string()))
        }
        _ => Err(format!("expected APP/STREAM, got {s:?}")),
    }
}

/// The longest latency budget accepted: beyond a second a viewer's player would see the
/// batches as stalls.
pub const MAX_WRITE_DELAY: Duration = Duration::from_secs(1);

/// Parses `--max-write-delay`: a duration from 0 up to [`MAX_WRITE_DELAY`].
pub fn write_delay(s: &str) -> Result<Duration, String> {
    let d = duration(s).map_err(|e| e.to_string())?;
    if d > MAX_WRITE_DELAY {
        return Err(format!(
            "{s:?} is longer than the most a frame may wait ({MAX_WRITE_DELAY:?})"
        ));
    }
    Ok(d)
}

/// Parses `auto` (one per usable core) or a number of fan-out tasks.
pub fn parse_fanout_tasks(s: &str) -> Result<usize, String> {
    match s.trim() {
        "auto" => Ok(crate::hub::default_fanout_tasks()),
        n => n
            .parse()
            .map_err(|_| format!("expected a number of tasks or `auto`, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::try_parse_from(std::iter::once("surge-relay").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_reject_overflow_and_zero_where_meaningless() {
        let err = parse(&["--upstream-linger", "99999999999999999999999h"]).unwrap_err();
        assert!(
            err.contains("--upstream-linger") && err.contains("too long"),
            "{err}"
        );
        let err = parse(&["--handshake-timeout", "0"]).unwrap_err();
        assert!(
            err.contains("--handshake-timeout") && err.contains("greater than zero"),
            "{err}"
        );
        let err = parse(&["--slow-viewer-timeout=-1s"]).unwrap_err();
        assert!(err.contains("--slow-viewer-timeout"), "{err}");
        let c = parse(&["--upstream-linger", "0", "--shutdown-grace", "0s"]).expect("zero allowed");
        assert_eq!(c.upstream_linger, Duration::ZERO);
        assert_eq!(c.shutdown_grace, Duration::ZERO);
        let c = parse(&["--upstream-linger", "1m 30s"]).expect("combined units");
        assert_eq!(c.upstream_linger, Duration::from_secs(90));
    }

    #[test]
    fn the_write_delay_is_off_by_default_and_bounded() {
        assert_eq!(
            parse(&[]).expect("defaults").max_write_delay,
            Duration::ZERO
        );
        let c = parse(&["--max-write-delay", "80ms"]).expect("valid");
        assert_eq!(c.max_write_delay, Duration::from_millis(80));
        let err = parse(&["--max-write-delay", "2s"]).unwrap_err();
        assert!(
            err.contains("--max-write-delay") && err.contains("longer than"),
            "{err}"
        );
        assert!(parse(&["--max-write-delay", "soon"]).is_err());
    }

    #[test]
    fn stream_paths() {
        assert_eq!(
            parse_stream_path("live/cam"),
            Ok(("live".into(), "cam".into()))
        );
        assert!(parse_stream_path("live").is_err());
        assert!(parse_stream_path("a/b/c").is_err());
    }

    #[test]
    fn defaults_and_repeatable_flags() {
        let c = Config::parse_from([
            "surge-relay",
            "--upstream",
            "rtmp://a:1935/live",
            "--upstream",
            "rtmp://b:1935/live",
            "--prewarm",
            "live/x",
        ]);
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.prewarm, vec![("live".to_string(), "x".to_string())]);
        assert_eq!(c.upstream_linger, Duration::from_secs(30));
        assert_eq!(c.rtmp_listen.port(), 1935);
        assert_eq!(c.tier, Tier::Origin);
        assert_eq!(c.publish_keys_file, None);
        assert_eq!((c.rtmps_listen, c.https_listen), (None, None));
        assert_eq!(c.admin_listen, None);
        assert_eq!((c.tls_cert.as_ref(), c.tls_key.as_ref()), (None, None));
        assert_eq!(c.fanout_tasks, crate::hub::default_fanout_tasks());
    }

    #[test]
    fn metrics_labels_repeat_and_name_the_flag_when_bad() {
        let c = parse(&[
            "--metrics-label",
            "surge_namespace=media",
            "--metrics-label=surge_stream=news",
        ])
        .expect("two labels");
        assert_eq!(
            c.metrics_labels,
            vec![
                ("surge_namespace".to_string(), "media".to_string()),
                ("surge_stream".to_string(), "news".to_string())
            ]
        );
        assert!(parse(&[]).expect("none").metrics_labels.is_empty());
        for bad in ["region=eu", "bad-name=x", "nothing"] {
            let err = parse(&["--metrics-label", bad]).unwrap_err();
            assert!(err.contains("--metrics-label"), "{bad}: {err}");
        }
    }

    #[test]
    fn fanout_tasks_take_auto_zero_or_a_count() {
        assert_eq!(parse_fanout_tasks("0"), Ok(0));
        assert_eq!(parse_fanout_tasks("3"), Ok(3));
        assert!(parse_fanout_tasks("auto").is_ok_and(|n| n >= 1));
        assert!(parse_fanout_tasks("many").is_err());
    }
}
