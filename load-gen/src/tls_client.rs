//! TLS for the load generator's connections: `rtmps://` publishers and `https://` viewers.
//! The server's certificate is checked for the URL's host (a DNS name or an IP address)
//! against the system's CA certificates and those of `--ca-file` (a private or test CA).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_util::either::Either;

/// A connection to a server: plain TCP or TLS over it.
pub type Transport = Either<TcpStream, TlsStream<TcpStream>>;

/// Why the TLS client could not be set up. One line, naming the flag or file.
#[derive(Debug, thiserror::Error)]
pub enum TlsClientError {
    #[error("--ca-file {path}: {why}")]
    CaFile { path: PathBuf, why: String },
    #[error("--ca-file {0}: no certificate in it (PEM, -----BEGIN CERTIFICATE-----)")]
    NoCertificate(PathBuf),
    #[error("TLS client setup: {0}")]
    Rustls(String),
}

/// A client trusting the system's CAs and those of the `ca_files`.
pub fn connector(ca_files: &[PathBuf]) -> Result<TlsConnector, TlsClientError> {
    let mut roots = RootCertStore::empty();
    // Unreadable or odd system certificates are skipped: the rest still count.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for path in ca_files {
        for cert in ca_file(path)? {
            roots.add(cert).map_err(|e| TlsClientError::CaFile {
                path: path.clone(),
                why: e.to_string(),
            })?;
        }
    }
    let provider = tokio_rustls::rustls::crypto::ring::default_provider();
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsClientError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsClientError> {
    let fail = |why: String| TlsClientError::CaFile {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsClientError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// How long the steps of [`dial`] took.
#[derive(Debug, Clone, Copy, Default)]
pub struct DialTimes {
    pub tcp: Duration,
    /// Zero without TLS.
    pub tls: Duration,
}

/// Connects to `addr` (`HOST:PORT`); with `tls`, runs the TLS handshake for `host` on it.
/// Each step gives up after `step_timeout`.
pub async fn dial(
    addr: &str,
    host: &str,
    tls: Option<&TlsConnector>,
    step_timeout: Duration,
) -> std::io::Result<(Transport, DialTimes)> {
    let timed_out = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what} took over {step_timeout:?}"),
        )
    };
    let t0 = Instant::now();
    let socket = tokio::time::timeout(step_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out("TCP connect"))??;
    socket.set_nodelay(true)?;
    let tcp = t0.elapsed();
    let Some(connector) = tls else {
        return Ok((
            Either::Left(socket),
            DialTimes {
                tcp,
                tls: Duration::ZERO,
            },
        ));
    };
    let name = ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{host}` cannot be checked against a certificate: {e}"),
        )
    })?;
    let t1 = Instant::now();
    let stream = tokio::time::timeout(step_timeout, connector.connect(name, socket))
        .await
        .map_err(|_| timed_out("TLS handshake"))??;
    Ok((
        Either::Right(stream),
        DialTimes {
            tcp,
            tls: t1.elapsed(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let missing = PathBuf::from("/nonexistent/ca.pem");
        let e = connector(std::slice::from_ref(&missing))
            .err()
            .expect("refused");
        assert!(
            e.to_string().starts_with("--ca-file /nonexistent/ca.pem: "),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("surge-load-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let e = connector(std::slice::from_ref(&empty))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("no certificate in it"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
