//! Signs a stream group by group: each frame's leaf (type + payload hash) and timestamp go
//! into the current group; a signature message covering the group is emitted just before the
//! next video keyframe (so a cache that starts at a keyframe never holds a half group's
//! signature), or when the group reaches [`MAX_GROUP_FRAMES`] or [`MAX_GROUP_MS`].

use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};

use crate::keys::SigningKey;
use crate::message::{self, FrameKind, Leaf, MAX_GROUP_FRAMES, SignedFrame};

/// A group is signed at the latest after this much media time (audio-only streams, long GOPs).
pub const MAX_GROUP_MS: u32 = 4_000;

pub struct GroupSigner {
    key: Arc<SigningKey>,
    session: u64,
    seq: u64,
    group: Vec<SignedFrame>,
    group_has_media: bool,
    /// Current decoder configuration: metadata, video and audio sequence headers.
    config: [Option<Leaf>; 3],
    clock: fn() -> u64,
}

pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn random_session() -> u64 {
    let mut b = [0u8; 8];
    // Only fails without an OS random source; a clock-derived id then still separates sessions.
    if SystemRandom::new().fill(&mut b).is_err() {
        return unix_ms_now();
    }
    u64::from_be_bytes(b)
}

fn config_slot(kind: FrameKind, payload: &[u8]) -> Option<usize> {
    match kind {
        FrameKind::Metadata => Some(0),
        FrameKind::Video if surge_wire::media::is_video_sequence_header(payload) => Some(1),
        FrameKind::Audio if surge_wire::media::is_audio_sequence_header(payload) => Some(2),
        _ => None,
    }
}

/// Decoder configuration (metadata, sequence headers): verifiable by leaf alone in any group.
pub fn is_config(kind: FrameKind, payload: &[u8]) -> bool {
    config_slot(kind, payload).is_some()
}

impl GroupSigner {
    pub fn new(key: Arc<SigningKey>) -> Self {
        Self::with_session(key, random_session(), unix_ms_now)
    }

    pub fn with_session(key: Arc<SigningKey>, session: u64, clock: fn() -> u64) -> Self {
        GroupSigner {
            key,
            session,
            seq: 0,
            group: Vec::new(),
            group_has_media: false,
            config: [None; 3],
            clock,
        }
    }

    /// Takes the next frame in stream order. Returns the signature message (an AMF0 data
    /// message payload) to send BEFORE this frame, when this frame starts a new group.
    pub fn on_frame(&mut self, kind: FrameKind, timestamp: u32, payload: &[u8]) -> Option<Vec<u8>> {
        let keyframe = kind == FrameKind::Video
            && surge_wire::media::is_video_keyframe(payload)
            && !surge_wire::media::is_video_sequence_header(payload);
        let too_long = self
            .group
            .first()
            .is_some_and(|f| timestamp.wrapping_sub(f.timestamp) >= MAX_GROUP_MS);
        // Configuration just before a keyframe stays in the keyframe's group.
        let out = if (keyframe && self.group_has_media)
            || too_long
            || self.group.len() >= MAX_GROUP_FRAMES
        {
            self.flush()
        } else {
            None
        };
        let leaf = message::leaf(kind, payload);
        match config_slot(kind, payload) {
            Some(slot) => self.config[slot] = Some(leaf),
            None => self.group_has_media = true,
        }
        self.group.push(SignedFrame {
            kind,
            timestamp,
            leaf,
        });
        out
    }

    /// Signs the frames taken since the last signature (none: nothing to send).
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        if self.group.is_empty() {
            return None;
        }
        const KINDS: [FrameKind; 3] = [FrameKind::Metadata, FrameKind::Video, FrameKind::Audio];
        let config: Vec<(FrameKind, Leaf)> = KINDS
            .iter()
            .zip(&self.config)
            .filter_map(|(k, l)| l.map(|l| (*k, l)))
            .collect();
        self.seq += 1;
        let mut body = message::unsigned_body(
            self.key.id(),
            self.session,
            self.seq,
            (self.clock)(),
            &config,
            &self.group,
        );
        let mut signed = Vec::with_capacity(message::DOMAIN.len() + body.len());
        signed.extend_from_slice(message::DOMAIN);
        signed.extend_from_slice(&body);
        body.extend_from_slice(&self.key.sign(&signed));
        self.group.clear();
        self.group_has_media = false;
        Some(message::wrap(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::key_a;

    #[test]
    fn signs_before_each_keyframe_and_at_the_size_bound() {
        let mut s = GroupSigner::with_session(Arc::new(key_a()), 5, || 1);
        assert!(
            s.on_frame(FrameKind::Video, 0, &[0x17, 0, 1]).is_none(),
            "seq header"
        );
        assert!(
            s.on_frame(FrameKind::Video, 0, &[0x17, 1, 1]).is_none(),
            "first keyframe after the header"
        );
        assert!(s.on_frame(FrameKind::Audio, 10, &[0xaf, 1]).is_none());
        let sig = s
            .on_frame(FrameKind::Video, 40, &[0x17, 1, 2])
            .expect("signed at keyframe");
        let m = message::decode(&sig).expect("decodes");
        assert_eq!(
            (m.session, m.seq, m.frames.len(), m.config.len()),
            (5, 1, 3, 1)
        );
        for i in 0..MAX_GROUP_FRAMES as u32 - 1 {
            assert!(
                s.on_frame(FrameKind::Audio, 41 + i % 3, &[0xaf, 1])
                    .is_none()
            );
        }
        assert!(
            s.on_frame(FrameKind::Audio, 50, &[0xaf, 1]).is_some(),
            "size bound"
        );
        assert!(
            s.on_frame(FrameKind::Audio, 50 + MAX_GROUP_MS, &[0xaf, 1])
                .is_some(),
            "time bound"
        );
        assert!(s.flush().is_some());
        assert!(s.flush().is_none());
    }
}
