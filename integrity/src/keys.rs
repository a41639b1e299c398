//! Ed25519 keys from the PEM files `openssl genpkey -algorithm ed25519` (private, PKCS#8) and
//! `openssl pkey -pubout` (public, SubjectPublicKeyInfo) write, and the key id that names a
//! public key inside signature messages.

use ring::digest;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};

/// Length of a key id: the first bytes of SHA-256 over the raw 32-byte public key.
pub const KEY_ID_LEN: usize = 8;
/// Ed25519 public keys are 32 raw bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE, AlgorithmIdentifier
/// 1.3.101.112, BIT STRING of 33 bytes (a zero "unused bits" byte, then the key).
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410), before its 32-byte seed:
/// SEQUENCE, version 0, AlgorithmIdentifier 1.3.101.112, OCTET STRING of an OCTET STRING.
const PKCS8_V1_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    pub fn of(public_key: &[u8]) -> KeyId {
        let d = digest::digest(&digest::SHA256, public_key);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&d.as_ref()[..KEY_ID_LEN]);
        KeyId(id)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no PEM key found (expected an Ed25519 key as `openssl genpkey -algorithm ed25519` or `openssl pkey -pubout` writes)"
    )]
    NoKey,
    #[error("PEM: {0}")]
    Pem(String),
    #[error("not an Ed25519 key: {0}")]
    NotEd25519(String),
    #[error("could not generate a key: {0}")]
    Generate(String),
}

/// A PEM block with its base64 body wrapped at 64 columns, as openssl writes it.
fn pem_text(label: &str, b64: &str) -> String {
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_error(e: pem::Error) -> KeyError {
    match e {
        pem::Error::NoItemsFound => KeyError::NoKey,
        other => KeyError::Pem(other.to_string()),
    }
}

/// A private key that signs groups of frames.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    id: KeyId,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}

impl SigningKey {
    /// From a `-----BEGIN PRIVATE KEY-----` PKCS#8 PEM (v1 as openssl writes it, or v2).
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, KeyError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem_bytes).map_err(pem_error)?;
        // openssl writes PKCS#8 v1 (no public key inside); ring derives it then.
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|e| KeyError::NotEd25519(e.to_string()))?;
        let id = KeyId::of(pair.public_key().as_ref());
        Ok(SigningKey { pair, id })
    }

    /// A new random key as PKCS#8 PEM, byte for byte the form `openssl genpkey -algorithm
    /// ed25519` writes (v1: the 32-byte seed only; openssl 3 refuses ring's v2 documents).
    pub fn generate_pem() -> Result<String, KeyError> {
        use base64::Engine;
        use ring::rand::SecureRandom;
        let mut seed = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let mut der = PKCS8_V1_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let pem = pem_text("PRIVATE KEY", &b64);
        // Checked as it will be read.
        SigningKey::from_pem(pem.as_bytes())?;
        Ok(pem)
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn public_key(&self) -> VerifyKey {
        let mut raw = [0u8; PUBLIC_KEY_LEN];
        raw.copy_from_slice(self.pair.public_key().as_ref());
        VerifyKey { raw, id: self.id }
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

/// A public key trusted to sign a stream.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyKey {
    raw: [u8; PUBLIC_KEY_LEN],
    id: KeyId,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyKey({})", self.id)
    }
}

impl VerifyKey {
    /// From a `-----BEGIN PUBLIC KEY-----` PEM, or from the private key PEM (its public half;
    /// convenient for tests and single-host setups).
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, KeyError> {
        match SubjectPublicKeyInfoDer::from_pem_slice(pem_bytes) {
            Ok(spki) => Self::from_spki_der(spki.as_ref()),
            Err(pem::Error::NoItemsFound) => Ok(SigningKey::from_pem(pem_bytes)?.public_key()),
            Err(e) => Err(pem_error(e)),
        }
    }

    fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let raw = der
            .strip_prefix(&SPKI_ED25519_PREFIX[..])
            .filter(|k| k.len() == PUBLIC_KEY_LEN)
            .ok_or_else(|| KeyError::NotEd25519("public key is not an Ed25519 SPKI".into()))?;
        Ok(Self::from_raw(raw.try_into().map_err(|_| KeyError::NoKey)?))
    }

    pub fn from_raw(raw: [u8; PUBLIC_KEY_LEN]) -> Self {
        VerifyKey {
            raw,
            id: KeyId::of(&raw),
        }
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn raw(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.raw
    }

    /// The public key as `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> String {
        use base64::Engine;
        let mut der = SPKI_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&self.raw);
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        pem_text("PUBLIC KEY", &b64)
    }

    /// Every `-----BEGIN PUBLIC KEY-----` block of `pem_bytes`, in order (a trust list during
    /// a rotation); other blocks are refused. An empty text is an empty list.
    pub fn all_from_pem(pem_bytes: &[u8]) -> Result<Vec<Self>, KeyError> {
        let mut keys = Vec::new();
        for item in SubjectPublicKeyInfoDer::pem_slice_iter(pem_bytes) {
            let spki = item.map_err(pem_error)?;
            keys.push(Self::from_spki_der(spki.as_ref())?);
        }
        Ok(keys)
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(message, signature)
            .is_ok()
    }
}

/// The keys a verifier trusts (several during a rotation), looked up by key id.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: Vec<VerifyKey>,
}

impl KeyRing {
    pub fn new(keys: Vec<VerifyKey>) -> Self {
        KeyRing { keys }
    }

    pub fn get(&self, id: KeyId) -> Option<&VerifyKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|k| k.id)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Made with `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`.
    pub const PRIVATE_A: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIFjfaxQn836f1im3Oe6zm0hPpqIbt6rX9bWLG59C0e7\n-----END PRIVATE KEY-----\n";
    pub const PRIVATE_B: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIk8XE7BmxkewpD4T9xRg6LJ67DkZiBl5y9mJafS1BLp\n-----END PRIVATE KEY-----\n";

    pub fn key_a() -> SigningKey {
        SigningKey::from_pem(PRIVATE_A.as_bytes()).expect("key a")
    }

    pub fn key_b() -> SigningKey {
        SigningKey::from_pem(PRIVATE_B.as_bytes()).expect("key b")
    }

    #[test]
    fn openssl_private_and_public_pem_load_and_agree() {
        let k = key_a();
        let public = k.public_key();
        let pem = public.to_pem();
        let back = VerifyKey::from_pem(pem.as_bytes()).expect("public pem");
        assert_eq!(back, public);
        assert_eq!(back.id(), k.id());
        let openssl_pub = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAkyBpJ4ZcD22khdXNGRQyhIbAmEGgiWGpiHZ1nfOopzQ=\n-----END PUBLIC KEY-----\n";
        assert_eq!(pem, openssl_pub, "the same text as openssl pkey -pubout");
        let from_private = VerifyKey::from_pem(PRIVATE_A.as_bytes()).expect("private as public");
        assert_eq!(from_private, public);
        let sig = k.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellp", &sig));
        assert!(!key_b().public_key().verify(b"hello", &sig));
        assert_ne!(key_a().id(), key_b().id());
    }

    #[test]
    fn generated_keys_load_sign_and_differ() {
        let pem = SigningKey::generate_pem().expect("generated");
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI"),
            "{pem}"
        );
        assert_eq!(pem.len(), PRIVATE_A.len(), "the size of openssl's: {pem}");
        let key = SigningKey::from_pem(pem.as_bytes()).expect("loads back");
        let sig = key.sign(b"frames");
        let public = VerifyKey::from_pem(key.public_key().to_pem().as_bytes()).expect("public");
        assert!(public.verify(b"frames", &sig));
        let other = SigningKey::from_pem(SigningKey::generate_pem().expect("second").as_bytes())
            .expect("loads");
        assert_ne!(other.id(), key.id(), "each key is new");
    }

    #[test]
    fn a_trust_list_reads_every_public_key_in_order() {
        let (a, b) = (key_a().public_key(), key_b().public_key());
        let text = format!("# old\n{}{}", b.to_pem(), a.to_pem());
        let keys = VerifyKey::all_from_pem(text.as_bytes()).expect("two keys");
        assert_eq!(keys, [b, a]);
        assert!(VerifyKey::all_from_pem(b"").expect("empty").is_empty());
        assert!(
            VerifyKey::all_from_pem(PRIVATE_A.as_bytes())
                .expect("no public block")
                .is_empty()
        );
        let broken = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(VerifyKey::all_from_pem(broken.as_bytes()).is_err());
    }

    #[test]
    fn bad_pem_is_an_error() {
        assert!(matches!(
            SigningKey::from_pem(b"nothing"),
            Err(KeyError::NoKey)
        ));
        assert!(
            VerifyKey::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
        // An RSA-looking SPKI prefix is refused.
        assert!(VerifyKey::from_spki_der(&[0x30, 0x2a, 0, 0]).is_err());
    }
}
