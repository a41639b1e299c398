//! Checks a stream as it arrives, without holding any frame back: each frame's leaf is kept
//! (a few bytes) until the signature message of its group arrives, then every kept frame must
//! be covered by it, in order, with the same timing relative to the group.
//!
//! Frames may legitimately be missing (a viewer joined mid-group, a slow viewer skipped to the
//! next keyframe, a relay dropped frames it had already delivered after a failover), so the
//! match is "in the signed list, in order", not "exactly the signed list". Decoder
//! configuration (metadata, sequence headers) that caches and failovers repeat out of place is
//! matched against the configuration each signature carries. A relay that shifted the whole
//! timeline (a rebase after failover) keeps relative timing, which is what is checked.

use std::collections::VecDeque;

use crate::keys::{KeyId, KeyRing};
use crate::message::{self, FrameKind, Leaf, MAX_GROUP_FRAMES, MessageError, SignatureMessage};
use crate::signer::{MAX_GROUP_MS, is_config};

/// Why frames failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailReason {
    #[error("malformed signature message: {0}")]
    Malformed(MessageError),
    #[error("signed by key {0}, which is not trusted")]
    UnknownKey(KeyId),
    #[error("signature does not verify")]
    BadSignature,
    #[error("signature replayed or out of order (session {session:x}, seq {seq})")]
    Replayed { session: u64, seq: u64 },
    #[error("{kind:?} frame at {timestamp} ms is not in its group's signature")]
    NotSigned { kind: FrameKind, timestamp: u32 },
    #[error("{kind:?} frame at {timestamp} ms is signed with other timing")]
    Timing { kind: FrameKind, timestamp: u32 },
    #[error("no signature for {frames} frames / {ms} ms")]
    MissingSignature { frames: usize, ms: u32 },
}

impl FailReason {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            FailReason::Malformed(_) => "malformed",
            FailReason::UnknownKey(_) => "unknown_key",
            FailReason::BadSignature => "bad_signature",
            FailReason::Replayed { .. } => "replayed",
            FailReason::NotSigned { .. } => "not_signed",
            FailReason::Timing { .. } => "timing",
            FailReason::MissingSignature { .. } => "missing_signature",
        }
    }
}

/// What happened to a set of frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `unverified`: frames before this group that a viewer could no longer check (it skipped
    /// ahead and missed their signature); only with [`VerifierLimits::allow_gaps`].
    Verified {
        frames: usize,
        unverified: usize,
    },
    Failed {
        reason: FailReason,
        frames: usize,
    },
    /// Left without a signature (the stream or connection ended first).
    Unverified {
        frames: usize,
    },
}

/// Running counts of frames by verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub verified: u64,
    pub failed: u64,
    pub unverified: u64,
    /// Failure events (each may cover many frames).
    pub failures: u64,
}

