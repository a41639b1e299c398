//! One RTMP connection (TCP, or TLS for RTMPS: see [`super::transport`]): handshake, then a
//! reader (bytes into the [`InboundDriver`]) and a writer (control replies, then shared hub
//! bytes for a player) that never block each other.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use surge_wire::ChunkLimits;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::close_reason::CloseReason;
use super::group_writer::{GroupExit, write_from_group};
use super::handshake;
use super::inbound_driver::{InboundDriver, Outbound};
use super::messages;
use super::session::{InboundError, Role};
use super::transport::{RtmpStream, RtmpWriter};
use crate::hub::{Batch, Subscription};
use crate::protocol::Protocol;
use crate::registry::Registry;

/// Control replies queued for a client before its reader pauses.
const CONTROL_QUEUE: usize = 256;
/// Publishers send constantly; silence this long means the publisher is gone.
const PUBLISHER_IDLE: Duration = Duration::from_secs(30);
/// Most time a refused client gets to close its end after the relay closed its own.
const LINGER_AFTER_REFUSAL: Duration = Duration::from_secs(2);
/// Most bytes taken from a socket per read (publishers send media in large bursts).
const READ_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct RtmpSettings {
    pub handshake_timeout: Duration,
    pub slow_viewer_timeout: Duration,
    pub chunk_limits: ChunkLimits,
    /// SO_SNDBUF for playing connections (0 = OS default).
    pub viewer_send_buffer: usize,
    /// TCP_NODELAY for playing connections (false lets the kernel coalesce frames: Nagle).
    pub viewer_tcp_nodelay: bool,
    /// Who may publish here (origin only; the keys file).
    pub publish_auth: Arc<crate::publish_auth::PublishAuth>,
}

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Serves one accepted connection until it ends; logs one line saying why it closed.
pub async fn serve<S: RtmpStream>(
    stream: S,
    registry: Arc<Registry>,
    settings: Arc<RtmpSettings>,
    shutdown: CancellationToken,
) {
    let id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "rtmp",
        conn = id,
        peer = %peer,
        stream = tracing::field::Empty,
        role = tracing::field::Empty,
        handshake_ms = tracing::field::Empty,
        play_ms = tracing::field::Empty
    );
    async move {
        let reason = match serve_connection(stream, registry.clone(), settings, shutdown).await {
            Ok(why) => CloseReason::Ended(why),
            Err(reason) => reason,
        };
        if let Some(label) = reason.metric_label() {
            registry.metrics().connection_closed(label);
        }
        if reason.is_failure() {
            tracing::warn!(reason = %reason, "connection closed")
        } else {
            tracing::info!(reason = %reason, "connection closed")
        }
    }
    .instrument(span)
    .await
}

/// The connection's life: Ok(why) for an ordinary end, Err(reason) for any other.
async fn serve_connection<S: RtmpStream>(
    mut stream: S,
    registry: Arc<Registry>,
    settings: Arc<RtmpSettings>,
    shutdown: CancellationToken,
) -> Result<String, CloseReason> {
    let started = Instant::now();
    // Boxed: the handshake state (several KiB) is freed when it completes instead of staying
    // in this connection's future for its whole life (memory per viewer).
    let leftover = Box::pin(handshake::accept(&mut stream, settings.handshake_timeout))
        .await
        .map_err(|e| e.to_string())?;
    tracing::Span::current().record("handshake_ms", elapsed_ms(started));
    let peer = stream.peer_addr().map(|a| a.ip());
    let (session, initial) =
        InboundDriver::new(registry.clone(), settings.chunk_limits).map_err(|e| e.to_string())?;
    let mut session = session.with_publish_auth(settings.publish_auth.clone(), peer);
    let (mut rd, wr) = stream.into_halves();
    let (tx, rx) = mpsc::channel::<Outbound>(CONTROL_QUEUE);
    let done = CancellationToken::new();
    let writer_done = done.clone();
    let writer_loop = write_loop(wr, rx, registry.clone(), settings.clone(), done.clone());
    let writer = tokio::spawn(
        async move {
            let r = writer_loop.await;
            writer_done.cancel();
            r
        }
        .instrument(tracing::Span::current()),
    );
    for b in initial {
        let _ = tx.try_send(Outbound::Control(b));
    }
    // Bytes the client sent right after the handshake come first; then one read at a time.
    let mut handled = (!leftover.is_empty()).then(|| session.handle_bytes(&leftover));
    let mut role_recorded = false;
    // Set when the session asks to close once its replies are out (a refused play): the
    // writer then sends everything queued before it ends, instead of being cancelled.
    let mut flush_writer = false;
    let result: Result<String, CloseReason> = loop {
        if let Some(outcome) = handled.take() {
            match outcome {
                Ok(outbound) => {
                    // Before the replies go out, so the writer's "viewer started" line has it.
                    if !role_recorded && *session.role() != Role::Handshaking {
                        record_role(session.role(), started);
                        role_recorded = true;
                    }
                    if let Err(e) = dispatch(&tx, outbound, settings.slow_viewer_timeout).await {
                        break Err(e.into());
                    }
                    if let Some(why) = session.finished() {
                        flush_writer = true;
                        break Ok(why.to_string());
                    }
                }
                Err(InboundError::PlayClosed) => break Ok("player closed its stream".to_string()),
                Err(e) => break Err(format!("closing on bad input: {e}").into()),
            }
        }
        let idle = match session.role() {
            Role::Handshaking => settings.handshake_timeout,
            Role::Publishing { .. } => PUBLISHER_IDLE,
            Role::Playing { .. } => Duration::from_secs(24 * 3600),
        };
        let handshaking = *session.role() == Role::Handshaking;
        let read = tokio::select! {
            r = tokio::time::timeout(idle, read_into_session(&mut rd, &mut session)) => r,
            _ = done.cancelled() => break Ok("writer finished".to_string()),
            _ = shutdown.cancelled(), if handshaking => {
                break Ok("relay shutting down".to_string())
            }
        };
        handled = match read {
            Err(_) => {
                break Err(format!("no data for {idle:?} while {:?}", session.role()).into());
            }
            Ok(ReadOutcome::Handled(r)) => Some(r),
            Ok(ReadOutcome::End(why)) => break why.map_err(CloseReason::from),
        };
    };
    drop(tx);
    if !flush_writer {
        done.cancel();
    }
    let writer_result = writer
        .await
        .unwrap_or_else(|e| Err(format!("writer task failed: {e}").into()));
    drop(session);
    if flush_writer && writer_result.is_ok() {
        linger_until_peer_closes(&mut rd, LINGER_AFTER_REFUSAL).await;
    }
    match writer_result {
        Err(w) => Err(w),
        Ok(_) => result,
    }
}

