//! Signed frames, sans-IO (seed: the Periscope anatomy paper, section 7).
//!
//! A signer ([`GroupSigner`]) at the source (a publisher, or the origin relay for one that
//! cannot sign) hashes every frame — SHA-256 over its type and payload — and, group by group
//! (a group ends at the next video keyframe, or after [`MAX_GROUP_FRAMES`] frames or
//! [`MAX_GROUP_MS`]), emits one Ed25519-signed list of those hashes with each frame's
//! timestamp as an AMF0 data message `@surgeSignature` ([`message`]) that relays pass through
//! and players ignore. A [`Verifier`] (every relay that pulls, every checking viewer) keeps
//! each frame's hash until its group's signature arrives and reports [`Verdict`]s; frames are
//! never held back. Keys are PEM files as openssl writes them ([`keys`]); trusted keys come
//! from configuration, never from the stream.

pub mod keys;
pub mod message;
pub mod signer;
pub mod verifier;

pub use keys::{KeyError, KeyId, KeyRing, SigningKey, VerifyKey};
pub use message::{FrameKind, MAX_GROUP_FRAMES, is_signature};
pub use signer::{GroupSigner, MAX_GROUP_MS};
pub use verifier::{FailReason, Tally, Verdict, Verifier, VerifierLimits};

#[cfg(test)]
mod tests;
