//! One hub per stream: metadata, sequence headers, GOP cache and the ring of shared frames.
//! Each message is serialized once into RTMP chunks and once into an FLV tag; viewers hold a
//! cursor and take refcounted clones. The hub never waits for a viewer.
//!
//! (Over 450 lines with its unit tests, which stay beside the hub they exercise; the hub
//! itself is ~320 lines.)

pub mod fanout_group;
pub mod frame;
pub mod gop_cache;
pub mod ingest_rate;
mod subscription;
pub mod viewer_cursor;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::time::RtmpTimestamp;
use tokio::sync::watch;

use crate::flv;
use crate::media::{MediaKind, MediaMessage};
use crate::metrics::{Metrics, stream_labels};
use crate::protocol::Protocol;
use crate::upstream::{MediaSink, UpstreamState};
use fanout_group::{FanoutGroups, GroupSink, Membership};
use frame::Frame;
use gop_cache::GopCache;
use ingest_rate::IngestRate;
pub use subscription::{Batch, Subscription};
pub use viewer_cursor::CursorLimits;
use viewer_cursor::ViewerCursor;

/// Outgoing RTMP chunk size shared by every viewer session (rml_rtmp's server default).
pub const OUTGOING_CHUNK_SIZE: u32 = 4096;
/// Message stream id every viewer plays on (the first createStream answer).
pub const PLAY_MESSAGE_STREAM_ID: u32 = 1;

const TYPE_AUDIO: u8 = 8;
const TYPE_VIDEO: u8 = 9;
const TYPE_DATA_AMF0: u8 = 18;

#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    pub cache_max_bytes: usize,
    pub cursor: CursorLimits,
    /// Shared writer tasks for caught-up viewers, RTMP and HTTP-FLV (0: each viewer writes
    /// from its own task).
    pub fanout_tasks: usize,
    /// How long a shared writer task may hold a new frame for the ones after it (the latency
    /// budget: fewer writes and wake-ups for at most this much more lag); 0: at once.
    pub max_write_delay: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            cache_max_bytes: 64 << 20,
            cursor: CursorLimits::default(),
            fanout_tasks: default_fanout_tasks(),
            max_write_delay: Duration::ZERO,
        }
    }
}

/// One fan-out task per core the process may run on (as many as tokio's worker threads).
pub fn default_fanout_tasks() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What a group writes a viewer's frames to: the protocol layer's socket half, boxed (it
/// takes the socket back by type when the viewer leaves the group).
pub type ViewerSink = Box<dyn GroupSink>;

struct HubState {
    serializer: ChunkSerializer,
    metadata: Option<Arc<Frame>>,
    video_seq: Option<Arc<Frame>>,
    audio_seq: Option<Arc<Frame>>,
    cache: GopCache,
    /// Bumped at end of stream: viewers of an older epoch are finished.
    epoch: u64,
    rate: IngestRate,
}

/// Point-in-time numbers for stats.
#[derive(Debug, Clone)]
pub struct HubSnapshot {
    pub viewers_rtmp: usize,
    pub viewers_flv: usize,
    pub dropped_frames: u64,
    pub ingest_kbps: u64,
    /// The same measure in bit/s (`ingest_kbps` is it over 1000, rounded down).
    pub ingest_bps: u64,
    pub gop_cache_ms: u32,
    pub has_keyframe: bool,
    pub upstream: Option<UpstreamState>,
    /// Verification failures of what was pulled: (count, the last one), none until one.
    pub integrity: Option<(u64, IntegrityFailure)>,
}

/// The last verification failure of a pulled stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrityFailure {
    pub upstream: String,
    pub reason: String,
    pub at: Instant,
}

pub struct Hub {
    pub app: String,
    pub name: String,
    cfg: HubConfig,
    state: Mutex<HubState>,
    changed: watch::Sender<u64>,
    viewers_rtmp: AtomicUsize,
    viewers_flv: AtomicUsize,
    dropped: AtomicU64,
    upstream: Mutex<Option<UpstreamState>>,
    /// Failures counted and the last one, for `/api/v1/streams` (the operator names the hop).
    integrity: Mutex<Option<(u64, IntegrityFailure)>>,
    metrics: Option<Arc<Metrics>>,
    groups: FanoutGroups<ViewerSink>,
    /// This hub, for the task that ends the stream after the fan-out tasks' last writes.
    me: Weak<Hub>,
}

