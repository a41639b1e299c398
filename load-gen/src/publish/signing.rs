//! `surge-load publish --sign-key`: signs at the source, as a broadcaster holding the
//! Stream's key would. Each message is hashed as the relays will hold it (metadata without
//! its `@setDataFrame` prefix) and a `@surgeSignature` data message is sent before each
//! new group (see `surge-integrity`).

use std::sync::Arc;

use surge_integrity::{FrameKind, GroupSigner, SigningKey};
use surge_wire::message::{MSG_AUDIO, MSG_VIDEO};
use surge_wire::metadata::SET_DATA_FRAME;

/// One publish session's signer (a new session, so a new signer session id, per connection).
pub struct SessionSigner {
    signer: GroupSigner,
}

impl SessionSigner {
    pub fn new(key: Arc<SigningKey>) -> Self {
        SessionSigner {
            signer: GroupSigner::new(key),
        }
    }

    /// The `@setDataFrame onMetaData` payload about to be sent; returns a signature message
    /// to send before it.
    pub fn metadata(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let body = payload.strip_prefix(SET_DATA_FRAME).unwrap_or(payload);
        // Relays stamp metadata 0, as it is sent here.
        self.signer.on_frame(FrameKind::Metadata, 0, body)
    }

    /// An audio or video message about to be sent; returns a signature message to send
    /// before it (other types are not signed).
    pub fn media(&mut self, type_id: u8, timestamp: u32, payload: &[u8]) -> Option<Vec<u8>> {
        let kind = match type_id {
            MSG_AUDIO => FrameKind::Audio,
            MSG_VIDEO => FrameKind::Video,
            _ => return None,
        };
        self.signer.on_frame(kind, timestamp, payload)
    }

    /// The signature of the frames sent since the last one (at the end of the session).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        self.signer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use surge_integrity::{KeyRing, Tally, Verifier};

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIFjfaxQn836f1im3Oe6zm0hPpqIbt6rX9bWLG59C0e7\n-----END PRIVATE KEY-----\n";

    #[test]
    fn what_relays_pass_on_verifies() {
        let key = Arc::new(SigningKey::from_pem(KEY.as_bytes()).expect("key"));
        let mut s = SessionSigner::new(key.clone());
        // (kind, timestamp, payload as the relay holds it), signatures in between.
        let mut relayed: Vec<(FrameKind, u32, Vec<u8>)> = Vec::new();
        let put = |sig: Option<Vec<u8>>, relayed: &mut Vec<_>| {
            if let Some(sig) = sig {
                relayed.push((FrameKind::Metadata, 0, sig));
            }
        };
        let mut meta = SET_DATA_FRAME.to_vec();
        meta.extend_from_slice(b"\x02\x00\x0aonMetaData\x03\x00\x00\x09");
        put(s.metadata(&meta), &mut relayed);
        relayed.push((
            FrameKind::Metadata,
            0,
            meta[SET_DATA_FRAME.len()..].to_vec(),
        ));
        for i in 0..90u32 {
            let first = if i % 30 == 0 { 0x17 } else { 0x27 };
            let payload = vec![first, 1, 0, 0, 0, i as u8, 7, 7];
            put(s.media(MSG_VIDEO, i * 33, &payload), &mut relayed);
            relayed.push((FrameKind::Video, i * 33, payload));
        }
        put(s.finish(), &mut relayed);
        let mut v = Verifier::new(KeyRing::new(vec![key.public_key()]));
        let mut t = Tally::default();
        for (kind, ts, p) in &relayed {
            if let Some(verdict) = v.on_message(*kind, *ts, p) {
                t.add(&verdict);
            }
        }
        assert_eq!((t.verified, t.failed, t.unverified), (91, 0, 0));
    }
}