impl Tally {
    pub fn add(&mut self, v: &Verdict) {
        match v {
            Verdict::Verified { frames, unverified } => {
                self.verified += *frames as u64;
                self.unverified += *unverified as u64;
            }
            Verdict::Failed { frames, .. } => {
                self.failed += *frames as u64;
                self.failures += 1;
            }
            Verdict::Unverified { frames } => self.unverified += *frames as u64,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct VerifierLimits {
    /// Frames waiting for a signature beyond this count fail (signatures stripped).
    pub max_pending_frames: usize,
    /// Media time waiting for a signature beyond this fails.
    pub max_pending_ms: u32,
    /// Viewers: frames of a group whose signature never came, followed by a whole signed
    /// group, count as unverified. Relays (the default) fail them: their upstream never skips,
    /// and an attacker could drop a signature and replace the frames it covered.
    pub allow_gaps: bool,
}

impl Default for VerifierLimits {
    fn default() -> Self {
        VerifierLimits {
            max_pending_frames: 2 * MAX_GROUP_FRAMES + 64,
            max_pending_ms: 3 * MAX_GROUP_MS,
            allow_gaps: false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    kind: FrameKind,
    timestamp: u32,
    leaf: Leaf,
    config: bool,
}

#[derive(Clone, Debug)]
struct Accepted {
    session: u64,
    seq: u64,
    unix_ms: u64,
    signature: [u8; message::SIGNATURE_LEN],
}

pub struct Verifier {
    keys: KeyRing,
    limits: VerifierLimits,
    pending: VecDeque<Pending>,
    /// Timestamp of the oldest pending media frame (not configuration).
    first_media_ts: Option<u32>,
    last: Option<Accepted>,
}

/// A timestamp difference that went backwards reads as a huge u32; treat it as none.
fn forward_ms(from: u32, to: u32) -> u32 {
    let d = to.wrapping_sub(from);
    if d > u32::MAX / 2 { 0 } else { d }
}

impl Verifier {
    pub fn new(keys: KeyRing) -> Self {
        Self::with_limits(keys, VerifierLimits::default())
    }

    /// For viewers, who may skip ahead to a keyframe (see [`VerifierLimits::allow_gaps`]).
    pub fn for_viewer(keys: KeyRing) -> Self {
        Self::with_limits(
            keys,
            VerifierLimits {
                allow_gaps: true,
                ..VerifierLimits::default()
            },
        )
    }

    pub fn with_limits(keys: KeyRing, limits: VerifierLimits) -> Self {
        Verifier {
            keys,
            limits,
            pending: VecDeque::new(),
            first_media_ts: None,
            last: None,
        }
    }

    /// Frames kept until their signature arrives.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// One message of the stream, in arrival order: a signature message (an AMF0 data
    /// message starting with `@surgeSignature`) or a frame. Returns a verdict when one is due.
    pub fn on_message(
        &mut self,
        kind: FrameKind,
        timestamp: u32,
        payload: &[u8],
    ) -> Option<Verdict> {
        if kind == FrameKind::Metadata && message::is_signature(payload) {
            Some(self.on_signature(payload))
        } else {
            self.on_frame(kind, timestamp, payload)
        }
    }

    /// A frame; `Some(Failed)` when signatures have stopped coming.
    pub fn on_frame(&mut self, kind: FrameKind, timestamp: u32, payload: &[u8]) -> Option<Verdict> {
        let config = is_config(kind, payload);
        if !config && self.first_media_ts.is_none() {
            self.first_media_ts = Some(timestamp);
        }
        self.pending.push_back(Pending {
            kind,
            timestamp,
            leaf: message::leaf(kind, payload),
            config,
        });
        let ms = self
            .first_media_ts
            .map_or(0, |first| forward_ms(first, timestamp));
        if self.pending.len() > self.limits.max_pending_frames || ms > self.limits.max_pending_ms {
            let frames = self.take_pending();
            return Some(Verdict::Failed {
                reason: FailReason::MissingSignature { frames, ms },
                frames,
            });
        }
        None
    }

    /// The stream broke off (a new connection, the publisher ended): frames still waiting are
    /// counted unverified. What was accepted before still guards against replays.
    pub fn discontinuity(&mut self) -> Option<Verdict> {
        let frames = self.take_pending();
        (frames > 0).then_some(Verdict::Unverified { frames })
    }

    fn take_pending(&mut self) -> usize {
        self.first_media_ts = None;
        let n = self.pending.len();
        self.pending.clear();
        n
    }

    /// A signature message: settles every frame kept since the last one.
    pub fn on_signature(&mut self, payload: &[u8]) -> Verdict {
        let result = self.check(payload);
        let frames = self.take_pending();
        match result {
            Ok(unverified) => Verdict::Verified {
                frames: frames - unverified,
                unverified,
            },
            Err(reason) => Verdict::Failed { reason, frames },
        }
    }

    /// Ok(frames at the front left unverified).
    fn check(&mut self, payload: &[u8]) -> Result<usize, FailReason> {
        let m = message::decode(payload).map_err(FailReason::Malformed)?;
        let key = self
            .keys
            .get(m.key_id)
            .ok_or(FailReason::UnknownKey(m.key_id))?;
        if !key.verify(&m.signed_bytes, &m.signature) {
            return Err(FailReason::BadSignature);
        }
        self.check_fresh(&m)?;
        let unverified = self.match_pending(&m)?;
        self.last = Some(Accepted {
            session: m.session,
            seq: m.seq,
            unix_ms: m.unix_ms,
            signature: m.signature,
        });
        Ok(unverified)
    }

    /// Within a signer session sequence numbers only grow (the same message again is a
    /// harmless duplicate); a new session must be newer than the last accepted one.
    fn check_fresh(&self, m: &SignatureMessage) -> Result<(), FailReason> {
        let replayed = || FailReason::Replayed {
            session: m.session,
            seq: m.seq,
        };
        match &self.last {
            None => Ok(()),
            Some(l) if l.session == m.session => {
                if m.seq > l.seq || (m.seq == l.seq && m.signature == l.signature) {
                    Ok(())
                } else {
                    Err(replayed())
                }
            }
            Some(l) if m.unix_ms > l.unix_ms => Ok(()),
            Some(_) => Err(replayed()),
        }
    }

    /// Ok(frames left unverified at the front: the tail of an earlier group whose signature
    /// this verifier never got).
    fn match_pending(&self, m: &SignatureMessage) -> Result<usize, FailReason> {
        let pending: Vec<Pending> = self.pending.iter().copied().collect();
        let err = match self.match_all(m, &pending) {
            Ok(()) => return Ok(0),
            Err(e) => e,
        };
        if !self.limits.allow_gaps {
            return Err(err);
        }
        // A viewer that skipped to a keyframe (or lost a signature with the frames it covered)
        // holds the tail of a group it cannot check any more, then this group from its start.
        let Some(head) = m.frames.iter().find(|f| f.kind == FrameKind::Video) else {
            return Err(err);
        };
        let start = pending
            .iter()
            .position(|p| p.kind == FrameKind::Video && !p.config && p.leaf == head.leaf);
        match start {
            Some(j) if j > 0 && self.match_all(m, &pending[j..]).is_ok() => Ok(j),
            _ => Err(err),
        }
    }

    fn match_all(&self, m: &SignatureMessage, pending: &[Pending]) -> Result<(), FailReason> {
        // Offsets the first media frame could have (a payload repeated in a group, e.g.
        // silent audio, gives several); the group passes if one of them matches all.
        let Some(first) = pending.iter().find(|p| !p.config) else {
            return self.match_with_offset(m, pending, 0);
        };
        let mut first_err = None;
        let candidates = m
            .frames
            .iter()
            .filter(|f| f.kind == first.kind && f.leaf == first.leaf)
            .take(4);
        for f in candidates {
            let offset = first.timestamp.wrapping_sub(f.timestamp);
            match self.match_with_offset(m, pending, offset) {
                Ok(()) => return Ok(()),
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        Err(first_err.unwrap_or(FailReason::NotSigned {
            kind: first.kind,
            timestamp: first.timestamp,
        }))
    }

    fn match_with_offset(
        &self,
        m: &SignatureMessage,
        pending: &[Pending],
        offset: u32,
    ) -> Result<(), FailReason> {
        let mut cursor = 0;
        for p in pending {
            if p.config && m.config.contains(&(p.kind, p.leaf)) {
                continue;
            }
            let found = m.frames[cursor..].iter().position(|f| {
                f.kind == p.kind
                    && f.leaf == p.leaf
                    // Configuration is re-stamped by relays after a failover: leaf only.
                    && (p.config || f.timestamp.wrapping_add(offset) == p.timestamp)
            });
            match found {
                Some(i) => cursor += i + 1,
                None => {
                    let leaf_known = m
                        .frames
                        .iter()
                        .any(|f| f.kind == p.kind && f.leaf == p.leaf);
                    let (kind, timestamp) = (p.kind, p.timestamp);
                    return Err(if leaf_known {
                        FailReason::Timing { kind, timestamp }
                    } else {
                        FailReason::NotSigned { kind, timestamp }
                    });
                }
            }
        }
        Ok(())
    }
}
