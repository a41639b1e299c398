//! What the inbound RTMP session hands the connection layer: events, the role the
//! connection took, and why the session cannot go on.

use bytes::Bytes;
use rml_rtmp::sessions::ServerSessionError;
use surge_wire::ChunkError;

use super::command_guard::CommandGuardError;
use super::session::MAX_COMMAND_LEN;
use crate::media::MediaMessage;
use crate::publish_auth::PresentedKey;

/// Why an inbound RTMP session cannot go on (the connection closes).
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
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
    #[error("request {0} is not waiting for this answer")]
    UnknownRequest(u32),
}

impl From<ServerSessionError> for InboundError {
    fn from(e: ServerSessionError) -> Self {
        InboundError::Command(format!("{e:?}"))
    }
}

/// What the session hands the connection layer, in order.
#[derive(Debug)]
pub enum InboundEvent {
    /// Write these bytes (in order).
    Send(Bytes),
    /// Audio, video or metadata of the accepted publisher.
    Media(MediaMessage),
    /// The client asks to publish `app/stream`, presenting `key` (`NAME?key=SECRET`); answer
    /// with `accept_publish` / `reject_publish`.
    PublishRequested {
        request_id: u32,
        app: String,
        stream: String,
        key: Option<PresentedKey>,
    },
    /// The client asks to play `app/stream` on message stream `stream_id`; answer with
    /// `accept_play` / `reject_play`.
    PlayRequested {
        request_id: u32,
        app: String,
        stream: String,
        stream_id: u32,
        /// The viewer's own region when a locator placed it here by overflow (`?region=R`
        /// after the stream name).
        home_region: Option<String>,
    },
    /// The accepted publisher stopped publishing (no more media follows).
    PublishFinished { app: String, stream: String },
}

/// Why a play request is refused (the onStatus code the player gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayRefusal {
    /// `NetStream.Play.StreamNotFound`.
    NotFound,
    /// `NetStream.Play.Failed`.
    Failed,
}

/// What the connection is doing, for logs and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Handshaking,
    Publishing { app: String, stream: String },
    Playing { app: String, stream: String },
}
