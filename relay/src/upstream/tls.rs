//! TLS for `rtmps://` upstreams: RTMP inside TLS, the upstream's certificate checked for the
//! URL's host (a DNS name or an IP address) against the system's CA certificates (as
//! rustls-native-certs finds them: `/etc/ssl/certs` and the like, `SSL_CERT_FILE`) and the
//! PEM certificates of `--upstream-ca` (a private CA, a test CA).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Why the TLS client could not be set up. One line, naming the flag or file.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    #[error("--upstream-ca {path}: {why}")]
    CaFile { path: PathBuf, why: String },
    #[error("--upstream-ca {0}: no certificate in it (PEM, -----BEGIN CERTIFICATE-----)")]
    NoCertificate(PathBuf),
    #[error("TLS client setup: {0}")]
    Rustls(String),
}

/// A client trusting the system's CAs and those of `extra_ca` files.
pub fn connector(extra_ca: &[PathBuf]) -> Result<TlsConnector, UpstreamTlsError> {
    let mut roots = RootCertStore::empty();
    // Unreadable or odd system certificates are skipped: the rest still count.
    let native = rustls_native_certs::load_native_certs();
    let (added, skipped) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(
        added,
        skipped,
        errors = native.errors.len(),
        "system CA certificates for rtmps:// upstreams"
    );
    for path in extra_ca {
        for cert in ca_file(path)? {
            roots.add(cert).map_err(|e| UpstreamTlsError::CaFile {
                path: path.clone(),
                why: e.to_string(),
            })?;
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(crate::tls::provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamTlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let fail = |why: String| UpstreamTlsError::CaFile {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(UpstreamTlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// The client of a relay started without `--upstream-ca` (made once, at the first
/// `rtmps://` connection).
pub fn default_connector() -> Result<TlsConnector, String> {
    static DEFAULT: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| connector(&[]).map_err(|e| e.to_string()))
        .clone()
}

/// The name the upstream's certificate must carry: the URL's host.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("`{host}` cannot be checked against a certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_checked_as_given() {
        assert!(server_name("origin.example").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("::1").is_ok());
        assert!(server_name("bad name").is_err());
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let missing = PathBuf::from("/nonexistent/ca.pem");
        let e = connector(std::slice::from_ref(&missing))
            .err()
            .expect("refused");
        assert!(
            e.to_string()
                .starts_with("--upstream-ca /nonexistent/ca.pem: "),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("surge-upstream-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let e = connector(std::slice::from_ref(&empty))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("no certificate in it"), "{e}");
        let ca = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata/cert_a.pem");
        assert!(connector(&[ca]).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
