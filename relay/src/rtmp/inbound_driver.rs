//! The stream side of an inbound RTMP connection: answers the [`InboundSession`]'s publish and
//! play requests from the [`Registry`], holds an accepted publisher's [`PublishGuard`] and
//! puts its media into the stream's hub one message at a time. What is left for the socket
//! comes back as [`Outbound`]s for the connection's writer. A publish is first checked by
//! the relay's [`PublishAuth`] (origin only; the stream key, when a keys file is set).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use surge_wire::ChunkLimits;

use super::session::{InboundError, InboundEvent, InboundSession, PlayRefusal, Role};
use crate::hub::Subscription;
use crate::integrity::IngestSigner;
use crate::protocol::Protocol;
use crate::publish_auth::PublishAuth;
use crate::registry::{PlayError, PublishError, PublishGuard, Registry};

/// What the connection's writer must do, in order.
pub enum Outbound {
    /// Write these bytes.
    Control(Bytes),
    /// Playback accepted on this message stream id: switch the writer to the subscription.
    Play(Box<Subscription>, u32),
    /// Wait this long before writing what follows (a refusal after repeated failed publishes).
    Pause(Duration),
}

pub struct InboundDriver {
    session: InboundSession,
    registry: Arc<Registry>,
    auth: Arc<PublishAuth>,
    /// The client's address, for slowing down its repeated failed publishes.
    peer: Option<IpAddr>,
    publishing: Option<PublishGuard>,
    /// With `--sign-key`: signs the publisher's media unless it signs itself.
    signer: Option<IngestSigner>,
    /// Timestamp of the publisher's last message (for the last group's signature).
    last_timestamp: u32,
    /// Set when the connection should close once its replies are written (a play refused for
    /// lack of room: the player is told why, and this relay keeps no idle connection for it).
    finished: Option<String>,
}

impl Drop for InboundDriver {
    /// A publisher that drops its connection still gets its last group signed.
    fn drop(&mut self) {
        self.sign_last_group();
    }
}

impl InboundDriver {
    /// Returns the driver and the bytes to send first. It takes any publisher (an origin
    /// with no keys file) until [`with_publish_auth`](Self::with_publish_auth).
    pub fn new(
        registry: Arc<Registry>,
        limits: ChunkLimits,
    ) -> Result<(Self, Vec<Bytes>), InboundError> {
        let (session, initial) = InboundSession::new(limits)?;
        let driver = InboundDriver {
            session,
            registry,
            auth: Arc::new(PublishAuth::open()),
            peer: None,
            publishing: None,
            signer: None,
            last_timestamp: 0,
            finished: None,
        };
        Ok((driver, initial))
    }

    /// Publishes from `peer` are checked by `auth`.
    pub fn with_publish_auth(mut self, auth: Arc<PublishAuth>, peer: Option<IpAddr>) -> Self {
        self.auth = auth;
        self.peer = peer;
        self
    }

    pub fn role(&self) -> &Role {
        self.session.role()
    }

    /// Why the connection should close after writing the replies handed out so far; nothing
    /// the client sends after that is read.
    pub fn finished(&self) -> Option<&str> {
        self.finished.as_deref()
    }

    /// Feeds raw bytes from the socket. On an error the media that came before it is in the
    /// hub already; the replies are not sent (the connection closes).
    pub fn handle_bytes(&mut self, data: &[u8]) -> Result<Vec<Outbound>, InboundError> {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut step = self.session.handle_bytes(data, &mut events);
        loop {
            let request = self.apply(&mut events, &mut out);
            step?;
            let Some(request) = request else {
                return Ok(out);
            };
            self.answer(request, &mut out)?;
            if self.finished.is_some() {
                return Ok(out);
            }
            step = self.session.resume(&mut events);
        }
    }

    /// Signs what the leaving publisher sent since the last signature.
    fn sign_last_group(&mut self) {
        if let (Some(p), Some(s)) = (&self.publishing, self.signer.as_mut())
            && let Some(sig) = s.finish(self.last_timestamp)
        {
            p.hub().publish(sig);
        }
        self.signer = None;
    }