thread_local! {
    /// One read buffer per worker thread, shared by its connections: each read is handed to
    /// the session (which keeps what it needs) before the next, so no connection holds a read
    /// buffer of its own; most connections are idle viewers.
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0u8; READ_BUFFER_BYTES]);
}

enum ReadOutcome {
    Handled(Result<Vec<Outbound>, InboundError>),
    End(Result<String, String>),
}

/// Reads once into the thread's buffer and hands the bytes to `take`, within one poll (the
/// buffer is never held across an await).
fn read_with<'a, R, T>(
    rd: &'a mut R,
    mut take: impl FnMut(std::io::Result<&[u8]>) -> T + 'a,
) -> impl Future<Output = T> + 'a
where
    R: AsyncRead + Unpin,
{
    std::future::poll_fn(move |cx| {
        READ_BUFFER.with_borrow_mut(|buf| {
            let mut read = ReadBuf::new(buf);
            match Pin::new(&mut *rd).poll_read(cx, &mut read) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(())) => Poll::Ready(take(Ok(read.filled()))),
                Poll::Ready(Err(e)) => Poll::Ready(take(Err(e))),
            }
        })
    })
}

/// Reads and drops what the client still sends after the relay closed its sending side, until
/// the client closes too or `limit` passes: closing a socket with unread bytes resets the
/// connection, and a reset can reach the client before it has read the relay's last replies.
async fn linger_until_peer_closes<R: AsyncRead + Unpin>(rd: &mut R, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        while read_with(rd, |r| r.is_ok_and(|b| !b.is_empty())).await {}
    })
    .await;
}

/// Waits for bytes, reads what the stream holds into the thread's buffer and feeds it to the
/// session.
fn read_into_session<'a, R: AsyncRead + Unpin>(
    rd: &'a mut R,
    session: &'a mut InboundDriver,
) -> impl Future<Output = ReadOutcome> + 'a {
    read_with(rd, move |r| match r {
        Ok([]) => ReadOutcome::End(Ok("peer closed".to_string())),
        Ok(bytes) => ReadOutcome::Handled(session.handle_bytes(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            ReadOutcome::End(Ok("peer reset the connection".to_string()))
        }
        Err(e) => ReadOutcome::End(Err(format!("read error: {e}"))),
    })
}

/// Puts the stream and role into the connection's span once known (every later line has them),
/// and for a player how long its join took from the connection's start to its play command
/// (`play_ms`; with `handshake_ms`, where a join waits when the relay is busy).
fn record_role(role: &Role, started: Instant) {
    let (name, app, stream) = match role {
        Role::Handshaking => return,
        Role::Publishing { app, stream } => ("publisher", app, stream),
        Role::Playing { app, stream } => ("viewer", app, stream),
    };
    let span = tracing::Span::current();
    if name == "viewer" {
        span.record("play_ms", elapsed_ms(started));
    }
    span.record("role", name);
    span.record("stream", format!("{app}/{stream}"));
}

/// Milliseconds since `t`, to 0.1 ms (log fields).
fn elapsed_ms(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
}

