//! Sans-IO RTMP play session for the puller.
//!
//! Bytes from the upstream go through the bounded [`ChunkReader`]; protocol control, user
//! control, media and metadata are handled here. Only complete command messages that the
//! guarded [`amf0::decode_with`] accepted are re-serialized (one message, type-0 header) and
//! handed to rml_rtmp's `ClientSession`, which drives connect / createStream / play. Every
//! call into rml_rtmp is wrapped so that a panic inside it becomes an error for this
//! connection only.
//!
//! (Over 450 lines with its unit tests, which feed it byte-level upstream replies; the session
//! itself is ~420 lines.)

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;

use surge_wire::amf0::{self, Amf0Limits, Amf0Value};
use surge_wire::flv::split_aggregate;
use surge_wire::message::{self as wire, UserControl};
use surge_wire::metadata::metadata_body;
use surge_wire::{AckCounter, ChunkError, ChunkLimits, ChunkReader, RawMessage};

use super::status::{PlayStatus, classify};
use crate::media::MediaKind;

const AMF_LIMITS: Amf0Limits = Amf0Limits {
    max_depth: 16,
    max_values: 4096,
};
/// Aggregates nested inside aggregates are refused.
const MAX_AGGREGATE_DEPTH: u8 = 1;

/// Something the IO loop must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullEvent {
    /// Playback accepted (or media arrived first).
    Playing,
    /// One media message with the upstream's own timestamp.
    Media {
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    },
    /// The publisher went away; the connection stays.
    PublisherEnded,
    /// A publisher is back on this connection (its clock may restart).
    PublisherStarted,
}

