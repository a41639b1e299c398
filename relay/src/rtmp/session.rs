//! Sans-IO inbound RTMP session. Raw bytes go through our bounded [`ChunkReader`]; audio and
//! video go straight to the hub; only complete command messages, re-chunked as one big type-0
//! chunk each, reach rml_rtmp's `ServerSession` (guarded against its failures and panics).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent, ServerSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;

use surge_wire::message::{
    MSG_ACK, MSG_AMF0_COMMAND, MSG_AMF0_DATA, MSG_AMF3_COMMAND, MSG_AMF3_DATA, MSG_AUDIO,
    MSG_SET_PEER_BANDWIDTH, MSG_USER_CONTROL, MSG_VIDEO, MSG_WINDOW_ACK_SIZE,
};
use surge_wire::metadata::metadata_body;
use surge_wire::{AckCounter, ChunkError, ChunkLimits, ChunkReader, RawMessage};

use super::command_guard::{CommandGuardError, check_command};
use super::messages;
use crate::hub::Subscription;
use crate::media::{MediaKind, MediaMessage};
use crate::protocol::Protocol;
use crate::registry::{PlayError, PublishGuard, Registry};

/// rml_rtmp sends AMF0 data messages (type 18) on chunk stream 3.
const DATA_CHUNK_STREAM: u8 = 3;
/// Chunk size of the re-chunked command stream fed to rml_rtmp: one chunk per message.
const REFRAME_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Commands are small; a larger one is refused before any AMF decoding.
const MAX_COMMAND_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("chunk stream error: {0}")]
    Chunk(#[from] ChunkError),
    #[error("command rejected by the RTMP session: {0}")]
    Command(String),
    #[error("command message of {0} bytes exceeds {MAX_COMMAND_LEN}")]
    CommandTooLong(usize),
    #[error("command refused before decoding: {0}")]
    BadCommand(#[from] CommandGuardError),
    #[error("RTMP session library panicked on a command")]
    LibraryPanic,
    #[error("client closed its play stream")]
    PlayClosed,
}

impl From<ServerSessionError> for SessionError {
    fn from(e: ServerSessionError) -> Self {
        SessionError::Command(format!("{e:?}"))
    }
}

/// What the IO side must do.
pub enum Action {
    /// Write these bytes (in order).
    Send(Bytes),
    /// Playback accepted on this message stream id: switch the writer to the subscription.
    Play(Box<Subscription>, u32),
}

/// What the connection is doing, for logs and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Handshaking,
    Publishing { app: String, stream: String },
    Playing { app: String, stream: String },
}

pub struct InboundSession {
    reader: ChunkReader,
    session: ServerSession,
    reframer: ChunkSerializer,
    registry: Arc<Registry>,
    publishing: Option<PublishGuard>,
    role: Role,
    acks: AckCounter,
    /// Message stream id of the command being handled (where its onStatus goes).
    command_stream_id: u32,
}

