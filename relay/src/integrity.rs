//! Signed frames in the relay (see `surge-integrity` and docs/SECURITY.md): the keys of
//! `--sign-key` and `--verify-key`, and the glue between [`MediaMessage`]s and the signer and
//! verifier. The origin signs what a publisher sends when the publisher does not sign itself;
//! every relay that pulls verifies what its upstream sends (in [`crate::upstream::puller`]).
//! Trusted keys come only from these files, never from the stream.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use surge_integrity::{FrameKind, GroupSigner, KeyRing, SigningKey, VerifyKey};

use crate::media::{MediaKind, MediaMessage};

#[derive(Debug, thiserror::Error)]
pub enum IntegrityKeyError {
    #[error("{flag} {path}: {source}")]
    Read {
        flag: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{flag} {path}: {source}")]
    Key {
        flag: &'static str,
        path: String,
        source: surge_integrity::KeyError,
    },
}

/// The relay's signing key and the keys it trusts for what it pulls.
#[derive(Clone, Debug, Default)]
pub struct IntegrityKeys {
    pub sign: Option<Arc<SigningKey>>,
    /// `None`: pulled streams are not checked.
    pub verify: Option<KeyRing>,
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, IntegrityKeyError> {
    std::fs::read(path).map_err(|source| IntegrityKeyError::Read {
        flag,
        path: path.display().to_string(),
        source,
    })
}

impl IntegrityKeys {
    /// Reads `--sign-key` (an Ed25519 private key PEM) and each `--verify-key` (public key
    /// PEM, or a private key whose public half is meant).
    pub fn load(sign: Option<&Path>, verify: &[PathBuf]) -> Result<Self, IntegrityKeyError> {
        let sign = match sign {
            Some(p) => Some(Arc::new(
                SigningKey::from_pem(&read("--sign-key", p)?).map_err(|source| {
                    IntegrityKeyError::Key {
                        flag: "--sign-key",
                        path: p.display().to_string(),
                        source,
                    }
                })?,
            )),
            None => None,
        };
        let mut keys = Vec::new();
        for p in verify {
            let key = VerifyKey::from_pem(&read("--verify-key", p)?).map_err(|source| {
                IntegrityKeyError::Key {
                    flag: "--verify-key",
                    path: p.display().to_string(),
                    source,
                }
            })?;
            keys.push(key);
        }
        let verify = (!keys.is_empty()).then(|| KeyRing::new(keys));
        Ok(IntegrityKeys { sign, verify })
    }
}

pub fn frame_kind(kind: MediaKind) -> FrameKind {
    match kind {
        MediaKind::Audio => FrameKind::Audio,
        MediaKind::Video => FrameKind::Video,
        MediaKind::Data => FrameKind::Metadata,
    }
}

/// True for a `@surgeSignature` data message (passed through, never stored as metadata).
pub fn is_signature(msg: &MediaMessage) -> bool {
    msg.kind == MediaKind::Data && surge_integrity::is_signature(&msg.payload)
}

/// Signs one publisher's media on ingest, until the publisher shows it signs itself.
pub struct IngestSigner {
    signer: GroupSigner,
    publisher_signs: bool,
}

impl IngestSigner {
    pub fn new(key: Arc<SigningKey>) -> Self {
        IngestSigner {
            signer: GroupSigner::new(key),
            publisher_signs: false,
        }
    }

    /// Takes the publisher's next message; returns a signature message to put into the hub
    /// before it.
    pub fn on_media(&mut self, msg: &MediaMessage) -> Option<MediaMessage> {
        if is_signature(msg) {
            if !self.publisher_signs {
                tracing::info!(
                    "the publisher signs its frames; the relay passes its signatures on"
                );
            }
            self.publisher_signs = true;
        }
        if self.publisher_signs {
            return None;
        }
        let sig = self
            .signer
            .on_frame(frame_kind(msg.kind), msg.timestamp, &msg.payload)?;
        Some(signature_message(msg.timestamp, sig))
    }

    /// The publisher is leaving: the signature of its last group.
    pub fn finish(&mut self, timestamp: u32) -> Option<MediaMessage> {
        if self.publisher_signs {
            return None;
        }
        self.signer
            .flush()
            .map(|sig| signature_message(timestamp, sig))
    }
}

fn signature_message(timestamp: u32, payload: Vec<u8>) -> MediaMessage {
    MediaMessage::new(MediaKind::Data, timestamp, Bytes::from(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIFjfaxQn836f1im3Oe6zm0hPpqIbt6rX9bWLG59C0e7\n-----END PRIVATE KEY-----\n";

    fn video(ts: u32, first: u8) -> MediaMessage {
        MediaMessage::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![first, 1, 0, 0, 0, 5]),
        )
    }

    #[test]
    fn signs_until_the_publisher_signs_itself() {
        let key = Arc::new(SigningKey::from_pem(KEY.as_bytes()).unwrap());
        let mut s = IngestSigner::new(key.clone());
        assert!(s.on_media(&video(0, 0x17)).is_none());
        assert!(s.on_media(&video(40, 0x27)).is_none());
        let sig = s
            .on_media(&video(80, 0x17))
            .expect("signature before the keyframe");
        assert!(is_signature(&sig));
        assert_eq!(sig.timestamp, 80);
        assert!(s.on_media(&video(120, 0x27)).is_none());
        assert!(s.on_media(&sig).is_none(), "a publisher's own signature");
        assert!(s.on_media(&video(160, 0x17)).is_none());
        assert!(s.finish(200).is_none());
        let mut s = IngestSigner::new(key);
        s.on_media(&video(0, 0x17));
        assert!(s.finish(40).is_some());
    }

    #[test]
    fn keys_load_from_files_with_the_flag_in_errors() {
        let dir = std::env::temp_dir().join(format!("surge-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let private = dir.join("sign.pem");
        std::fs::write(&private, KEY).unwrap();
        let keys =
            IntegrityKeys::load(Some(&private), std::slice::from_ref(&private)).expect("loads");
        let ring = keys.verify.expect("ring");
        assert!(ring.get(keys.sign.expect("sign").id()).is_some());
        let missing = dir.join("none.pem");
        let e = IntegrityKeys::load(None, &[missing])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--verify-key "), "{e}");
        std::fs::write(dir.join("bad.pem"), "x").unwrap();
        let e = IntegrityKeys::load(Some(&dir.join("bad.pem")), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--sign-key ") && e.contains("no PEM key"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
