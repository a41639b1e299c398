//! A certificate chain and its private key from PEM bytes (as `--tls-cert` and `--tls-key` hold
//! them: the files cert-manager and `openssl` write), checked to belong together.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;

/// Why a certificate/key pair cannot be used. Each message is one line that names the flag.
#[derive(Debug, thiserror::Error)]
pub enum PemPairError {
    #[error("--tls-cert: not valid PEM: {0}")]
    CertPem(pem::Error),
    #[error("--tls-cert: no certificate in it (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    #[error("--tls-key: not valid PEM: {0}")]
    KeyPem(pem::Error),
    #[error("--tls-key: no private key in it (expected PKCS#8, PKCS#1 or SEC1 PEM)")]
    NoKey,
    #[error("--tls-key: not the private key of the --tls-cert certificate")]
    KeyMismatch,
    #[error("--tls-key: unusable with the --tls-cert certificate: {0}")]
    Key(rustls::Error),
}

/// Parses the chain (leaf first, as in a `tls.crt`) and the key, and checks the key is the
/// leaf's. The provider is the one the listeners use (ring).
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, PemPairError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| match e {
            pem::Error::NoItemsFound => PemPairError::NoCertificate,
            e => PemPairError::CertPem(e),
        })?;
    if chain.is_empty() {
        return Err(PemPairError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => PemPairError::NoKey,
        e => PemPairError::KeyPem(e),
    })?;
    CertifiedKey::from_der(chain, key, &super::provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            PemPairError::KeyMismatch
        }
        e => PemPairError::Key(e),
    })
}

/// SHA-256 of the leaf certificate's DER, in hex (as `openssl x509 -fingerprint -sha256`
/// prints it, without the colons): what the log names a loaded certificate by.
pub fn fingerprint(key: &Arc<CertifiedKey>) -> String {
    key.cert
        .first()
        .map(|leaf| {
            Sha256::digest(leaf.as_ref())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_A: &[u8] = include_bytes!("testdata/cert_a.pem");
    const KEY_A: &[u8] = include_bytes!("testdata/key_a.pem");
    const CERT_B: &[u8] = include_bytes!("testdata/cert_b.pem");

    #[test]
    fn a_matching_pair_loads_with_its_chain() {
        let key = certified_key(CERT_A, KEY_A).expect("pair");
        assert_eq!(key.cert.len(), 1);
        let fp = fingerprint(&Arc::new(key));
        assert_eq!(fp.len(), 64);
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let err = certified_key(CERT_B, KEY_A).expect_err("mismatch");
        assert!(matches!(err, PemPairError::KeyMismatch), "{err}");
        assert!(err.to_string().starts_with("--tls-key"), "{err}");
    }

    #[test]
    fn files_swapped_or_empty_name_what_is_missing() {
        // The key file given as the certificate, and the other way round.
        assert!(matches!(
            certified_key(KEY_A, KEY_A),
            Err(PemPairError::NoCertificate)
        ));
        assert!(matches!(
            certified_key(CERT_A, CERT_A),
            Err(PemPairError::NoKey)
        ));
        assert!(matches!(
            certified_key(b"", KEY_A),
            Err(PemPairError::NoCertificate)
        ));
        assert!(matches!(
            certified_key(b"not pem at all\n", KEY_A),
            Err(PemPairError::NoCertificate)
        ));
    }

    #[test]
    fn a_truncated_certificate_is_refused_not_half_used() {
        let cut = &CERT_A[..CERT_A.len() / 2];
        let err = certified_key(cut, KEY_A).expect_err("truncated");
        assert!(err.to_string().starts_with("--tls-cert"), "{err}");
        // Every message is a single line.
        assert!(!err.to_string().contains('\n'));
    }
}
