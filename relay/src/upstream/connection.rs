//! One upstream connection: TCP connect (then TLS for `rtmps://`), RTMP handshake, then the
//! play session until the connection ends, fails, goes silent, or the puller is cancelled.

use std::ops::ControlFlow;
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use surge_wire::message as wire;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use super::PullerOptions;
use super::round_trip::{self, RoundTrip};
use super::session::{PullEvent, PullSession, SessionError};
use super::url::UpstreamUrl;

const READ_BUFFER: usize = 64 * 1024;
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ended (other than cancellation).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connect to {0} timed out")]
    ConnectTimeout(String),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("TLS with {host} failed: {why}")]
    Tls { host: String, why: String },
    #[error("no playback within {0:?} of connecting")]
    SetupTimeout(Duration),
    #[error("no data from upstream for {0:?}")]
    Idle(Duration),
    #[error("upstream hung: no frame for {0:?} and no answer to a ping")]
    Hung(Duration),
    #[error("upstream closed the connection")]
    Closed,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("write to upstream timed out")]
    WriteTimeout,
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The puller stopped the connection: what it sent failed verification.
    #[error("signed frames failed verification: {0}")]
    Integrity(String),
}

/// How a connection ended.
pub enum ConnectionEnd {
    Cancelled,
    Ended {
        error: ConnectionError,
        /// How long playback lasted (zero if it never started).
        played_for: Duration,
        /// The publisher had ended when the connection went away.
        publisher_ended: bool,
    },
}

/// Runs one connection, passing events to `on_event` as they happen; `Break(why)` from it
/// ends the connection with [`ConnectionError::Integrity`].
pub async fn run(
    url: &UpstreamUrl,
    app: &str,
    stream: &str,
    opts: &PullerOptions,
    cancel: &CancellationToken,
    mut on_event: impl FnMut(PullEvent) -> ControlFlow<String>,
) -> ConnectionEnd {
    let mut played_since: Option<Instant> = None;
    let mut publisher_ended = false;
    let result = tokio::select! {
        biased;
        _ = cancel.cancelled() => return ConnectionEnd::Cancelled,
        r = drive(url, app, stream, opts, &mut played_since, &mut publisher_ended, &mut on_event) => r,
    };
    let error = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    ConnectionEnd::Ended {
        error,
        played_for: played_since.map(|t| t.elapsed()).unwrap_or_default(),
        publisher_ended,
    }
}

enum Never {}

async fn drive(
    url: &UpstreamUrl,
    app: &str,
    stream: &str,
    opts: &PullerOptions,
    played_since: &mut Option<Instant>,
    publisher_ended: &mut bool,
    on_event: &mut impl FnMut(PullEvent) -> ControlFlow<String>,
) -> Result<Never, ConnectionError> {
    let addr = url.socket_addr();
    let socket = match opts.resolver.connect(&addr, opts.connect_timeout).await {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            return Err(ConnectionError::ConnectTimeout(addr));
        }
        Err(source) => return Err(ConnectionError::Connect { addr, source }),
        Ok(s) => s,
    };
    let _ = socket.set_nodelay(true);
    let setup_deadline = Instant::now() + opts.setup_timeout;
    let socket = if url.tls {
        let tls_error = |why: String| ConnectionError::Tls {
            host: url.host.clone(),
            why,
        };
        let connector = match &opts.tls {
            Some(c) => c.clone(),
            None => super::tls::default_connector().map_err(tls_error)?,
        };
        let name = super::tls::server_name(&url.host).map_err(tls_error)?;
        let tls = timeout_at(setup_deadline, connector.connect(name, socket))
            .await
            .map_err(|_| ConnectionError::SetupTimeout(opts.setup_timeout))?
            .map_err(|e| tls_error(e.to_string()))?;
        Either::Right(tls)
    } else {
        Either::Left(socket)
    };
    let session = Session {
        url,
        app,
        stream,
        opts,
        setup_deadline,
    };
    play(socket, session, played_since, publisher_ended, on_event).await
}

/// What one play session asks for, whatever carries it.
struct Session<'a> {
    url: &'a UpstreamUrl,
    app: &'a str,
    stream: &'a str,
    opts: &'a PullerOptions,
    setup_deadline: Instant,
}

