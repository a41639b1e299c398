//! The in-band signature message: an AMF0 data message named `@surgeSignature` whose second
//! value is a long string holding the base64 of a binary body. Relays pass it through like any
//! data message; players skip data messages with names they do not know. Media bytes are
//! never touched.
//!
//! Body (version 1, big-endian):
//! ```text
//! version u8 = 1 | key id [8] | session u64 | seq u64 | unix_ms u64
//! n_config u8 (<= 3), each: kind u8 | leaf [16]
//! n_frames u16 (<= MAX_GROUP_FRAMES), each: kind u8 | timestamp u32 | leaf [16]
//! signature [64]: Ed25519 over DOMAIN | every byte above
//! ```

use base64::Engine;
use ring::digest;

use crate::keys::{KEY_ID_LEN, KeyId};

/// AMF0 string `@surgeSignature` as it appears on the wire (marker, length, bytes).
pub const NAME_AMF0: &[u8] = b"\x02\x00\x0f@surgeSignature";
/// Signatures cover this prefix too, so they mean nothing in any other protocol.
pub const DOMAIN: &[u8] = b"surge-frames-v1\0";
pub const VERSION: u8 = 1;
/// A group is signed at the latest after this many frames (bounds the message size).
pub const MAX_GROUP_FRAMES: usize = 512;
/// Truncated SHA-256: 128 bits, still beyond second-preimage reach.
pub const LEAF_LEN: usize = 16;
pub const SIGNATURE_LEN: usize = 64;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + 8 + 8 + 8;
const FRAME_ENTRY_LEN: usize = 1 + 4 + LEAF_LEN;
const CONFIG_ENTRY_LEN: usize = 1 + LEAF_LEN;
/// Largest body a valid message can have (decoding refuses more before allocating).
const MAX_BODY_LEN: usize =
    HEADER_LEN + 1 + 3 * CONFIG_ENTRY_LEN + 2 + MAX_GROUP_FRAMES * FRAME_ENTRY_LEN + SIGNATURE_LEN;

/// What a frame carries, as signed (the RTMP message type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    Audio,
    Video,
    /// `onMetaData` (the body the relays store, starting at the `onMetaData` string).
    Metadata,
}

impl FrameKind {
    pub fn code(self) -> u8 {
        match self {
            FrameKind::Audio => 8,
            FrameKind::Video => 9,
            FrameKind::Metadata => 18,
        }
    }

    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            8 => Some(FrameKind::Audio),
            9 => Some(FrameKind::Video),
            18 => Some(FrameKind::Metadata),
            _ => None,
        }
    }
}

pub type Leaf = [u8; LEAF_LEN];

/// SHA-256 over the frame's type and payload, truncated. The timestamp is signed beside it in
/// the message (so a verifier can check timing relative to the group even after a relay
/// shifted the whole timeline on a failover).
pub fn leaf(kind: FrameKind, payload: &[u8]) -> Leaf {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[kind.code()]);
    ctx.update(payload);
    let d = ctx.finish();
    let mut out = [0u8; LEAF_LEN];
    out.copy_from_slice(&d.as_ref()[..LEAF_LEN]);
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedFrame {
    pub kind: FrameKind,
    pub timestamp: u32,
    pub leaf: Leaf,
}

/// A decoded signature message (the signature itself not yet checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureMessage {
    pub key_id: KeyId,
    /// Random per signer session (a publisher's connection): `seq` counts within it.
    pub session: u64,
    pub seq: u64,
    /// Signer's wall clock: a new session must be newer than the last one seen.
    pub unix_ms: u64,
    /// The decoder configuration current at signing (metadata, sequence headers): lets a
    /// viewer that got them from a cache verify them in any group.
    pub config: Vec<(FrameKind, Leaf)>,
    pub frames: Vec<SignedFrame>,
    pub signature: [u8; SIGNATURE_LEN],
    /// DOMAIN and the body up to the signature: what the signature covers.
    pub signed_bytes: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("not a @surgeSignature data message")]
    NotSignature,
    #[error("signature message: {0}")]
    Malformed(&'static str),
    #[error("signature message version {0} not understood")]
    Version(u8),
}

/// True when an AMF0 data message body is a signature message (cheap: looks at the name).
pub fn is_signature(payload: &[u8]) -> bool {
    payload.starts_with(NAME_AMF0)
}

/// Builds the body (without the signature) for `sign` to finish.
pub(crate) fn unsigned_body(
    key_id: KeyId,
    session: u64,
    seq: u64,
    unix_ms: u64,
    config: &[(FrameKind, Leaf)],
    frames: &[SignedFrame],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(
        HEADER_LEN + 3 + config.len() * CONFIG_ENTRY_LEN + frames.len() * FRAME_ENTRY_LEN + 64,
    );
    b.push(VERSION);
    b.extend_from_slice(&key_id.0);
    b.extend_from_slice(&session.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&unix_ms.to_be_bytes());
    b.push(config.len().min(3) as u8);
    for (kind, leaf) in config.iter().take(3) {
        b.push(kind.code());
        b.extend_from_slice(leaf);
    }
    let n = frames.len().min(MAX_GROUP_FRAMES);
    b.extend_from_slice(&(n as u16).to_be_bytes());
    for f in &frames[..n] {
        b.push(f.kind.code());
        b.extend_from_slice(&f.timestamp.to_be_bytes());
        b.extend_from_slice(&f.leaf);
    }
    b
}