    /// Carries out the session's events; returns the request among them (always the last:
    /// the session reads nothing after a request until it is answered).
    fn apply(
        &mut self,
        events: &mut Vec<InboundEvent>,
        out: &mut Vec<Outbound>,
    ) -> Option<InboundEvent> {
        let mut request = None;
        for event in events.drain(..) {
            match event {
                InboundEvent::Send(b) => out.push(Outbound::Control(b)),
                InboundEvent::Media(m) => {
                    if let Some(p) = &self.publishing {
                        self.last_timestamp = m.timestamp;
                        if let Some(sig) = self.signer.as_mut().and_then(|s| s.on_media(&m)) {
                            p.hub().publish(sig);
                        }
                        p.hub().publish(m);
                    }
                }
                InboundEvent::PublishFinished { app, stream } => {
                    self.sign_last_group();
                    if self.publishing.take().is_some() {
                        tracing::info!(app = %app, stream = %stream, "publisher finished");
                    }
                }
                r
                @ (InboundEvent::PublishRequested { .. } | InboundEvent::PlayRequested { .. }) => {
                    request = Some(r)
                }
            }
        }
        request
    }

    fn answer(
        &mut self,
        request: InboundEvent,
        out: &mut Vec<Outbound>,
    ) -> Result<(), InboundError> {
        let replies = match request {
            InboundEvent::PublishRequested {
                request_id,
                app,
                stream,
                key,
            } => {
                if let Err(refusal) = self.auth.check(self.peer, key.as_ref(), Instant::now()) {
                    // Logged and counted by reason only: the key is never written anywhere.
                    let reason = refusal.reason.label();
                    self.registry.metrics().publish_refused(reason);
                    tracing::warn!(
                        app = %app,
                        stream = %stream,
                        reason,
                        delay_ms = refusal.delay.as_millis() as u64,
                        "publish refused: {}",
                        refusal.description
                    );
                    self.finished = Some(format!("publish of {app}/{stream} refused ({reason})"));
                    if !refusal.delay.is_zero() {
                        out.push(Outbound::Pause(refusal.delay));
                    }
                    self.session
                        .reject_publish(request_id, &refusal.description)?
                } else {
                    match self.registry.start_publish(&app, &stream) {
                        Ok(guard) => {
                            self.publishing = Some(guard);
                            self.signer = self
                                .registry
                                .integrity()
                                .and_then(|k| k.sign.clone())
                                .map(IngestSigner::new);
                            tracing::info!(app = %app, stream = %stream, "publisher started");
                            self.session.accept_publish(request_id)?
                        }
                        Err(e) => {
                            let reason = match e {
                                PublishError::ShuttingDown => "draining",
                                _ => "in_use",
                            };
                            self.registry.metrics().publish_refused(reason);
                            tracing::warn!(app = %app, stream = %stream, reason = %e, "publish rejected");
                            self.session.reject_publish(request_id, &e.to_string())?
                        }
                    }
                }
            }
            InboundEvent::PlayRequested {
                request_id,
                app,
                stream,
                stream_id,
                home_region,
            } => match self.registry.subscribe_from(
                &app,
                &stream,
                Protocol::Rtmp,
                home_region.as_deref(),
            ) {
                Ok(sub) => {
                    let replies = self.session.accept_play(request_id)?;
                    out.extend(replies.into_iter().map(Outbound::Control));
                    out.push(Outbound::Play(Box::new(sub), stream_id));
                    return Ok(());
                }
                Err(e) => {
                    let refusal = match e {
                        PlayError::NotFound(..) => PlayRefusal::NotFound,
                        _ => PlayRefusal::Failed,
                    };
                    tracing::info!(app = %app, stream = %stream, reason = %e, "play rejected");
                    if e.refusal_reason().is_some() {
                        self.finished = Some(format!("play of {app}/{stream} refused: {e}"));
                    }
                    self.session
                        .reject_play(request_id, refusal, &e.to_string())?
                }
            },
            _ => Vec::new(),
        };
        out.extend(replies.into_iter().map(Outbound::Control));
        Ok(())
    }
}

#[cfg(test)]
#[path = "inbound_driver_tests.rs"]
mod tests;