/// The RTMP handshake and play session over `socket` (TCP, or TLS over TCP).
async fn play<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    session: Session<'_>,
    played_since: &mut Option<Instant>,
    publisher_ended: &mut bool,
    on_event: &mut impl FnMut(PullEvent) -> ControlFlow<String>,
) -> Result<Never, ConnectionError> {
    let Session {
        url,
        app,
        stream,
        opts,
        setup_deadline,
    } = session;
    let mut buf = vec![0u8; READ_BUFFER];

    // Handshake.
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = handshake
        .generate_outbound_p0_and_p1()
        .map_err(|e| ConnectionError::Handshake(e.to_string()))?;
    write(&mut socket, &c0c1).await?;
    let handshake_sent = Instant::now();
    let mut round_trip: Option<Duration> = None;
    let leftover = loop {
        let n = read(&mut socket, &mut buf, Some(setup_deadline), || {
            ConnectionError::SetupTimeout(opts.setup_timeout)
        })
        .await?;
        round_trip.get_or_insert_with(|| handshake_sent.elapsed());
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handshake.process_bytes(&buf[..n])
        }))
        .map_err(|_| ConnectionError::Handshake("handshake code panicked".into()))?
        .map_err(|e| ConnectionError::Handshake(e.to_string()))?;
        match step {
            HandshakeProcessResult::InProgress { response_bytes } => {
                write(&mut socket, &response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                write(&mut socket, &response_bytes).await?;
                break remaining_bytes;
            }
        }
    };

    // Play session.
    let app = url.app_or(app);
    let (mut session, connect) = PullSession::new(app, stream, url.tc_url(app), opts.chunk_limits)?;
    write(&mut socket, &connect).await?;
    let mut out = Vec::new();
    let mut events = Vec::new();
    let ping_epoch = Instant::now();
    let mut round_trip = RoundTrip::new(round_trip.unwrap_or_default());
    // Round-trip pings only serve the hung-upstream probe.
    let rtt_pings = !opts.rtt_ping_interval.is_zero() && !opts.hang_probe_after.is_zero();
    let mut next_rtt_ping = Instant::now() + opts.rtt_ping_interval;
    let mut last_media = Instant::now();
    let mut n = leftover.len();
    if n > buf.len() {
        buf.resize(n, 0);
    }
    buf[..n].copy_from_slice(&leftover);
    loop {
        session.handle_input(&buf[..n], &mut out, &mut events)?;
        for ev in events.drain(..) {
            match ev {
                PullEvent::Playing => {
                    *played_since = Some(Instant::now());
                    last_media = Instant::now();
                }
                PullEvent::PublisherEnded => *publisher_ended = true,
                PullEvent::PublisherStarted => *publisher_ended = false,
                PullEvent::Media { .. } => last_media = Instant::now(),
            }
            if let ControlFlow::Break(why) = on_event(ev) {
                return Err(ConnectionError::Integrity(why));
            }
        }
        if let Some(stamp) = session.take_ping_answer()
            && let Some(took) =
                round_trip::answer_delay(stamp, ping_epoch.elapsed().as_millis() as u32)
        {
            round_trip.sample(took);
        }
        if rtt_pings
            && session.is_playing()
            && !session.publisher_ended()
            && Instant::now() >= next_rtt_ping
        {
            out.extend_from_slice(&wire::ping_request(ping_epoch.elapsed().as_millis() as u32));
            next_rtt_ping = Instant::now() + opts.rtt_ping_interval;
        }
        write(&mut socket, &out).await?;
        out.clear();
        // Silence limits: until playback, the setup deadline; while the publisher is live, the
        // idle timeout; after the publisher ended, a ping after each quiet interval, and the
        // connection is dropped when a second interval passes without a byte.
        n = if !session.is_playing() {
            read(&mut socket, &mut buf, Some(setup_deadline), || {
                ConnectionError::SetupTimeout(opts.setup_timeout)
            })
            .await?
        } else if session.publisher_ended() {
            let quiet = opts.quiet_ping_interval;
            match read(&mut socket, &mut buf, Some(Instant::now() + quiet), || {
                ConnectionError::Idle(quiet)
            })
            .await
            {
                Err(ConnectionError::Idle(_)) => {
                    let ts = ping_epoch.elapsed().as_millis() as u32;
                    write(&mut socket, &wire::ping_request(ts)).await?;
                    read(&mut socket, &mut buf, Some(Instant::now() + quiet), || {
                        ConnectionError::Idle(quiet * 2)
                    })
                    .await?
                }
                other => other?,
            }
        } else {
            // While the publisher is live: a ping after a short media silence (a hung upstream
            // does not answer it), and the idle timeout for media silence in any case.
            let media_deadline = last_media + opts.idle_timeout;
            let idle = || ConnectionError::Idle(opts.idle_timeout);
            let probe_at = (Instant::now() + opts.hang_probe_after).min(media_deadline);
            let probe_at = if opts.hang_probe_after.is_zero() {
                media_deadline
            } else {
                probe_at
            };
            match read(&mut socket, &mut buf, Some(probe_at), idle).await {
                Err(ConnectionError::Idle(_)) if Instant::now() < media_deadline => {
                    let ts = ping_epoch.elapsed().as_millis() as u32;
                    write(&mut socket, &wire::ping_request(ts)).await?;
                    let hang_answer = opts.hang_probe_answer + 2 * round_trip.estimate();
                    let answer_by = (Instant::now() + hang_answer).min(media_deadline);
                    read(&mut socket, &mut buf, Some(answer_by), || {
                        if Instant::now() >= media_deadline {
                            idle()
                        } else {
                            ConnectionError::Hung(last_media.elapsed())
                        }
                    })
                    .await?
                }
                other => other?,
            }
        };
    }
}

async fn read<S: AsyncRead + Unpin>(
    socket: &mut S,
    buf: &mut [u8],
    deadline: Option<Instant>,
    on_timeout: impl FnOnce() -> ConnectionError,
) -> Result<usize, ConnectionError> {
    let n = match deadline {
        Some(d) => timeout_at(d, socket.read(buf))
            .await
            .map_err(|_| on_timeout())??,
        None => socket.read(buf).await?,
    };
    if n == 0 {
        return Err(ConnectionError::Closed);
    }
    Ok(n)
}

async fn write<S: AsyncWrite + Unpin>(socket: &mut S, bytes: &[u8]) -> Result<(), ConnectionError> {
    if bytes.is_empty() {
        return Ok(());
    }
    // A TLS stream holds records until flushed; on TCP the flush does nothing.
    let send = async {
        socket.write_all(bytes).await?;
        socket.flush().await
    };
    timeout(WRITE_TIMEOUT, send)
        .await
        .map_err(|_| ConnectionError::WriteTimeout)??;
    Ok(())
}
