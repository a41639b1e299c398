//! HTTP-FLV plays on the plain HTTP port, served on the raw socket instead of through the HTTP
//! server, so a caught-up viewer can join its stream's fan-out groups as RTMP viewers do: one
//! wake-up per group per frame and non-blocking `writev`s of bytes the hub framed once
//! (each tag is one HTTP chunk, shared by every viewer). The viewer's own task runs only
//! while its socket is full (then with the slow-viewer timeout, as for RTMP), when the client
//! closes, and at the end of the stream.
//!
//! The answers a play can get are the HTTP route's (`http::flv`): the same placement
//! redirect, 404 and 503, and a 200 with the same headers followed by the FLV header,
//! metadata, sequence headers and the GOP cache.

use std::any::Any;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tracing::Instrument;

use super::AppState;
use super::play_request::{FlvPlay, head_len};
use super::raw_response;
use crate::flv;
use crate::hub::fanout_group::LeaveReason;
use crate::hub::{Batch, Subscription, ViewerSink};
use crate::metrics::Metrics;
use crate::placement::overflow_viewers::home_region;
use crate::protocol::Protocol;
use crate::rtmp::close_reason::CloseReason;
use crate::rtmp::connection::write_failure;
use crate::rtmp::vectored::write_all_vectored;

/// Longest request head read (a player's is a few hundred bytes).
const MAX_HEAD: usize = 16 << 10;
/// How long a client may take to send the rest of its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The last chunk of a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Serves `play` on `stream`, whose request head has been peeked but not read. `timeout` is
/// the slow-viewer timeout: a socket that takes nothing for that long is closed.
pub async fn serve(mut stream: TcpStream, play: FlvPlay, state: AppState, timeout: Duration) {
    let metrics = state.registry.metrics().clone();
    // Boxed: the head, the answer and the placement run once; the viewer's loop below is
    // what stays in memory for as long as it watches.
    let sub = match Box::pin(start(&mut stream, &play, &state)).await {
        Ok(sub) => sub,
        Err(Some(answer)) => {
            // Best effort: the client may be gone already.
            let _ = write_all_vectored(&mut stream, &[answer], timeout).await;
            return;
        }
        Err(None) => return,
    };
    let viewer = super::flv::NEXT_VIEWER_ID.fetch_add(1, Ordering::Relaxed);
    let span =
        tracing::info_span!("http_flv", viewer, stream = %format!("{}/{}", play.app, play.name));
    let mut sub = sub;
    // Its skips are logged there too, whichever task takes its batches.
    sub.set_span(span.clone());
    async move {
        tracing::info!("viewer started (http-flv)");
        match watch(stream, sub, play.http11, timeout, &metrics).await {
            Ok(why) => tracing::info!("{why}"),
            Err(CloseReason::SlowViewer(_)) => {
                metrics.connection_closed("slow_viewer");
                tracing::warn!(
                    "http connection closed reason=slow viewer: socket accepted nothing for {timeout:?}"
                );
            }
            Err(reason) => {
                if let Some(label) = reason.metric_label() {
                    metrics.connection_closed(label);
                }
                tracing::info!(reason = %reason, "http-flv connection closed");
            }
        }
    }
    .instrument(span)
    .await
}

/// Reads the request head and places and admits the play: the viewer's subscription, or the
/// answer to write instead (`None`: the client went away).
async fn start(
    stream: &mut TcpStream,
    play: &FlvPlay,
    state: &AppState,
) -> Result<Box<Subscription>, Option<Bytes>> {
    let answer = match tokio::time::timeout(HEAD_TIMEOUT, read_head(stream)).await {
        Ok(Ok(true)) => {
            match super::locate::place_flv(state, &play.app, &play.name, play.query.as_deref()) {
                Some(elsewhere) => elsewhere,
                // Placed here by another region's locator (overflow): that region's viewer.
                None => match state.registry.subscribe_from(
                    &play.app,
                    &play.name,
                    Protocol::Flv,
                    play.query.as_deref().and_then(home_region),
                ) {
                    Ok(mut sub) => {
                        if play.http11 {
                            sub.take_http_chunks();
                        }
                        return Ok(Box::new(sub));
                    }
                    Err(e) => super::flv::refusal(e),
                },
            }
        }
        Ok(Ok(false)) => raw_response::head_too_large(),
        Ok(Err(_)) | Err(_) => return Err(None),
    };
    Err(Some(raw_response::complete(answer).await))
}

