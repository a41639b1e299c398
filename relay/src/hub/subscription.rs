//! A viewer's handle on a stream's hub: a cursor into the shared frames plus a change
//! notification. Each batch is refcounted clones of bytes the hub serialized once; an RTMP
//! viewer on another message stream id gets its headers rewritten (`frame::retarget_stream_id`).
//!
//! It also carries the viewer's timing samples: a batch holding a video keyframe leaves one
//! pending (the viewer's join for its first keyframe, the keyframe's delay in the relay after
//! that), and the write path records it with [`Subscription::written`] once the batch is out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::watch;

use super::Hub;
use super::frame;
use super::viewer_cursor::ViewerCursor;
use crate::protocol::Protocol;

/// What a viewer gets next.
pub enum Batch {
    /// Shared bytes to write, in order (refcounted clones).
    Data(Vec<Bytes>),
    /// The publisher ended the stream.
    End,
}

/// A viewer's handle on a hub: a cursor plus a change notification.
pub struct Subscription {
    pub(super) hub: Arc<Hub>,
    pub(super) protocol: Protocol,
    pub(super) cursor: ViewerCursor,
    pub(super) epoch: u64,
    pub(super) rx: watch::Receiver<u64>,
    pub(super) prelude_pending: bool,
    /// Message stream id an RTMP viewer plays on (its bytes are rewritten if not the shared 1).
    pub(super) rtmp_stream_id: u32,
    /// An HTTP-FLV viewer whose tags go out as HTTP chunks framed by the hub (the relay's own
    /// HTTP-FLV writer), not as bare tags (a server that frames its body itself).
    pub(super) http_chunks: bool,
    /// Dropped with the subscription (viewer accounting in the registry).
    pub(super) guard: Option<Box<dyn Send + Sync>>,
    /// When the play was accepted, until the viewer's first keyframe is taken.
    pub(super) awaiting_start: Option<Instant>,
    /// A sample the last batch taken carries, recorded once it is written.
    pub(super) sample: Option<Sample>,
    /// The viewer's connection span: a skip is logged there, whichever task took the batch.
    pub(super) span: tracing::Span,
}

/// A timing sample waiting for its batch to be written.
#[derive(Debug, Clone, Copy)]
pub(super) enum Sample {
    /// The viewer's first keyframe; the play was accepted then.
    PlayStart(Instant),
    /// A later keyframe; it arrived at the hub then.
    FrameDelay(Instant),
}

impl Subscription {
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// An RTMP viewer that plays on message stream id `id`: every batch carries that id.
    pub fn play_on_stream_id(&mut self, id: u32) {
        self.rtmp_stream_id = id;
    }

    /// An HTTP-FLV viewer that takes every tag framed as one HTTP/1.1 chunk.
    pub fn take_http_chunks(&mut self) {
        self.http_chunks = true;
    }

    pub fn rtmp_stream_id(&self) -> u32 {
        self.rtmp_stream_id
    }

    pub fn dropped(&self) -> u64 {
        self.cursor.dropped
    }

    pub fn set_guard(&mut self, guard: Box<dyn Send + Sync>) {
        self.guard = Some(guard);
    }

    /// The span the viewer's skips are logged in (by default the one current at subscribe).
    pub fn set_span(&mut self, span: tracing::Span) {
        self.span = span;
    }

    /// Takes what is available now without waiting; `None` means nothing new.
    pub fn try_next(&mut self) -> Option<Batch> {
        self.rx.borrow_and_update();
        let skipped;
        let mut out = Vec::new();
        let protocol = self.protocol;
        let chunks = self.http_chunks;
        {
            let st = self.hub.lock();
            if st.epoch != self.epoch {
                return Some(Batch::End);
            }
            let mut keyframe_arrived = None;
            skipped = self.cursor.take(&st.cache, &self.hub.cfg.cursor, |f| {
                if f.keyframe && keyframe_arrived.is_none() {
                    keyframe_arrived = Some(f.arrived);
                }
                out.push(f.bytes_for(protocol, chunks))
            });
            // One sample per batch at most, and never one replacing another not yet recorded.
            if let (Some(arrived), None) = (keyframe_arrived, self.sample) {
                self.sample = Some(match self.awaiting_start.take() {
                    Some(accepted) => Sample::PlayStart(accepted),
                    None => Sample::FrameDelay(arrived),
                });
            }
            // A new viewer, or one that skipped ahead (possibly past a sequence header), gets
            // the current decoder configuration before its first keyframe.
            if self.prelude_pending || skipped > 0 {
                self.prelude_pending = false;
                // Only configuration the viewer would not get in this batch anyway.
                let from = self.cursor.last_from();
                let config: Vec<Bytes> = [&st.metadata, &st.video_seq, &st.audio_seq]
                    .into_iter()
                    .flatten()
                    .filter(|f| f.seq < from)
                    .map(|f| f.bytes_for(protocol, chunks))
                    .collect();
                out.splice(0..0, config);
            }
        }
        self.hub.record_dropped(skipped);
        if skipped > 0 {
            // At most once per GOP per viewer: the skip lands on the newest keyframe.
            let dropped = self.cursor.dropped;
            self.span.in_scope(|| {
                tracing::info!(
                    skipped,
                    dropped,
                    "viewer fell behind: skipped to the newest keyframe"
                )
            });
        }
        if out.is_empty() {
            return None;
        }
        if protocol == Protocol::Rtmp {
            out = frame::retarget_stream_id(out, self.rtmp_stream_id);
        }
        Some(Batch::Data(out))
    }

    /// The last batch taken is written to the viewer's socket (for HTTP-FLV through the HTTP
    /// server: taken by the server for it): records the timing sample it carried, if any.
    pub fn written(&mut self) {
        let Some(sample) = self.sample.take() else {
            return;
        };
        let Some(m) = &self.hub.metrics else {
            return;
        };
        match sample {
            Sample::PlayStart(accepted) => m.play_started(self.protocol, accepted.elapsed()),
            Sample::FrameDelay(arrived) => m.frame_delayed(self.protocol, arrived.elapsed()),
        }
    }

    /// Waits until the stream has something new; `false` if the stream is gone.
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }

    /// Waits for the next batch.
    pub async fn next_batch(&mut self) -> Batch {
        loop {
            if let Some(b) = self.try_next() {
                return b;
            }
            if self.rx.changed().await.is_err() {
                return Batch::End;
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub
            .viewer_counter(self.protocol)
            .fetch_sub(1, Ordering::SeqCst);
        // The guard drops after the count is updated, so linger checks see the new count.
        self.guard.take();
    }
}