/// The AMF0 data message payload carrying `body` (signature included).
pub(crate) fn wrap(body: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(body);
    let mut out = Vec::with_capacity(NAME_AMF0.len() + 5 + text.len());
    out.extend_from_slice(NAME_AMF0);
    out.push(0x0c); // AMF0 long string
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Decodes a data message payload. Never panics; refuses anything not exactly as written by
/// [`unsigned_body`] and [`wrap`].
pub fn decode(payload: &[u8]) -> Result<SignatureMessage, MessageError> {
    let rest = payload
        .strip_prefix(NAME_AMF0)
        .ok_or(MessageError::NotSignature)?;
    let (&marker, rest) = rest
        .split_first()
        .ok_or(MessageError::Malformed("no body"))?;
    if marker != 0x0c || rest.len() < 4 {
        return Err(MessageError::Malformed("body is not an AMF0 long string"));
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let text = &rest[4..];
    if text.len() != len {
        return Err(MessageError::Malformed("long string length"));
    }
    if len > MAX_BODY_LEN.div_ceil(3) * 4 {
        return Err(MessageError::Malformed("body too long"));
    }
    let body = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .map_err(|_| MessageError::Malformed("body is not base64"))?;
    parse_body(&body)
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        if self.0.len() < n {
            return Err(MessageError::Malformed("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, MessageError> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(
            b.try_into().map_err(|_| MessageError::Malformed("u64"))?,
        ))
    }
    fn leaf(&mut self) -> Result<Leaf, MessageError> {
        self.take(LEAF_LEN)?
            .try_into()
            .map_err(|_| MessageError::Malformed("leaf"))
    }
    fn kind(&mut self) -> Result<FrameKind, MessageError> {
        FrameKind::from_code(self.u8()?).ok_or(MessageError::Malformed("frame kind"))
    }
}

fn parse_body(body: &[u8]) -> Result<SignatureMessage, MessageError> {
    let mut c = Cursor(body);
    let version = c.u8()?;
    if version != VERSION {
        return Err(MessageError::Version(version));
    }
    let key_id = KeyId(
        c.take(KEY_ID_LEN)?
            .try_into()
            .map_err(|_| MessageError::Malformed("key id"))?,
    );
    let session = c.u64()?;
    let seq = c.u64()?;
    let unix_ms = c.u64()?;
    let n_config = c.u8()? as usize;
    if n_config > 3 {
        return Err(MessageError::Malformed("too many config entries"));
    }
    let mut config = Vec::with_capacity(n_config);
    for _ in 0..n_config {
        config.push((c.kind()?, c.leaf()?));
    }
    let n = u16::from_be_bytes([c.u8()?, c.u8()?]) as usize;
    if n > MAX_GROUP_FRAMES {
        return Err(MessageError::Malformed("too many frames"));
    }
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = c.kind()?;
        let ts = c.take(4)?;
        let timestamp = u32::from_be_bytes([ts[0], ts[1], ts[2], ts[3]]);
        frames.push(SignedFrame {
            kind,
            timestamp,
            leaf: c.leaf()?,
        });
    }
    let signed_len = body.len() - c.0.len();
    let signature: [u8; SIGNATURE_LEN] = c
        .take(SIGNATURE_LEN)?
        .try_into()
        .map_err(|_| MessageError::Malformed("signature"))?;
    if !c.0.is_empty() {
        return Err(MessageError::Malformed("trailing bytes"));
    }
    let mut signed_bytes = Vec::with_capacity(DOMAIN.len() + signed_len);
    signed_bytes.extend_from_slice(DOMAIN);
    signed_bytes.extend_from_slice(&body[..signed_len]);
    Ok(SignatureMessage {
        key_id,
        session,
        seq,
        unix_ms,
        config,
        frames,
        signature,
        signed_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let frames = vec![
            SignedFrame {
                kind: FrameKind::Video,
                timestamp: 40,
                leaf: leaf(FrameKind::Video, b"abc"),
            },
            SignedFrame {
                kind: FrameKind::Audio,
                timestamp: 42,
                leaf: leaf(FrameKind::Audio, b"def"),
            },
        ];
        let config = vec![(FrameKind::Metadata, leaf(FrameKind::Metadata, b"m"))];
        let mut body = unsigned_body(KeyId([7; 8]), 1, 2, 3, &config, &frames);
        body.extend_from_slice(&[9u8; 64]);
        wrap(&body)
    }

    #[test]
    fn round_trips() {
        let bytes = sample();
        assert!(is_signature(&bytes));
        let m = decode(&bytes).expect("decodes");
        assert_eq!((m.session, m.seq, m.unix_ms), (1, 2, 3));
        assert_eq!(m.key_id, KeyId([7; 8]));
        assert_eq!(m.frames.len(), 2);
        assert_eq!(m.frames[1].timestamp, 42);
        assert_eq!(m.config.len(), 1);
        assert_eq!(m.signature, [9u8; 64]);
        assert!(m.signed_bytes.starts_with(DOMAIN));
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = sample();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(b'A');
        assert!(decode(&longer).is_err());
        assert_eq!(
            decode(b"\x02\x00\x0aonMetaData"),
            Err(MessageError::NotSignature)
        );
    }
}
