//! Sans-IO inbound RTMP session. Raw bytes go through our bounded [`ChunkReader`]; only
//! complete command messages, re-chunked as one big type-0 chunk each, reach rml_rtmp's
//! `ServerSession` (guarded against its failures and panics).
//!
//! The session knows no registry and no hub: it returns [`InboundEvent`]s (bytes to send, an
//! accepted publisher's media, publish and play requests) and the connection layer answers
//! each request with `accept_*` / `reject_*`. Until a request is answered the session reads
//! no further message, so whatever the client sent after its publish or play is handled as
//! the answer says (then [`resume`](InboundSession::resume) goes on).

use std::panic::{AssertUnwindSafe, catch_unwind};

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
use surge_wire::{AckCounter, ChunkLimits, ChunkReader, RawMessage};

use super::command_guard::check_command;
pub use super::inbound_event::{InboundError, InboundEvent, PlayRefusal, Role};
use super::messages;
use crate::media::{MediaKind, MediaMessage};
use crate::placement::overflow_viewers::home_region;

/// Chunk size of the re-chunked command stream fed to rml_rtmp: one chunk per message.
const REFRAME_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Commands are small; a larger one is refused before any AMF decoding.
pub(super) const MAX_COMMAND_LEN: usize = 64 * 1024;

/// A publish or play request the connection layer has not answered yet, or has answered
/// while what came after it is still held back.
struct PendingRequest {
    request_id: u32,
    /// The role the connection takes if the request is accepted.
    role: Role,
    answered: bool,
    /// Library results that came after the request, handled once it is answered.
    rest: Vec<ServerSessionResult>,
}

pub struct InboundSession {
    reader: ChunkReader,
    session: ServerSession,
    reframer: ChunkSerializer,
    /// An accepted publisher that has not finished: its media goes out as events.
    publishing: bool,
    role: Role,
    acks: AckCounter,
    /// Bytes received but not yet counted for acknowledgements (counted once handled).
    uncounted: usize,
    /// Message stream id of the command being handled (where its onStatus goes).
    command_stream_id: u32,
    /// Boxed: most of the time there is none, and every connection holds a session.
    pending: Option<Box<PendingRequest>>,
}