/// Reads (and drops) the request head; false when it is longer than [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> io::Result<bool> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if head_len(&head).is_some() {
            return Ok(true);
        }
        if head.len() > MAX_HEAD {
            return Ok(false);
        }
    }
}

/// The viewer's life from the response head on: Ok(why) for an ordinary end.
async fn watch(
    stream: TcpStream,
    mut sub: Box<Subscription>,
    http11: bool,
    timeout: Duration,
    metrics: &Metrics,
) -> Result<String, CloseReason> {
    let (mut rd, mut wr) = stream.into_split();
    let first = if http11 {
        flv::http_chunk(&flv::file_header())
    } else {
        flv::file_header()
    };
    write_media(
        &mut wr,
        &[raw_response::flv_head(http11), first],
        timeout,
        metrics,
    )
    .await?;
    loop {
        if let Some(batch) = sub.try_next() {
            match batch {
                Batch::Data(bufs) => {
                    write_media(&mut wr, &bufs, timeout, metrics).await?;
                    sub.written();
                }
                Batch::End => return end_of_stream(&mut wr, &sub, http11, timeout).await,
            }
            continue;
        }
        let hub = sub.hub().clone();
        if !hub.fanout_groups_enabled() {
            tokio::select! {
                alive = sub.changed() => if !alive {
                    return Ok("stream closed: closing http-flv response".into());
                },
                why = peer_closed(&mut rd) => return Ok(why),
            }
            continue;
        }
        let sink: ViewerSink = Box::new(wr);
        let mut membership = hub.join_fanout_group(sink, sub);
        let (leave, gone) = tokio::select! {
            left = membership.left() => (left, None),
            why = peer_closed(&mut rd) => {
                membership.recall();
                (membership.left().await, Some(why))
            }
        };
        let leave = leave.ok_or("stream's fan-out task ended")?;
        wr = socket_back(leave.sink)?;
        sub = leave.subscription;
        if let Some(why) = gone {
            return Ok(why);
        }
        match leave.reason {
            LeaveReason::Behind { unsent } => {
                write_media(&mut wr, &unsent, timeout, metrics).await?;
                // The rest of the batch the group began is out now.
                sub.written();
            }
            LeaveReason::Recalled => {}
            LeaveReason::End => return end_of_stream(&mut wr, &sub, http11, timeout).await,
            LeaveReason::Failed(e) => return Err(write_failure(&e)),
        }
    }
}

/// The socket half back from a group, which only ever holds the one it got.
fn socket_back(sink: ViewerSink) -> Result<OwnedWriteHalf, CloseReason> {
    let sink: Box<dyn Any + Send> = sink;
    sink.downcast::<OwnedWriteHalf>()
        .map(|wr| *wr)
        .map_err(|_| CloseReason::from("fan-out group handed back a sink that is not a socket"))
}

/// Writes and counts a viewer's bytes; a socket that takes nothing for `timeout` is a slow
/// viewer.
async fn write_media(
    wr: &mut OwnedWriteHalf,
    bufs: &[Bytes],
    timeout: Duration,
    metrics: &Metrics,
) -> Result<(), CloseReason> {
    match write_all_vectored(wr, bufs, timeout).await {
        Ok(n) => {
            metrics.add_bytes_sent(Protocol::Flv, n);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(CloseReason::SlowViewer(format!(
            "socket accepted nothing for {timeout:?}"
        ))),
        Err(e) => Err(write_failure(&e)),
    }
}

/// Ends the body (the last chunk, for a chunked one) and the connection.
async fn end_of_stream(
    wr: &mut OwnedWriteHalf,
    sub: &Subscription,
    http11: bool,
    timeout: Duration,
) -> Result<String, CloseReason> {
    if http11 {
        let _ = write_all_vectored(wr, &[Bytes::from_static(LAST_CHUNK)], timeout).await;
    }
    Ok(format!(
        "stream ended: closing http-flv response (dropped {} frames)",
        sub.dropped()
    ))
}

/// Waits until the client closes its side (or it fails); what it sends meanwhile is dropped.
async fn peer_closed(rd: &mut OwnedReadHalf) -> String {
    loop {
        if let Err(e) = rd.readable().await {
            return format!("viewer's connection failed: {e}");
        }
        match rd.try_read(&mut [0u8; 256]) {
            Ok(0) => return "viewer closed the connection".into(),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return "viewer reset the connection".into();
            }
            Err(e) => return format!("viewer's connection failed: {e}"),
        }
    }
}
