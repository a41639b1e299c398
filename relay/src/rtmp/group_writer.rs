//! A caught-up RTMP viewer's stay in one of its stream's fan-out groups: the group writes to
//! the connection's socket half (the hub holds it as a boxed [`GroupSink`], not by its type)
//! and hands it back when the viewer leaves. Only writers whose
//! [`RtmpWriter::JOINS_FANOUT_GROUPS`] is true (plain TCP) come here.

use std::any::Any;
use std::io::{self, IoSlice};
use std::time::Duration;

use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::close_reason::CloseReason;
use super::connection::{end_of_stream, write_failure, write_media};
use super::inbound_driver::Outbound;
use super::transport::RtmpWriter;
use crate::hub::fanout_group::{GroupSink, LeaveReason};
use crate::hub::{Subscription, ViewerSink};

impl GroupSink for OwnedWriteHalf {
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        OwnedWriteHalf::try_write_vectored(self, bufs)
    }
}

/// The connection's socket half, back from a group (which only ever holds the one it got).
fn socket_back<W: RtmpWriter>(sink: ViewerSink) -> Result<W, CloseReason> {
    let sink: Box<dyn Any + Send> = sink;
    sink.downcast::<W>()
        .map(|wr| *wr)
        .map_err(|_| CloseReason::from("fan-out group handed back a sink that is not a socket"))
}

/// How a caught-up viewer's stay in a fan-out task ended.
pub(super) enum GroupExit<W> {
    /// The socket and cursor are back with the connection (any unsent bytes written), with
    /// what the connection got from its reader meanwhile (`Some(None)`: the reader is done).
    Back {
        sink: W,
        subscription: Box<Subscription>,
        next: Option<Option<Outbound>>,
    },
    /// The stream ended; the player was told.
    Ended(String),
}

/// Hands a caught-up viewer to a fan-out task of its stream, which writes its frames until it
/// falls behind, its client needs a reply, its connection closes or the stream ends.
pub(super) async fn write_from_group<W: RtmpWriter>(
    wr: W,
    s: Box<Subscription>,
    rx: &mut mpsc::Receiver<Outbound>,
    done: &CancellationToken,
    timeout: Duration,
    metrics: &crate::metrics::Metrics,
) -> Result<GroupExit<W>, CloseReason> {
    let hub = s.hub().clone();
    let sink = wr
        .into_group_sink()
        .map_err(|_| CloseReason::from("this connection's writer cannot join a fan-out group"))?;
    let mut membership = hub.join_fanout_group(sink, s);
    let (leave, next) = tokio::select! {
        left = membership.left() => (left, None),
        o = rx.recv() => {
            membership.recall();
            (membership.left().await, Some(o))
        }
        _ = done.cancelled() => {
            membership.recall();
            (membership.left().await, Some(None))
        }
    };
    let leave = leave.ok_or("stream's fan-out task ended")?;
    let mut sink: W = socket_back(leave.sink)?;
    let mut subscription = leave.subscription;
    match leave.reason {
        LeaveReason::Behind { unsent } => {
            write_media(&mut sink, &unsent, timeout, metrics).await?;
            // The rest of the batch the group began is out now.
            subscription.written();
        }
        LeaveReason::Recalled => {}
        LeaveReason::End => {
            return end_of_stream(&mut sink, &subscription, timeout)
                .await
                .map(GroupExit::Ended);
        }
        LeaveReason::Failed(e) => return Err(write_failure(&e)),
    }
    Ok(GroupExit::Back {
        sink,
        subscription,
        next,
    })
}
