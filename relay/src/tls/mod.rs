//! TLS for ingest and playback: RTMPS (`--rtmps-listen`) and HTTPS (`--https-listen`), with the
//! certificate and key from `--tls-cert`/`--tls-key` (PEM, read again when they change: see
//! [`reloading_cert`]). The TLS session is only a byte stream under the same RTMP and
//! HTTP-FLV code as the plain listeners, which keep working alongside.
//!
//! One difference on the RTMP side: a TLS viewer is always written by its own connection task.
//! The shared fan-out tasks ([`crate::hub::fanout_group`]) write the same serialized bytes to
//! many raw sockets with non-blocking `writev`; TLS encrypts per connection, so its viewers
//! cannot join them. Plain TCP viewers are unaffected.

pub mod file_stamp;
pub mod https_listener;
pub mod pem_pair;
pub mod reloading_cert;
pub mod split;

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::{self, ServerConfig};

pub use reloading_cert::{CertFiles, ReloadingCert, TlsFilesError};

/// The one crypto provider of the relay's TLS (ring, as the rest of the workspace uses).
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Flags that do not go together. One line each, naming the flags.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("--rtmps-listen and --https-listen need --tls-cert and --tls-key (PEM files)")]
    MissingFiles,
    #[error("--tls-cert and --tls-key go together: give both")]
    HalfPair,
    #[error("--tls-cert/--tls-key are only used with --rtmps-listen or --https-listen")]
    NoListener,
    #[error("tls setup: {0}")]
    Rustls(rustls::Error),
    #[error(transparent)]
    Files(#[from] TlsFilesError),
}

/// One acceptor per protocol, both serving the same reloading certificate.
#[derive(Clone)]
pub struct TlsAcceptors {
    pub rtmps: TlsAcceptor,
    pub https: TlsAcceptor,
}

impl TlsAcceptors {
    /// From the flags: `None` without TLS listeners; an error (one line) for flags that do
    /// not go together or a certificate pair that cannot be used.
    pub fn from_config(
        cfg: &crate::config::Config,
    ) -> Result<Option<TlsAcceptors>, TlsConfigError> {
        let listens = cfg.rtmps_listen.is_some() || cfg.https_listen.is_some();
        let files = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
            (None, None) if !listens => return Ok(None),
            (None, None) => return Err(TlsConfigError::MissingFiles),
            _ => return Err(TlsConfigError::HalfPair),
        };
        if !listens {
            return Err(TlsConfigError::NoListener);
        }
        let cert = Arc::new(ReloadingCert::open(files)?);
        Ok(Some(TlsAcceptors {
            rtmps: acceptor(cert.clone(), Vec::new())?,
            // HTTP/1.1 only (chunked HTTP-FLV responses; the server speaks no HTTP/2).
            https: acceptor(cert, vec![b"http/1.1".to_vec()])?,
        }))
    }
}

fn acceptor(cert: Arc<ReloadingCert>, alpn: Vec<Vec<u8>>) -> Result<TlsAcceptor, TlsConfigError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Rustls)?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = alpn;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
