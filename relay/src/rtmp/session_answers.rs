//! The connection layer's answers to the session's publish and play requests: accept or
//! refuse (with the onStatus code players and encoders expect), then `resume`.

use bytes::Bytes;
use rml_rtmp::sessions::ServerSessionResult;

use super::{InboundError, InboundSession, PlayRefusal, Role, messages, responses};

/// rml_rtmp sends AMF0 data messages (type 18) on chunk stream 3.
pub(super) const DATA_CHUNK_STREAM: u8 = 3;

impl InboundSession {
    /// Accepts the publish request; returns the replies to send.
    pub fn accept_publish(&mut self, request_id: u32) -> Result<Vec<Bytes>, InboundError> {
        let role = self.answer(request_id, |r| matches!(r, Role::Publishing { .. }))?;
        self.role = role;
        self.publishing = true;
        Ok(responses(self.guarded(|s| s.accept_request(request_id))?))
    }

    /// Refuses the publish request (`NetStream.Publish.BadName`); returns the reply to send.
    pub fn reject_publish(
        &mut self,
        request_id: u32,
        description: &str,
    ) -> Result<Vec<Bytes>, InboundError> {
        self.answer(request_id, |r| matches!(r, Role::Publishing { .. }))?;
        self.reject(request_id, "NetStream.Publish.BadName", description)
    }

    /// Accepts the play request; returns the replies to send, after which the player's media
    /// may follow.
    pub fn accept_play(&mut self, request_id: u32) -> Result<Vec<Bytes>, InboundError> {
        let role = self.answer(request_id, |r| matches!(r, Role::Playing { .. }))?;
        self.role = role;
        let results = self.guarded(|s| s.accept_request(request_id))?;
        // rml_rtmp also sends `|RtmpSampleAccess` and `onStatus(NetStream.Data.Start)` as data
        // messages; ffmpeg-based players turn those into extra "data" streams. They are the
        // only packets on the data chunk stream at this point, so dropping them leaves the
        // library's header compression intact for everything else.
        let results = results
            .into_iter()
            .filter(|r| {
                !matches!(r, ServerSessionResult::OutboundResponse(p)
                    if p.bytes.first().map(|b| b & 0x3f) == Some(DATA_CHUNK_STREAM))
            })
            .collect();
        Ok(responses(results))
    }

    /// Refuses the play request; returns the reply to send.
    pub fn reject_play(
        &mut self,
        request_id: u32,
        refusal: PlayRefusal,
        description: &str,
    ) -> Result<Vec<Bytes>, InboundError> {
        self.answer(request_id, |r| matches!(r, Role::Playing { .. }))?;
        let code = match refusal {
            PlayRefusal::NotFound => "NetStream.Play.StreamNotFound",
            PlayRefusal::Failed => "NetStream.Play.Failed",
        };
        self.reject(request_id, code, description)
    }

    /// Marks the pending request answered; returns the role it would give the connection.
    fn answer(&mut self, request_id: u32, kind: fn(&Role) -> bool) -> Result<Role, InboundError> {
        match &mut self.pending {
            Some(p) if !p.answered && p.request_id == request_id && kind(&p.role) => {
                p.answered = true;
                Ok(std::mem::replace(&mut p.role, Role::Handshaking))
            }
            _ => Err(InboundError::UnknownRequest(request_id)),
        }
    }

    /// Refuses the request with an error onStatus `code` on the command's stream.
    pub(super) fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        description: &str,
    ) -> Result<Vec<Bytes>, InboundError> {
        // rml_rtmp answers with `_error`; players and encoders expect an error onStatus on the
        // stream, so drop the library's packet (it only clears the request) and send our own.
        self.guarded(|s| s.reject_request(request_id, code, description))?;
        let status = messages::on_status(self.command_stream_id, "error", code, description);
        Ok(status.into_iter().collect())
    }
}