/// Queues the replies for the writer. A full queue pauses reading (a burst of commands from a
/// client that reads is fine); a client whose replies stay unsent for `stall` is not reading.
async fn dispatch(
    tx: &mpsc::Sender<Outbound>,
    outbound: Vec<Outbound>,
    stall: Duration,
) -> Result<(), String> {
    for out in outbound {
        match tokio::time::timeout(stall, tx.send(out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err("connection writer ended".into()),
            Err(_) => {
                return Err(format!(
                    "client is not reading its control replies (none taken for {stall:?})"
                ));
            }
        }
    }
    Ok(())
}

async fn write_with_timeout<W: RtmpWriter>(
    wr: &mut W,
    bufs: &[Bytes],
    timeout: Duration,
) -> Result<usize, CloseReason> {
    match wr.write_all_within(bufs, timeout).await {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(CloseReason::SlowViewer(
            format!("socket accepted nothing for {timeout:?}"),
        )),
        Err(e) => Err(write_failure(&e)),
        Ok(n) => Ok(n),
    }
}

/// Close reason for a failed write.
pub(crate) fn write_failure(e: &std::io::Error) -> CloseReason {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    match e.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted => CloseReason::PeerGone(e.to_string()),
        _ => CloseReason::Error(format!("write error: {e}")),
    }
}

/// Ok(()) when the connection should simply end, Err(reason) on a failure.
pub(super) async fn write_loop<W: RtmpWriter>(
    mut wr: W,
    mut rx: mpsc::Receiver<Outbound>,
    registry: Arc<Registry>,
    settings: Arc<RtmpSettings>,
    done: CancellationToken,
) -> Result<String, CloseReason> {
    let timeout = settings.slow_viewer_timeout;
    let metrics = registry.metrics().clone();
    let mut sub: Option<Box<Subscription>> = None;
    loop {
        let next = match sub.take() {
            None => tokio::select! {
                o = rx.recv() => o,
                _ = done.cancelled() => return Ok("reader finished".into()),
            },
            Some(mut s) => {
                // Control replies first; then whatever the stream has for this viewer now.
                let queued = match rx.try_recv() {
                    Ok(o) => Some(Some(o)),
                    Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                };
                if let Some(next) = queued {
                    sub = Some(s);
                    next
                } else if done.is_cancelled() {
                    return Ok("reader finished".into());
                } else if let Some(batch) = s.try_next() {
                    match batch {
                        Batch::Data(bufs) => {
                            write_media(&mut wr, &bufs, timeout, &metrics).await?;
                            s.written();
                        }
                        Batch::End => return end_of_stream(&mut wr, &s, timeout).await,
                    }
                    sub = Some(s);
                    continue;
                } else if W::JOINS_FANOUT_GROUPS && s.hub().fanout_groups_enabled() {
                    match write_from_group(wr, s, &mut rx, &done, timeout, &metrics).await? {
                        GroupExit::Back {
                            sink,
                            subscription,
                            next,
                        } => {
                            wr = sink;
                            sub = Some(subscription);
                            match next {
                                Some(next) => next,
                                None => continue,
                            }
                        }
                        GroupExit::Ended(why) => return Ok(why),
                    }
                } else {
                    let next = tokio::select! {
                        biased;
                        o = rx.recv() => o,
                        alive = s.changed() => {
                            if !alive {
                                return Ok("stream closed".into());
                            }
                            sub = Some(s);
                            continue;
                        }
                        _ = done.cancelled() => return Ok("reader finished".into()),
                    };
                    sub = Some(s);
                    next
                }
            }
        };
        match next {
            None => return Ok("session ended".into()),
            Some(Outbound::Control(b)) => {
                write_with_timeout(&mut wr, &[b], timeout).await?;
            }
            Some(Outbound::Pause(d)) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = done.cancelled() => return Ok("reader finished".into()),
                }
            }
            Some(Outbound::Play(mut s, stream_id)) => {
                s.play_on_stream_id(stream_id);
                wr.set_viewer_options(settings.viewer_send_buffer, settings.viewer_tcp_nodelay);
                tracing::info!(app = %s.hub().app, stream = %s.hub().name, "viewer started (rtmp)");
                sub = Some(s);
            }
        }
    }
}

/// Writes a viewer's media bytes and counts them; a socket that takes nothing for `timeout`
/// is a slow viewer (counted with the connection's close).
pub(super) async fn write_media<W: RtmpWriter>(
    wr: &mut W,
    bufs: &[Bytes],
    timeout: Duration,
    metrics: &crate::metrics::Metrics,
) -> Result<(), CloseReason> {
    let n = write_with_timeout(wr, bufs, timeout).await?;
    metrics.add_bytes_sent(Protocol::Rtmp, n);
    Ok(())
}

/// Tells the player the stream is over (best effort) and ends the writer.
pub(super) async fn end_of_stream<W: RtmpWriter>(
    wr: &mut W,
    s: &Subscription,
    timeout: Duration,
) -> Result<String, CloseReason> {
    if let Some(p) = messages::unpublish_notify(s.rtmp_stream_id(), &s.hub().name) {
        let _ = write_with_timeout(wr, &[p], timeout).await;
    }
    Ok("stream ended (UnpublishNotify sent)".into())
}