impl InboundSession {
    /// Returns the session and the bytes to send first.
    pub fn new(limits: ChunkLimits) -> Result<(Self, Vec<Bytes>), InboundError> {
        let (mut session, initial) = ServerSession::new(ServerSessionConfig::new())?;
        let mut reframer = ChunkSerializer::new();
        let chunk_size_packet = reframer
            .set_max_chunk_size(REFRAME_CHUNK_SIZE, RtmpTimestamp::new(0))
            .map_err(|e| InboundError::Command(format!("{e:?}")))?;
        // Tell the library's deserializer about the big chunk size; it produces no output.
        session.handle_input(&chunk_size_packet.bytes)?;
        Ok((
            InboundSession {
                reader: ChunkReader::new(limits),
                session,
                reframer,
                publishing: false,
                role: Role::Handshaking,
                acks: AckCounter::default(),
                uncounted: 0,
                command_stream_id: 0,
                pending: None,
            },
            responses(initial),
        ))
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Feeds raw bytes from the socket; events go to `out`. While a request waits for its
    /// answer the bytes are only buffered.
    pub fn handle_bytes(
        &mut self,
        data: &[u8],
        out: &mut Vec<InboundEvent>,
    ) -> Result<(), InboundError> {
        self.reader.push(data);
        self.uncounted += data.len();
        self.resume(out)
    }

    /// After an answer: handles what the client sent after the request, up to the next
    /// request or the end of the buffered bytes.
    pub fn resume(&mut self, out: &mut Vec<InboundEvent>) -> Result<(), InboundError> {
        loop {
            match self.pending.take() {
                Some(p) if p.answered => {
                    self.handle_results(p.rest, out)?;
                    continue;
                }
                Some(p) => {
                    self.pending = Some(p);
                    return Ok(());
                }
                None => {}
            }
            match self.reader.next_message()? {
                Some(msg) => self.handle_message(msg, out)?,
                None => break,
            }
        }
        if self.uncounted > 0
            && let Some(seq) = self.acks.on_bytes(std::mem::take(&mut self.uncounted))
        {
            let ack = surge_wire::message::acknowledgement(seq);
            out.push(InboundEvent::Send(Bytes::from(ack)));
        }
        Ok(())
    }

    fn handle_message(
        &mut self,
        msg: RawMessage,
        out: &mut Vec<InboundEvent>,
    ) -> Result<(), InboundError> {
        match msg.type_id {
            MSG_AUDIO | MSG_VIDEO => {
                let kind = if msg.type_id == MSG_AUDIO {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                if self.publishing && !msg.payload.is_empty() {
                    let m = MediaMessage::new(kind, msg.timestamp, msg.payload);
                    out.push(InboundEvent::Media(m));
                }
                Ok(())
            }
            MSG_AMF0_DATA | MSG_AMF3_DATA => {
                let payload = if msg.type_id == MSG_AMF3_DATA {
                    msg.payload.slice(1.min(msg.payload.len())..)
                } else {
                    msg.payload
                };
                if self.publishing
                    && let Some(body) = metadata_body(&payload)
                {
                    let m = MediaMessage::new(MediaKind::Data, 0, body);
                    out.push(InboundEvent::Media(m));
                } else if self.publishing && surge_integrity::is_signature(&payload) {
                    // A publisher that signs its frames: its signatures go on with their place
                    // in the stream.
                    let m = MediaMessage::new(MediaKind::Data, msg.timestamp, payload);
                    out.push(InboundEvent::Media(m));
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
                out,
            ),
            MSG_AMF3_COMMAND => {
                // AMF3 command messages carry an AMF0 body after one format byte.
                let body = msg.payload.slice(1.min(msg.payload.len())..);
                self.forward(
                    MSG_AMF0_COMMAND,
                    msg.message_stream_id,
                    msg.timestamp,
                    body,
                    out,
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
        out: &mut Vec<InboundEvent>,
    ) -> Result<(), InboundError> {
        if data.len() > MAX_COMMAND_LEN {
            return Err(InboundError::CommandTooLong(data.len()));
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
            .map_err(|e| InboundError::Command(format!("{e:?}")))?;
        let results = self.guarded(|s| s.handle_input(&packet.bytes))?;
        self.handle_results(results, out)
    }

    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut ServerSession) -> Result<T, ServerSessionError>,
    ) -> Result<T, InboundError> {
        let session = &mut self.session;
        Ok(catch_unwind(AssertUnwindSafe(|| f(session)))
            .map_err(|_| InboundError::LibraryPanic)??)
    }

    /// Handles the library's results in order; stops at a request, keeping the rest for
    /// after its answer.
    fn handle_results(
        &mut self,
        results: Vec<ServerSessionResult>,
        out: &mut Vec<InboundEvent>,
    ) -> Result<(), InboundError> {
        let mut results = results.into_iter();
        while let Some(r) = results.next() {
            match r {
                ServerSessionResult::OutboundResponse(p) => {
                    out.push(InboundEvent::Send(Bytes::from(p.bytes)))
                }
                ServerSessionResult::RaisedEvent(e) => {
                    self.handle_event(e, out)?;
                    if let Some(p) = &mut self.pending {
                        p.rest = results.collect();
                        return Ok(());
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn accept(&mut self, request_id: u32, out: &mut Vec<InboundEvent>) -> Result<(), InboundError> {
        let results = self.guarded(|s| s.accept_request(request_id))?;
        self.handle_results(results, out)
    }

    /// Asks the connection layer, and holds everything after the request until answered.
    fn request(
        &mut self,
        request_id: u32,
        role: Role,
        event: InboundEvent,
        out: &mut Vec<InboundEvent>,
    ) {
        self.pending = Some(Box::new(PendingRequest {
            request_id,
            role,
            answered: false,
            rest: Vec::new(),
        }));
        out.push(event);
    }

    fn handle_event(
        &mut self,
        event: ServerSessionEvent,
        out: &mut Vec<InboundEvent>,
    ) -> Result<(), InboundError> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                tracing::debug!(app = %app_name, "connect");
                self.accept(request_id, out)
            }
            ServerSessionEvent::ReleaseStreamRequested { request_id, .. } => {
                self.accept(request_id, out)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => {
                if self.role != Role::Handshaking {
                    return self.refuse_second(request_id, "NetStream.Publish.BadConnection", out);
                }
                // `NAME?key=SECRET`: the stream is NAME alone, the key goes to the check.
                let stream = messages::stream_name(&stream_key).to_string();
                let key = crate::publish_auth::key_param(&stream_key);
                let role = Role::Publishing {
                    app: app_name.clone(),
                    stream: stream.clone(),
                };
                let event = InboundEvent::PublishRequested {
                    request_id,
                    app: app_name,
                    stream,
                    key,
                };
                self.request(request_id, role, event, out);
                Ok(())
            }
            ServerSessionEvent::PublishStreamFinished {
                app_name,
                stream_key,
            } => {
                if std::mem::take(&mut self.publishing) {
                    out.push(InboundEvent::PublishFinished {
                        app: app_name,
                        stream: messages::stream_name(&stream_key).to_string(),
                    });
                }
                Ok(())
            }
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                app_name,
                stream_key,
                stream_id,
                ..
            } => {
                if self.role != Role::Handshaking {
                    return self.refuse_second(request_id, "NetStream.Play.Failed", out);
                }
                let stream = messages::stream_name(&stream_key).to_string();
                let role = Role::Playing {
                    app: app_name.clone(),
                    stream: stream.clone(),
                };
                let home_region = stream_key
                    .split_once('?')
                    .and_then(|(_, query)| home_region(query))
                    .map(str::to_string);
                let event = InboundEvent::PlayRequested {
                    request_id,
                    app: app_name,
                    stream,
                    stream_id,
                    home_region,
                };
                self.request(request_id, role, event, out);
                Ok(())
            }
            ServerSessionEvent::PlayStreamFinished { .. } => Err(InboundError::PlayClosed),
            _ => Ok(()),
        }
    }

    /// A connection publishes or plays one stream; a second publish or play is refused here.
    fn refuse_second(
        &mut self,
        request_id: u32,
        code: &str,
        out: &mut Vec<InboundEvent>,
    ) -> Result<(), InboundError> {
        let replies = self.reject(
            request_id,
            code,
            "this connection is already publishing or playing",
        )?;
        out.extend(replies.into_iter().map(InboundEvent::Send));
        Ok(())
    }
}

/// The bytes among the library's results (answers to an accepted or refused request carry
/// nothing else).
fn responses(results: Vec<ServerSessionResult>) -> Vec<Bytes> {
    results
        .into_iter()
        .filter_map(|r| match r {
            ServerSessionResult::OutboundResponse(p) => Some(Bytes::from(p.bytes)),
            _ => None,
        })
        .collect()
}

#[path = "session_answers.rs"]
mod answers;
#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