impl Hub {
    pub fn new(app: &str, name: &str, cfg: HubConfig, metrics: Option<Arc<Metrics>>) -> Arc<Self> {
        let mut serializer = ChunkSerializer::new();
        // The returned SetChunkSize packet is not sent: each viewer's session announces the
        // same size itself.
        let _ = serializer.set_max_chunk_size(OUTGOING_CHUNK_SIZE, RtmpTimestamp::new(0));
        if let Some(m) = &metrics {
            // From 0, so a stream's dropped-frame rate exists before its first drop.
            let _ = m.dropped_frames.get_or_create(&stream_labels(app, name));
        }
        Arc::new_cyclic(|me| Hub {
            app: app.to_string(),
            name: name.to_string(),
            cfg,
            state: Mutex::new(HubState {
                serializer,
                metadata: None,
                video_seq: None,
                audio_seq: None,
                cache: GopCache::new(cfg.cache_max_bytes),
                epoch: 0,
                rate: IngestRate::new(Instant::now()),
            }),
            changed: watch::channel(0).0,
            viewers_rtmp: AtomicUsize::new(0),
            viewers_flv: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            upstream: Mutex::new(None),
            integrity: Mutex::new(None),
            metrics,
            groups: FanoutGroups::new(cfg.fanout_tasks, cfg.max_write_delay),
            me: me.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A poisoned lock only means another thread panicked mid-update; the data is still
        // structurally valid, so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serializes `msg` once for RTMP and once for FLV and appends it to the ring.
    pub fn publish(&self, msg: MediaMessage) {
        let type_id = match msg.kind {
            MediaKind::Audio => TYPE_AUDIO,
            MediaKind::Video => TYPE_VIDEO,
            MediaKind::Data => TYPE_DATA_AMF0,
        };
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(msg.timestamp),
            type_id,
            message_stream_id: PLAY_MESSAGE_STREAM_ID,
            data: msg.payload.clone(),
        };
        let is_seq = msg.is_sequence_header();
        // A signature message passes through like a frame; it is not the stream's metadata.
        let is_signature = crate::integrity::is_signature(&msg);
        let keyframe = msg.is_video_keyframe() && !is_seq;
        let (flv_tag, flv_chunk) = flv::tag_and_chunk(msg.kind, msg.timestamp, &msg.payload);
        let arrived = Instant::now();
        {
            let mut st = self.lock();
            st.rate.record(arrived, msg.payload.len());
            // can_be_dropped = true: every message starts with a type-0 header, so any viewer
            // can begin at any message and the bytes are valid for all of them.
            let rtmp = match st.serializer.serialize(&payload, false, true) {
                Ok(p) => Bytes::from(p.bytes),
                Err(e) => {
                    tracing::warn!(app = %self.app, stream = %self.name, error = %e, "dropping unserializable message");
                    return;
                }
            };
            let frame = st.cache.push_with(|seq| Frame {
                seq,
                kind: msg.kind,
                timestamp: msg.timestamp,
                keyframe,
                rtmp,
                flv: flv_tag,
                flv_chunk,
                arrived,
            });
            match msg.kind {
                MediaKind::Data if !is_signature => st.metadata = Some(frame),
                MediaKind::Video if is_seq => st.video_seq = Some(frame),
                MediaKind::Audio if is_seq => st.audio_seq = Some(frame),
                _ => {}
            }
        }
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Ends the publishing session once the fan-out tasks have written the frames they hold:
    /// with a write delay (`--max-write-delay`) the last frames of a broadcast may still be
    /// waiting, and ending at once would clear them from the cache unwritten. Without one (or
    /// outside a runtime) it ends at once. A publisher that comes back in the meantime (an
    /// edge's upstream) is not cut: the end is skipped if anything was published since.
    pub fn end_stream_after_writes(&self) {
        let flushed = self.groups.flush();
        let (Some(hub), Ok(runtime), false) = (
            self.me.upgrade(),
            tokio::runtime::Handle::try_current(),
            flushed.is_empty(),
        ) else {
            return self.end_stream();
        };
        let mark = self.publish_mark();
        let limit = self.groups.write_delay() + Duration::from_secs(1);
        runtime.spawn(async move {
            let _ = tokio::time::timeout(limit, futures::future::join_all(flushed)).await;
            if hub.publish_mark() == mark {
                hub.end_stream();
            }
        });
    }

    /// Where publishing stands: the session and the next frame's sequence number.
    fn publish_mark(&self) -> (u64, u64) {
        let st = self.lock();
        (st.epoch, st.cache.next_seq())
    }

    /// Ends the current publishing session: viewers get end of stream, caches are cleared.
    pub fn end_stream(&self) {
        {
            let mut st = self.lock();
            st.epoch += 1;
            st.cache.clear();
            st.metadata = None;
            st.video_seq = None;
            st.audio_seq = None;
        }
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A new viewer. The first batch it takes is metadata, sequence headers and the GOP cache.
    pub fn subscribe(self: &Arc<Self>, protocol: Protocol) -> Subscription {
        // The cursor is fixed now: a viewer gets everything from the GOP start at the moment
        // it arrived, however late its first read is.
        let (epoch, start) = {
            let st = self.lock();
            (st.epoch, st.cache.gop_start())
        };
        self.viewer_counter(protocol).fetch_add(1, Ordering::SeqCst);
        Subscription {
            hub: self.clone(),
            protocol,
            cursor: ViewerCursor::starting_at(start),
            epoch,
            rx: self.changed.subscribe(),
            prelude_pending: true,
            rtmp_stream_id: PLAY_MESSAGE_STREAM_ID,
            http_chunks: false,
            guard: None,
            awaiting_start: Some(Instant::now()),
            sample: None,
            span: tracing::Span::current(),
        }
    }

    /// Whether caught-up viewers are written from shared group tasks.
    pub fn fanout_groups_enabled(&self) -> bool {
        self.groups.enabled()
    }

    /// Hands a caught-up viewer (its socket and subscription) to one of the stream's group
    /// tasks; the membership gives it back. Needs a tokio runtime.
    pub fn join_fanout_group(
        &self,
        sink: ViewerSink,
        subscription: Box<Subscription>,
    ) -> Membership<ViewerSink> {
        self.groups
            .join(sink, subscription, &self.changed, self.metrics.clone())
    }

    fn viewer_counter(&self, protocol: Protocol) -> &AtomicUsize {
        match protocol {
            Protocol::Rtmp => &self.viewers_rtmp,
            Protocol::Flv => &self.viewers_flv,
        }
    }

    pub fn viewers(&self) -> usize {
        self.viewers_rtmp.load(Ordering::SeqCst) + self.viewers_flv.load(Ordering::SeqCst)
    }

    pub fn has_keyframe(&self) -> bool {
        self.lock().cache.last_keyframe().is_some()
    }

    pub fn upstream_state(&self) -> Option<UpstreamState> {
        self.upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn snapshot(&self) -> HubSnapshot {
        let (ingest_bps, gop_cache_ms, has_keyframe) = {
            let st = self.lock();
            (
                st.rate.bps(Instant::now()),
                st.cache.gop_duration_ms(),
                st.cache.last_keyframe().is_some(),
            )
        };
        HubSnapshot {
            viewers_rtmp: self.viewers_rtmp.load(Ordering::SeqCst),
            viewers_flv: self.viewers_flv.load(Ordering::SeqCst),
            dropped_frames: self.dropped.load(Ordering::SeqCst),
            ingest_kbps: ingest_bps / 1000,
            ingest_bps,
            gop_cache_ms,
            has_keyframe,
            upstream: self.upstream_state(),
            integrity: self
                .integrity
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn record_dropped(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.dropped.fetch_add(n, Ordering::SeqCst);
        if let Some(m) = &self.metrics {
            m.dropped_frames
                .get_or_create(&stream_labels(&self.app, &self.name))
                .inc_by(n);
        }
    }
}

impl MediaSink for Hub {
    fn on_media(&self, msg: MediaMessage) {
        self.publish(msg);
    }

    fn on_upstream_state(&self, state: UpstreamState) {
        if let Some(m) = &self.metrics {
            let labels = stream_labels(&self.app, &self.name);
            // Created at the pull's first state, so a pulled stream reports 0 reconnects.
            let reconnects = m.upstream_reconnects.get_or_create(&labels);
            if matches!(state, UpstreamState::Reconnecting { .. }) {
                reconnects.inc();
            }
            drop(reconnects);
            let connected = matches!(state, UpstreamState::Connected { .. });
            m.upstream_connected
                .get_or_create(&labels)
                .set(i64::from(connected));
        }
        tracing::info!(app = %self.app, stream = %self.name, state = ?state, "upstream state");
        *self.upstream.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }

    fn on_upstream_first_frame(&self, waited: std::time::Duration) {
        if let Some(m) = &self.metrics {
            m.upstream_connected_after(waited);
        }
    }

    fn on_end_of_stream(&self) {
        tracing::info!(app = %self.app, stream = %self.name, "upstream publisher ended the stream");
        self.end_stream_after_writes();
    }

    fn on_integrity_failure(&self, upstream: &str, reason: &str, detail: &str) {
        tracing::warn!(app = %self.app, stream = %self.name, upstream, reason, detail, "signed frames failed verification; dropping the upstream");
        if let Some(m) = &self.metrics {
            m.integrity_failure(&self.app, &self.name, upstream, reason);
        }
        let mut last = self.integrity.lock().unwrap_or_else(|e| e.into_inner());
        let count = last.as_ref().map_or(0, |(n, _)| *n) + 1;
        *last = Some((
            count,
            IntegrityFailure {
                upstream: upstream.to_string(),
                reason: reason.to_string(),
                at: Instant::now(),
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Arc<Hub> {
        Hub::new("live", "s", HubConfig::default(), None)
    }

    fn video(ts: u32, b0: u8, b1: u8) -> MediaMessage {
        MediaMessage::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![b0, b1, 0, 0, 0, 1, 2, 3]),
        )
    }

    fn data(b: Batch) -> Vec<Bytes> {
        match b {
            Batch::Data(v) => v,
            Batch::End => panic!("unexpected end"),
        }
    }

    #[test]
    fn late_joiner_gets_prelude_then_gop_and_bytes_are_shared() {
        let h = hub();
        h.publish(MediaMessage::new(
            MediaKind::Data,
            0,
            Bytes::from_static(b"\x02\x00\x0aonMetaData\x03\x00\x00\x09"),
        ));
        h.publish(video(0, 0x17, 0)); // sequence header
        h.publish(video(0, 0x17, 1)); // keyframe, GOP 1
        h.publish(video(40, 0x27, 1));
        h.publish(video(80, 0x17, 1)); // keyframe, GOP 2
        h.publish(video(120, 0x27, 1));
        let mut a = h.subscribe(Protocol::Rtmp);
        let mut b = h.subscribe(Protocol::Rtmp);
        let da = data(a.try_next().expect("batch"));
        let db = data(b.try_next().expect("batch"));
        // metadata + seq header + keyframe(80) + inter(120)
        assert_eq!(da.len(), 4);
        for (x, y) in da.iter().zip(&db) {
            assert_eq!(x.as_ptr(), y.as_ptr(), "same allocation, not a copy");
        }
        // Each message starts with a type-0 chunk header.
        for m in &da {
            assert_eq!(m[0] >> 6, 0);
        }
        assert!(a.try_next().is_none());
        assert_eq!(h.viewers(), 2);
        drop(b);
        assert_eq!(h.viewers(), 1);
    }

    #[test]
    fn viewer_that_fell_behind_gets_config_again_before_its_keyframe() {
        let h = hub();
        let mut s = h.subscribe(Protocol::Rtmp);
        assert!(s.try_next().is_none(), "nothing published yet");
        h.publish(MediaMessage::new(
            MediaKind::Data,
            0,
            Bytes::from_static(b"\x02\x00\x0aonMetaData\x05"),
        ));
        h.publish(video(0, 0x17, 0));
        for i in 0..3u32 {
            h.publish(video(i * 400, 0x17, 1));
            h.publish(video(i * 400 + 40, 0x27, 1));
        }
        // The ring dropped the metadata and sequence header frames; the viewer had not read.
        let d = data(s.try_next().expect("batch"));
        assert_eq!(d.len(), 4, "metadata, seq header, keyframe, inter frame");
        assert_eq!(d[0][7], 18);
        assert_eq!(d[1][7], 9);
        assert_eq!(&d[1][12..14], &[0x17, 0]);
        assert!(s.dropped() > 0);
    }

    #[test]
    fn flv_viewer_gets_tags_and_end_of_stream() {
        let h = hub();
        h.publish(video(0, 0x17, 1));
        let mut s = h.subscribe(Protocol::Flv);
        let d = data(s.try_next().expect("batch"));
        assert_eq!(d[0][0], flv::TAG_VIDEO);
        h.end_stream();
        assert!(matches!(s.try_next(), Some(Batch::End)));
    }

    #[test]
    fn new_sequence_header_mid_stream_reaches_viewers_and_replaces_stored() {
        let h = hub();
        h.publish(video(0, 0x17, 0));
        h.publish(video(0, 0x17, 1));
        let mut s = h.subscribe(Protocol::Rtmp);
        let _ = s.try_next();
        let mut changed = video(40, 0x17, 0);
        changed.payload = Bytes::from_static(&[0x17, 0, 0, 0, 0, 9, 9]);
        h.publish(changed);
        let d = data(s.try_next().expect("batch"));
        assert_eq!(d.len(), 1);
        // A late viewer gets the GOP in stream order: the keyframe, then the new header where the
        // publisher put it (not a second copy up front).
        let late = data(h.subscribe(Protocol::Flv).try_next().expect("batch"));
        assert_eq!(late.len(), 2);
        assert!(late[1].ends_with(&[9, 9, 0, 0, 0, 18]));
    }

    #[test]
    fn rtmp_viewer_on_another_stream_id_gets_its_id_in_every_header() {
        let h = hub();
        h.publish(video(0, 0x17, 1));
        let mut s = h.subscribe(Protocol::Rtmp);
        s.play_on_stream_id(3);
        let d = data(s.try_next().expect("batch"));
        assert_eq!(
            &d[0][8..12],
            &3u32.to_le_bytes(),
            "private header with id 3"
        );
        let mut flv = h.subscribe(Protocol::Flv);
        flv.play_on_stream_id(3);
        assert_eq!(
            data(flv.try_next().expect("batch")).len(),
            1,
            "FLV tags untouched"
        );
    }

    /// The `name{...}` sample of `text` whose labels include `protocol`.
    fn sample(text: &str, name: &str, protocol: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(protocol))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} for {protocol} in:\n{text}"))
    }

    #[test]
    fn join_and_keyframe_delays_are_recorded_once_written() {
        let metrics = Arc::new(Metrics::new("edge", "test"));
        let h = Hub::new("live", "s", HubConfig::default(), Some(metrics.clone()));
        let count = |name: &str, protocol: &str| {
            sample(
                &metrics.encode(),
                &format!("surge_relay_{name}_seconds_count"),
                &format!("protocol=\"{protocol}\""),
            )
        };
        // A viewer that arrives before any keyframe starts at the first one.
        let mut early = h.subscribe(Protocol::Rtmp);
        h.publish(video(0, 0x17, 0)); // sequence header: not a keyframe frame
        h.publish(video(0, 0x27, 1));
        assert!(early.try_next().is_some());
        early.written();
        assert_eq!(count("play_start", "rtmp"), 0.0, "no keyframe yet");
        h.publish(video(40, 0x17, 1));
        assert!(early.try_next().is_some());
        assert_eq!(count("play_start", "rtmp"), 0.0, "taken but not written");
        early.written();
        early.written();
        assert_eq!(count("play_start", "rtmp"), 1.0, "once");
        // Later keyframes are delay samples; inter frames are not.
        h.publish(video(80, 0x27, 1));
        assert!(early.try_next().is_some());
        early.written();
        assert_eq!(count("frame_delay", "rtmp"), 0.0);
        h.publish(video(120, 0x17, 1));
        h.publish(video(160, 0x17, 1));
        assert!(early.try_next().is_some());
        early.written();
        assert_eq!(count("frame_delay", "rtmp"), 1.0, "one sample per batch");
        // A late HTTP-FLV viewer's join: the GOP cache from its keyframe.
        let mut late = h.subscribe(Protocol::Flv);
        assert!(late.try_next().is_some());
        late.written();
        assert_eq!(count("play_start", "flv"), 1.0);
        assert_eq!(count("frame_delay", "flv"), 0.0, "the join is not a delay");
        assert_eq!(count("play_start", "rtmp"), 1.0);
    }

    #[test]
    fn early_viewer_gets_each_message_once() {
        let h = hub();
        let mut s = h.subscribe(Protocol::Rtmp);
        h.publish(video(0, 0x17, 0));
        h.publish(video(0, 0x17, 1));
        h.publish(video(40, 0x27, 1));
        let d = data(s.try_next().expect("batch"));
        assert_eq!(d.len(), 3, "no duplicate sequence header");
    }
}