impl InboundSession {
    /// Returns the session and the bytes to send first.
    pub fn new(
        registry: Arc<Registry>,
        limits: ChunkLimits,
    ) -> Result<(Self, Vec<Bytes>), SessionError> {
        let (mut session, initial) = ServerSession::new(ServerSessionConfig::new())?;
        let mut reframer = ChunkSerializer::new();
        let chunk_size_packet = reframer
            .set_max_chunk_size(REFRAME_CHUNK_SIZE, RtmpTimestamp::new(0))
            .map_err(|e| SessionError::Command(format!("{e:?}")))?;
        // Tell the library's deserializer about the big chunk size; it produces no output.
        session.handle_input(&chunk_size_packet.bytes)?;
        let out = initial
            .into_iter()
            .filter_map(|r| match r {
                ServerSessionResult::OutboundResponse(p) => Some(Bytes::from(p.bytes)),
                _ => None,
            })
            .collect();
        Ok((
            InboundSession {
                reader: ChunkReader::new(limits),
                session,
                reframer,
                registry,
                publishing: None,
                role: Role::Handshaking,
                acks: AckCounter::default(),
                command_stream_id: 0,
            },
            out,
        ))
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Feeds raw bytes from the socket.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Result<Vec<Action>, SessionError> {
        let mut actions = Vec::new();
        self.reader.push(data);
        while let Some(msg) = self.reader.next_message()? {
            self.handle_message(msg, &mut actions)?;
        }
        self.count_received(data.len(), &mut actions);
        Ok(actions)
    }

    fn count_received(&mut self, n: usize, actions: &mut Vec<Action>) {
        if let Some(seq) = self.acks.on_bytes(n) {
            let ack = surge_wire::message::acknowledgement(seq);
            actions.push(Action::Send(Bytes::from(ack)));
        }
    }

    fn handle_message(
        &mut self,
        msg: RawMessage,
        actions: &mut Vec<Action>,
    ) -> Result<(), SessionError> {
        match msg.type_id {
            MSG_AUDIO | MSG_VIDEO => {
                let kind = if msg.type_id == MSG_AUDIO {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                if let Some(p) = &self.publishing
                    && !msg.payload.is_empty()
                {
                    p.hub()
                        .publish(MediaMessage::new(kind, msg.timestamp, msg.payload));
                }
                Ok(())
            }
            MSG_AMF0_DATA | MSG_AMF3_DATA => {
                let payload = if msg.type_id == MSG_AMF3_DATA {
                    msg.payload.slice(1.min(msg.payload.len())..)
                } else {
                    msg.payload
                };
                if let Some(p) = &self.publishing
                    && let Some(body) = metadata_body(&payload)
                {
                    p.hub().publish(MediaMessage::new(MediaKind::Data, 0, body));
                }
                Ok(())
            }
            MSG_WINDOW_ACK_SIZE => {
                self.acks.on_window_ack_size(&msg.payload);
                Ok(())
            }
            MSG_ACK | MSG_USER_CONTROL | MSG_SET_PEER_BANDWIDTH | MSG_AMF0_COMMAND => self.forward(
                msg.type_id,
                msg.message_stream_id,
                msg.timestamp,
                msg.payload,
                actions,
            ),
            MSG_AMF3_COMMAND => {
                // AMF3 command messages carry an AMF0 body after one format byte.
                let body = msg.payload.slice(1.min(msg.payload.len())..);
                self.forward(
                    MSG_AMF0_COMMAND,
                    msg.message_stream_id,
                    msg.timestamp,
                    body,
                    actions,
                )
            }
            other => {
                tracing::debug!(type_id = other, "ignoring RTMP message type");
                Ok(())
            }
        }
    }

    fn forward(
        &mut self,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        data: Bytes,
        actions: &mut Vec<Action>,
    ) -> Result<(), SessionError> {
        if data.len() > MAX_COMMAND_LEN {
            return Err(SessionError::CommandTooLong(data.len()));
        }
        if type_id == MSG_AMF0_COMMAND {
            check_command(&data)?;
        }
        self.command_stream_id = stream_id;
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(timestamp),
            type_id,
            message_stream_id: stream_id,
            data,
        };
        let packet = self
            .reframer
            .serialize(&payload, true, false)
            .map_err(|e| SessionError::Command(format!("{e:?}")))?;
        let session = &mut self.session;
        let results = catch_unwind(AssertUnwindSafe(|| session.handle_input(&packet.bytes)))
            .map_err(|_| SessionError::LibraryPanic)??;
        self.handle_results(results, actions)
    }

    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut ServerSession) -> Result<T, ServerSessionError>,
    ) -> Result<T, SessionError> {
        let session = &mut self.session;
        Ok(catch_unwind(AssertUnwindSafe(|| f(session)))
            .map_err(|_| SessionError::LibraryPanic)??)
    }

    fn handle_results(
        &mut self,
        results: Vec<ServerSessionResult>,
        actions: &mut Vec<Action>,
    ) -> Result<(), SessionError> {
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => {
                    actions.push(Action::Send(Bytes::from(p.bytes)))
                }
                ServerSessionResult::RaisedEvent(e) => self.handle_event(e, actions)?,
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn accept(&mut self, request_id: u32, actions: &mut Vec<Action>) -> Result<(), SessionError> {
        let results = self.guarded(|s| s.accept_request(request_id))?;
        self.handle_results(results, actions)
    }

    fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        description: &str,
        actions: &mut Vec<Action>,
    ) -> Result<(), SessionError> {
        // rml_rtmp answers with `_error`; players and encoders expect an error onStatus on the
        // stream, so drop the library's packet (it only clears the request) and send our own.
        self.guarded(|s| s.reject_request(request_id, code, description))?;
        if let Some(p) = messages::on_status(self.command_stream_id, "error", code, description) {
            actions.push(Action::Send(p));
        }
        Ok(())
    }

    fn handle_event(
        &mut self,
        event: ServerSessionEvent,
        actions: &mut Vec<Action>,
    ) -> Result<(), SessionError> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                tracing::debug!(app = %app_name, "connect");
                self.accept(request_id, actions)
            }
            ServerSessionEvent::ReleaseStreamRequested { request_id, .. } => {
                self.accept(request_id, actions)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => self.on_publish(request_id, app_name, stream_key, actions),
            ServerSessionEvent::PublishStreamFinished {
                app_name,
                stream_key,
            } => {
                if self.publishing.take().is_some() {
                    tracing::info!(app = %app_name, stream = %messages::stream_name(&stream_key), "publisher finished");
                }
                Ok(())
            }
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                app_name,
                stream_key,
                stream_id,
                ..
            } => self.on_play(request_id, app_name, stream_key, stream_id, actions),
            ServerSessionEvent::PlayStreamFinished { .. } => Err(SessionError::PlayClosed),
            _ => Ok(()),
        }
    }

    fn on_publish(
        &mut self,
        request_id: u32,
        app: String,
        key: String,
        actions: &mut Vec<Action>,
    ) -> Result<(), SessionError> {
        let name = messages::stream_name(&key).to_string();
        if self.role != Role::Handshaking {
            return self.reject(
                request_id,
                "NetStream.Publish.BadConnection",
                "this connection is already publishing or playing",
                actions,
            );
        }
        match self.registry.start_publish(&app, &name) {
            Ok(guard) => {
                self.publishing = Some(guard);
                self.role = Role::Publishing {
                    app: app.clone(),
                    stream: name.clone(),
                };
                tracing::info!(app = %app, stream = %name, "publisher started");
                self.accept(request_id, actions)
            }
            Err(e) => {
                tracing::warn!(app = %app, stream = %name, reason = %e, "publish rejected");
                self.reject(
                    request_id,
                    "NetStream.Publish.BadName",
                    &e.to_string(),
                    actions,
                )
            }
        }
    }

    fn on_play(
        &mut self,
        request_id: u32,
        app: String,
        key: String,
        stream_id: u32,
        actions: &mut Vec<Action>,
    ) -> Result<(), SessionError> {
        let name = messages::stream_name(&key).to_string();
        if self.role != Role::Handshaking {
            return self.reject(
                request_id,
                "NetStream.Play.Failed",
                "this connection is already publishing or playing",
                actions,
            );
        }
        match self.registry.subscribe(&app, &name, Protocol::Rtmp) {
            Ok(sub) => {
                self.role = Role::Playing {
                    app: app.clone(),
                    stream: name.clone(),
                };
                let results = self.guarded(|s| s.accept_request(request_id))?;
                // rml_rtmp also sends `|RtmpSampleAccess` and `onStatus(NetStream.Data.Start)`
                // as data messages; ffmpeg-based players turn those into extra "data" streams.
                // They are the only packets on the data chunk stream at this point, so dropping
                // them leaves the library's header compression intact for everything else.
                let results = results
                    .into_iter()
                    .filter(|r| {
                        !matches!(r, ServerSessionResult::OutboundResponse(p)
                            if p.bytes.first().map(|b| b & 0x3f) == Some(DATA_CHUNK_STREAM))
                    })
                    .collect();
                self.handle_results(results, actions)?;
                actions.push(Action::Play(Box::new(sub), stream_id));
                Ok(())
            }
            Err(e) => {
                let code = match e {
                    PlayError::NotFound(..) => "NetStream.Play.StreamNotFound",
                    _ => "NetStream.Play.Failed",
                };
                tracing::info!(app = %app, stream = %name, reason = %e, "play rejected");
                self.reject(request_id, code, &e.to_string(), actions)
            }
        }
    }
}