/// Why the session cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("command from upstream rejected: {0}")]
    BadCommand(String),
    #[error("upstream refused the connection: {0}")]
    ConnectRejected(String),
    #[error("upstream does not have the stream ({0})")]
    StreamNotFound(String),
    #[error("upstream failed the request: {0}")]
    PlayFailed(String),
    #[error("RTMP client session: {0}")]
    Client(String),
    #[error("RTMP library panicked while handling {0}; connection dropped")]
    LibraryPanic(&'static str),
    #[error("malformed {0}")]
    Malformed(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Connecting,
    PlayRequested,
    Playing,
}

pub struct PullSession {
    reader: ChunkReader,
    client: ClientSession,
    /// Re-serializes checked commands for `client`; its state mirrors `client`'s deserializer.
    feed: ChunkSerializer,
    stream: String,
    phase: Phase,
    publisher_ended: bool,
    acks: AckCounter,
    /// The timestamp of the latest PingResponse not yet taken.
    ping_answer: Option<u32>,
}

impl PullSession {
    /// Creates the session and returns the bytes of the `connect` request.
    pub fn new(
        app: &str,
        stream: &str,
        tc_url: String,
        limits: ChunkLimits,
    ) -> Result<(Self, Vec<u8>), SessionError> {
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(tc_url);
        config.flash_version = "LNX 9,0,124,2".to_string();
        let (mut client, initial) = guarded("session start", || ClientSession::new(config))?
            .map_err(|e| SessionError::Client(e.to_string()))?;
        let mut out = Vec::new();
        collect_outbound(initial, &mut out);
        let app = app.to_string();
        let connect = guarded("connect request", || client.request_connection(app))?
            .map_err(|e| SessionError::Client(e.to_string()))?;
        if let ClientSessionResult::OutboundResponse(p) = connect {
            out.extend_from_slice(&p.bytes);
        }
        Ok((
            PullSession {
                reader: ChunkReader::new(limits),
                client,
                feed: ChunkSerializer::new(),
                stream: stream.to_string(),
                phase: Phase::Connecting,
                publisher_ended: false,
                acks: AckCounter::default(),
                ping_answer: None,
            },
            out,
        ))
    }

    pub fn is_playing(&self) -> bool {
        self.phase == Phase::Playing
    }

    pub fn publisher_ended(&self) -> bool {
        self.publisher_ended
    }

    /// The timestamp echoed by the latest answer to one of our pings since the last call.
    pub fn take_ping_answer(&mut self) -> Option<u32> {
        self.ping_answer.take()
    }

    /// Feeds bytes from the upstream; appends bytes to send to `out` and events to `events`.
    pub fn handle_input(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<PullEvent>,
    ) -> Result<(), SessionError> {
        self.acks.on_bytes_into(data.len(), out);
        self.reader.push(data);
        while let Some(msg) = self.reader.next_message()? {
            self.handle_message(msg, out, events, 0)?;
        }
        Ok(())
    }

    fn handle_message(
        &mut self,
        msg: RawMessage,
        out: &mut Vec<u8>,
        events: &mut Vec<PullEvent>,
        aggregate_depth: u8,
    ) -> Result<(), SessionError> {
        tracing::trace!(
            type_id = msg.type_id,
            timestamp = msg.timestamp,
            stream_id = msg.message_stream_id,
            len = msg.payload.len(),
            "upstream message"
        );
        match msg.type_id {
            // SetChunkSize and Abort are applied by the chunk reader itself.
            wire::MSG_WINDOW_ACK_SIZE => {
                self.acks.on_window_ack_size(&msg.payload);
            }
            wire::MSG_USER_CONTROL => match wire::parse_user_control(&msg.payload) {
                Some(UserControl::PingRequest(t)) => out.extend_from_slice(&wire::ping_response(t)),
                Some(UserControl::PingResponse(t)) => self.ping_answer = Some(t),
                Some(UserControl::StreamEof(_)) if self.phase == Phase::Playing => {
                    self.mark_ended(events)
                }
                Some(UserControl::StreamBegin(_)) => self.mark_started(events),
                _ => {}
            },
            wire::MSG_AUDIO | wire::MSG_VIDEO => {
                let kind = if msg.type_id == wire::MSG_AUDIO {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                self.media(kind, msg.timestamp, msg.payload, events);
            }
            wire::MSG_AMF0_DATA => self.data(msg.timestamp, msg.payload, events),
            // AMF3 data/command messages start with a format byte and then carry AMF0.
            wire::MSG_AMF3_DATA if msg.payload.len() > 1 => {
                self.data(msg.timestamp, msg.payload.slice(1..), events)
            }
            wire::MSG_AMF0_COMMAND => self.command(msg, out, events)?,
            wire::MSG_AMF3_COMMAND if msg.payload.len() > 1 => {
                let payload = msg.payload.slice(1..);
                let length = payload.len() as u32;
                self.command(
                    RawMessage {
                        payload,
                        length,
                        ..msg
                    },
                    out,
                    events,
                )?
            }
            wire::MSG_AGGREGATE if aggregate_depth < MAX_AGGREGATE_DEPTH => {
                let subs = split_aggregate(msg.timestamp, &msg.payload)
                    .map_err(|e| SessionError::Malformed(e.to_string()))?;
                for sub in subs {
                    let inner = RawMessage {
                        chunk_stream_id: msg.chunk_stream_id,
                        type_id: sub.type_id,
                        timestamp: sub.timestamp,
                        message_stream_id: msg.message_stream_id,
                        length: sub.payload.len() as u32,
                        payload: sub.payload,
                    };
                    if matches!(
                        inner.type_id,
                        wire::MSG_AUDIO | wire::MSG_VIDEO | wire::MSG_AMF0_DATA
                    ) {
                        self.handle_message(inner, out, events, aggregate_depth + 1)?;
                    }
                }
            }
            // Acknowledgements, peer bandwidth, shared objects...: nothing to do.
            _ => {}
        }
        Ok(())
    }

    fn media(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
        events: &mut Vec<PullEvent>,
    ) {
        if self.phase < Phase::PlayRequested || payload.is_empty() {
            return;
        }
        if self.phase == Phase::PlayRequested {
            // Some servers send media before NetStream.Play.Start.
            self.phase = Phase::Playing;
            events.push(PullEvent::Playing);
        }
        self.mark_started(events);
        events.push(PullEvent::Media {
            kind,
            timestamp,
            payload,
        });
    }

    fn data(&mut self, timestamp: u32, payload: Bytes, events: &mut Vec<PullEvent>) {
        if let Some(body) = metadata_body(&payload) {
            self.media(MediaKind::Data, timestamp, body, events);
        } else if surge_integrity::is_signature(&payload) {
            // Signed frames: passed on as they came (checked by the puller with --verify-key).
            self.media(MediaKind::Data, timestamp, payload, events);
        }
    }

    fn mark_ended(&mut self, events: &mut Vec<PullEvent>) {
        if !self.publisher_ended {
            self.publisher_ended = true;
            events.push(PullEvent::PublisherEnded);
        }
    }

    fn mark_started(&mut self, events: &mut Vec<PullEvent>) {
        if self.publisher_ended {
            self.publisher_ended = false;
            events.push(PullEvent::PublisherStarted);
        }
    }

    fn command(
        &mut self,
        msg: RawMessage,
        out: &mut Vec<u8>,
        events: &mut Vec<PullEvent>,
    ) -> Result<(), SessionError> {
        let values = match decode_amf0(&msg.payload) {
            Ok(v) => v,
            // Once playing, an odd command is not worth losing the stream for.
            Err(e) if self.phase == Phase::Playing => {
                tracing::debug!(error = %e, "ignoring undecodable command from upstream");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let name = match values.first() {
            Some(Amf0Value::Utf8String(s)) => s.as_str(),
            _ => return Err(SessionError::BadCommand("command without a name".into())),
        };
        if name == "onStatus" {
            let (code, description) = status_fields(&values);
            match classify(&code) {
                PlayStatus::Started if self.phase == Phase::Playing => {
                    self.mark_started(events);
                    return Ok(());
                }
                PlayStatus::Started => {} // ClientSession turns it into PlaybackRequestAccepted
                PlayStatus::PublisherEnded => {
                    self.mark_ended(events);
                    return Ok(());
                }
                PlayStatus::PublisherStarted => {
                    self.mark_started(events);
                    return Ok(());
                }
                PlayStatus::NotFound => return Err(SessionError::StreamNotFound(code)),
                PlayStatus::Failed => {
                    return Err(SessionError::PlayFailed(format!("{code}: {description}")));
                }
                PlayStatus::Informational => return Ok(()),
            }
        }
        self.feed_client(&msg, out, events)
    }

    /// Hands one checked command to rml_rtmp's ClientSession.
    fn feed_client(
        &mut self,
        msg: &RawMessage,
        out: &mut Vec<u8>,
        events: &mut Vec<PullEvent>,
    ) -> Result<(), SessionError> {
        let payload = MessagePayload {
            // Command timestamps carry no meaning; 0 keeps extended-timestamp quirks out.
            timestamp: RtmpTimestamp::new(0),
            type_id: wire::MSG_AMF0_COMMAND,
            message_stream_id: msg.message_stream_id,
            data: msg.payload.clone(),
        };
        let feed = &mut self.feed;
        let packet = guarded("command re-serialization", || {
            feed.serialize(&payload, true, false)
        })?
        .map_err(|e| SessionError::Client(e.to_string()))?;
        let client = &mut self.client;
        let results = guarded("command", || client.handle_input(&packet.bytes))?
            .map_err(|e| SessionError::Client(e.to_string()))?;
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(p) => out.extend_from_slice(&p.bytes),
                ClientSessionResult::RaisedEvent(event) => self.client_event(event, out, events)?,
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn client_event(
        &mut self,
        event: ClientSessionEvent,
        out: &mut Vec<u8>,
        events: &mut Vec<PullEvent>,
    ) -> Result<(), SessionError> {
        match event {
            ClientSessionEvent::ConnectionRequestAccepted => {
                let stream = self.stream.clone();
                let client = &mut self.client;
                let play = guarded("play request", || client.request_playback(stream))?
                    .map_err(|e| SessionError::Client(e.to_string()))?;
                if let ClientSessionResult::OutboundResponse(p) = play {
                    out.extend_from_slice(&p.bytes);
                }
                self.phase = Phase::PlayRequested;
            }
            ClientSessionEvent::ConnectionRequestRejected { description } => {
                return Err(SessionError::ConnectRejected(description));
            }
            ClientSessionEvent::PlaybackRequestAccepted if self.phase != Phase::Playing => {
                self.phase = Phase::Playing;
                events.push(PullEvent::Playing);
            }
            ClientSessionEvent::UnhandleableOnStatusCode { code } => match classify(&code) {
                PlayStatus::NotFound => return Err(SessionError::StreamNotFound(code)),
                PlayStatus::Failed => return Err(SessionError::PlayFailed(code)),
                PlayStatus::PublisherEnded => self.mark_ended(events),
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }
}

/// Runs a call into rml_rtmp, turning a panic into an error.
fn guarded<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, SessionError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| SessionError::LibraryPanic(what))
}

fn collect_outbound(results: Vec<ClientSessionResult>, out: &mut Vec<u8>) {
    for r in results {
        if let ClientSessionResult::OutboundResponse(p) = r {
            out.extend_from_slice(&p.bytes);
        }
    }
}

fn decode_amf0(payload: &[u8]) -> Result<Vec<Amf0Value>, SessionError> {
    guarded("AMF0 decoding", || amf0::decode_with(payload, AMF_LIMITS))?
        .map_err(|e| SessionError::BadCommand(e.to_string()))
}

/// `code` and `description` of an onStatus info object (4th value).
fn status_fields(values: &[Amf0Value]) -> (String, String) {
    let empty = HashMap::new();
    let props = values
        .iter()
        .skip(2)
        .find_map(|v| match v {
            Amf0Value::Object(p) => Some(p),
            _ => None,
        })
        .unwrap_or(&empty);
    let text = |k: &str| match props.get(k) {
        Some(Amf0Value::Utf8String(s)) => s.clone(),
        _ => String::new(),
    };
    (text("code"), text("description"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::sessions::{
        ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
    };

    /// rml_rtmp's ServerSession as an in-memory upstream (it only ever reads our own bytes).
    struct Upstream {
        server: ServerSession,
    }

    impl Upstream {
        fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            let results = self.server.handle_input(bytes).expect("server input");
            for r in results {
                match r {
                    ServerSessionResult::OutboundResponse(p) => out.extend(p.bytes),
                    ServerSessionResult::RaisedEvent(
                        ServerSessionEvent::ConnectionRequested { request_id, .. }
                        | ServerSessionEvent::PlayStreamRequested { request_id, .. },
                    ) => {
                        for r in self.server.accept_request(request_id).expect("accept") {
                            if let ServerSessionResult::OutboundResponse(p) = r {
                                out.extend(p.bytes);
                            }
                        }
                    }
                    _ => {}
                }
            }
            out
        }
    }

    /// Connects a PullSession to an in-memory upstream until playback starts.
    fn playing() -> (PullSession, Upstream, Vec<PullEvent>) {
        let (mut session, mut to_server) =
            PullSession::new("live", "s", "rtmp://h/live".into(), ChunkLimits::default()).unwrap();
        let (server, init) = ServerSession::new(ServerSessionConfig::new()).unwrap();
        let mut up = Upstream { server };
        let mut to_client: Vec<u8> = init
            .into_iter()
            .filter_map(|r| match r {
                ServerSessionResult::OutboundResponse(p) => Some(p.bytes),
                _ => None,
            })
            .flatten()
            .collect();
        let mut events = Vec::new();
        for _ in 0..10 {
            to_client.extend(up.feed(&to_server));
            to_server.clear();
            session
                .handle_input(&to_client, &mut to_server, &mut events)
                .unwrap();
            to_client.clear();
            if session.is_playing() {
                break;
            }
        }
        assert!(session.is_playing(), "events {events:?}");
        assert_eq!(events, vec![PullEvent::Playing]);
        (session, up, Vec::new())
    }

    /// One full-header chunk (payload must fit the 4096-byte chunk size the server set).
    fn chunk(csid: u8, type_id: u8, ts: u32, msid: u32, len: usize, body: &[u8]) -> Vec<u8> {
        let mut v = vec![csid];
        v.extend_from_slice(&ts.to_be_bytes()[1..]);
        v.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        v.push(type_id);
        v.extend_from_slice(&msid.to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    fn on_status(code: &str) -> Vec<u8> {
        let mut info = HashMap::new();
        info.insert("code".to_string(), Amf0Value::Utf8String(code.into()));
        info.insert("level".to_string(), Amf0Value::Utf8String("status".into()));
        amf0::encode(vec![
            Amf0Value::Utf8String("onStatus".into()),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::Object(info),
        ])
        .unwrap()
    }

    fn media(events: &[PullEvent]) -> Vec<(MediaKind, u32, usize)> {
        events
            .iter()
            .filter_map(|e| match e {
                PullEvent::Media {
                    kind,
                    timestamp,
                    payload,
                } => Some((*kind, *timestamp, payload.len())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn plays_and_delivers_metadata_and_media() {
        let (mut s, mut up, mut ev) = playing();
        let mut meta = StreamMetadata::new();
        meta.video_width = Some(320);
        meta.video_height = Some(240);
        let mut bytes = up.server.send_metadata(1, &meta).unwrap().bytes;
        let seq = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2]);
        let key = Bytes::from(vec![0x17u8; 6000]);
        bytes.extend(
            up.server
                .send_video_data(1, seq, RtmpTimestamp::new(0), false)
                .unwrap()
                .bytes,
        );
        bytes.extend(
            up.server
                .send_video_data(1, key, RtmpTimestamp::new(40), true)
                .unwrap()
                .bytes,
        );
        let mut out = Vec::new();
        s.handle_input(&bytes, &mut out, &mut ev).unwrap();
        let m = media(&ev);
        assert_eq!(m[0].0, MediaKind::Data);
        assert_eq!(
            &m[1..],
            &[(MediaKind::Video, 0, 7), (MediaKind::Video, 40, 6000)]
        );
        match &ev[0] {
            PullEvent::Media { payload, .. } => {
                assert!(payload.starts_with(b"\x02\x00\x0aonMetaData"))
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn interleaved_chunk_streams_are_reassembled() {
        let (mut s, _up, mut ev) = playing();
        // A 5000-byte video message split at the 4096 chunk size, with a whole audio message
        // between its two chunks (legal RTMP that rml_rtmp's own deserializer cannot take).
        let mut bytes = chunk(7, 9, 80, 1, 5000, &[0x27; 4096]);
        bytes.extend(chunk(8, 8, 70, 1, 10, &[0xaf; 10]));
        bytes.push(0xc0 | 7);
        bytes.extend_from_slice(&[0x27; 904]);
        let mut out = Vec::new();
        s.handle_input(&bytes, &mut out, &mut ev).unwrap();
        assert_eq!(
            media(&ev),
            vec![(MediaKind::Audio, 70, 10), (MediaKind::Video, 80, 5000)]
        );
    }

    #[test]
    fn publisher_end_and_return_are_reported() {
        let (mut s, _up, mut ev) = playing();
        let status = on_status("NetStream.Play.UnpublishNotify");
        let mut out = Vec::new();
        s.handle_input(
            &chunk(5, 20, 0, 1, status.len(), &status),
            &mut out,
            &mut ev,
        )
        .unwrap();
        assert_eq!(ev, vec![PullEvent::PublisherEnded]);
        assert!(s.publisher_ended());
        // nginx style: user control StreamEOF while already ended changes nothing.
        s.handle_input(
            &chunk(2, 4, 0, 0, 6, &[0, 1, 0, 0, 0, 1]),
            &mut out,
            &mut ev,
        )
        .unwrap();
        assert_eq!(ev.len(), 1);
        s.handle_input(&chunk(7, 9, 0, 1, 2, &[0x17, 1]), &mut out, &mut ev)
            .unwrap();
        assert_eq!(ev[1], PullEvent::PublisherStarted);
        assert!(matches!(ev[2], PullEvent::Media { .. }));
    }

    #[test]
    fn stream_eof_user_control_means_publisher_ended() {
        let (mut s, _up, mut ev) = playing();
        let mut out = Vec::new();
        s.handle_input(
            &chunk(2, 4, 0, 0, 6, &[0, 1, 0, 0, 0, 1]),
            &mut out,
            &mut ev,
        )
        .unwrap();
        assert_eq!(ev, vec![PullEvent::PublisherEnded]);
        s.handle_input(
            &chunk(2, 4, 0, 0, 6, &[0, 0, 0, 0, 0, 1]),
            &mut out,
            &mut ev,
        )
        .unwrap();
        assert_eq!(ev[1], PullEvent::PublisherStarted);
    }

    #[test]
    fn pings_and_acknowledgements_are_answered() {
        let (mut s, _up, mut ev) = playing();
        let mut out = Vec::new();
        s.handle_input(
            &chunk(2, 4, 0, 0, 6, &[0, 6, 0, 0, 0, 9]),
            &mut out,
            &mut ev,
        )
        .unwrap();
        assert_eq!(out, wire::ping_response(9));
        out.clear();
        // The answer to our own ping is kept for the round-trip estimate, taken once.
        s.handle_input(
            &chunk(2, 4, 0, 0, 6, &[0, 7, 0, 0, 0, 42]),
            &mut out,
            &mut ev,
        )
        .unwrap();
        assert!(out.is_empty());
        assert_eq!(s.take_ping_answer(), Some(42));
        assert_eq!(s.take_ping_answer(), None);
        s.handle_input(
            &chunk(2, 5, 0, 0, 4, &1000u32.to_be_bytes()),
            &mut out,
            &mut ev,
        )
        .unwrap();
        s.handle_input(&chunk(7, 9, 0, 1, 1200, &[0x27; 1200]), &mut out, &mut ev)
            .unwrap();
        assert_eq!(
            &out[..8],
            &wire::acknowledgement(0)[..8],
            "an Acknowledgement chunk"
        );
    }

    #[test]
    fn not_found_and_failures_end_the_session() {
        let (mut s, _up, mut ev) = playing();
        let status = on_status("NetStream.Play.StreamNotFound");
        let mut out = Vec::new();
        let err = s
            .handle_input(
                &chunk(5, 20, 0, 1, status.len(), &status),
                &mut out,
                &mut ev,
            )
            .unwrap_err();
        assert!(matches!(err, SessionError::StreamNotFound(_)), "{err}");
    }

    #[test]
    fn hostile_bytes_are_errors_not_panics() {
        // Garbage instead of chunks.
        let (mut s, _) =
            PullSession::new("live", "s", "rtmp://h/live".into(), ChunkLimits::default()).unwrap();
        let (mut out, mut ev) = (Vec::new(), Vec::new());
        assert!(s.handle_input(&[0xc3; 64], &mut out, &mut ev).is_err());

        // A command nested deeper than the guard allows, before playback: refused.
        let (mut s, _) =
            PullSession::new("live", "s", "rtmp://h/live".into(), ChunkLimits::default()).unwrap();
        let mut deep = vec![0x02, 0, 7];
        deep.extend_from_slice(b"_result");
        for _ in 0..500 {
            deep.extend_from_slice(&[0x03, 0, 1, b'a']);
        }
        let mut bytes = chunk(2, 1, 0, 0, 4, &4096u32.to_be_bytes()); // SetChunkSize
        bytes.extend(chunk(3, 20, 0, 0, deep.len(), &deep));
        let err = s.handle_input(&bytes, &mut out, &mut ev).unwrap_err();
        assert!(matches!(err, SessionError::BadCommand(_)), "{err}");

        // The same while playing is skipped: the stream goes on.
        let (mut s, _up, mut ev) = playing();
        s.handle_input(&chunk(3, 20, 0, 0, deep.len(), &deep), &mut out, &mut ev)
            .unwrap();
        s.handle_input(&chunk(7, 9, 0, 1, 2, &[0x17, 1]), &mut out, &mut ev)
            .unwrap();
        assert_eq!(media(&ev).len(), 1);
    }
}
