//! The served certificate, taken from `--tls-cert`/`--tls-key` and read again when they change.
//!
//! rustls asks [`ReloadingCert`] for the certificate at every handshake; it then `stat`s both
//! files (two syscalls, only on TLS connections) and reloads them when [`should_reload`] says
//! so. The next handshake gets the new certificate; connections already up keep the session
//! they negotiated. A pair that cannot be loaded at start stops the relay; a bad pair later is
//! logged once and the previous certificate stays in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use super::file_stamp::{PairStamp, Stamp, should_reload};
use super::pem_pair::{PemPairError, certified_key, fingerprint};

/// Why the certificate pair cannot be loaded. One line (no error chain), naming the flag and
/// the file, as the relay prints it when it refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    #[error("{flag} {path}: cannot read it: {error}")]
    Read {
        flag: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{error} (--tls-cert {cert}, --tls-key {key})")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        error: PemPairError,
    },
}

#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    fn stamp(&self) -> PairStamp {
        PairStamp {
            cert: Stamp::read(&self.cert),
            key: Stamp::read(&self.key),
        }
    }

    fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsFilesError> {
        std::fs::read(path).map_err(|error| TlsFilesError::Read {
            flag,
            path: path.to_path_buf(),
            error,
        })
    }

    /// Reads and checks the pair.
    pub fn load(&self) -> Result<Arc<CertifiedKey>, TlsFilesError> {
        let cert = Self::read("--tls-cert", &self.cert)?;
        let key = Self::read("--tls-key", &self.key)?;
        certified_key(&cert, &key)
            .map(Arc::new)
            .map_err(|error| TlsFilesError::Pair {
                cert: self.cert.clone(),
                key: self.key.clone(),
                error,
            })
    }
}

#[derive(Debug)]
struct Current {
    /// The files as last tried (loaded or not).
    tried: PairStamp,
    key: Arc<CertifiedKey>,
}

#[derive(Debug)]
pub struct ReloadingCert {
    files: CertFiles,
    current: Mutex<Current>,
}

impl ReloadingCert {
    /// Loads the pair once: a relay started with a pair it cannot use refuses to start.
    pub fn open(files: CertFiles) -> Result<ReloadingCert, TlsFilesError> {
        // Stamped before reading: a change during the read is seen at the next handshake.
        let tried = files.stamp();
        let key = files.load()?;
        tracing::info!(cert = %files.cert.display(), fingerprint = %fingerprint(&key), "tls certificate loaded");
        Ok(ReloadingCert {
            files,
            current: Mutex::new(Current { tried, key }),
        })
    }

    /// The certificate to serve now, read again first if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let now = self.files.stamp();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if should_reload(&current.tried, &now) {
            current.tried = now;
            match self.files.load() {
                Ok(key) => {
                    tracing::info!(cert = %self.files.cert.display(), fingerprint = %fingerprint(&key), "tls certificate changed on disk: reloaded for new connections");
                    current.key = key;
                }
                Err(e) => {
                    tracing::warn!(error = %e, fingerprint = %fingerprint(&current.key), "tls certificate changed on disk but cannot be used: still serving the previous one");
                }
            }
        }
        current.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_A: &[u8] = include_bytes!("testdata/cert_a.pem");
    const KEY_A: &[u8] = include_bytes!("testdata/key_a.pem");
    const CERT_B: &[u8] = include_bytes!("testdata/cert_b.pem");
    const KEY_B: &[u8] = include_bytes!("testdata/key_b.pem");

    fn replace(path: &Path, bytes: &[u8]) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }

    fn files(name: &str) -> (PathBuf, CertFiles) {
        let dir =
            std::env::temp_dir().join(format!("surge-tls-reload-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let files = CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        (dir, files)
    }

    fn leaf(key: &Arc<CertifiedKey>) -> Vec<u8> {
        key.cert[0].as_ref().to_vec()
    }

    #[test]
    fn a_replaced_pair_is_served_next_and_a_bad_one_keeps_the_previous() {
        let (dir, files) = files("swap");
        replace(&files.cert, CERT_A);
        replace(&files.key, KEY_A);
        let reloading = ReloadingCert::open(files.clone()).expect("open");
        let a = reloading.current();
        assert!(Arc::ptr_eq(&a, &reloading.current()), "not read again");

        // The certificate lands before its key: that half-written pair is refused and A stays.
        replace(&files.cert, CERT_B);
        assert_eq!(leaf(&reloading.current()), leaf(&a));
        // Then the key: B is served.
        replace(&files.key, KEY_B);
        let b = reloading.current();
        assert_eq!(b.cert[0].as_ref(), leaf_of(CERT_B));

        // A broken file: B stays; fixing it is picked up.
        replace(&files.cert, b"garbage");
        assert!(Arc::ptr_eq(&b, &reloading.current()));
        std::fs::remove_file(&files.key).expect("remove");
        assert!(Arc::ptr_eq(&b, &reloading.current()));
        replace(&files.cert, CERT_A);
        replace(&files.key, KEY_A);
        assert_eq!(leaf(&reloading.current()), leaf(&a));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn leaf_of(pem: &[u8]) -> Vec<u8> {
        certified_key(pem, if pem == CERT_A { KEY_A } else { KEY_B })
            .expect("pair")
            .cert[0]
            .as_ref()
            .to_vec()
    }

    #[test]
    fn a_missing_or_bad_pair_at_start_is_one_line_naming_the_flag_and_file() {
        let (dir, files) = files("start");
        let err = ReloadingCert::open(files.clone()).expect_err("missing");
        let line = err.to_string();
        assert!(
            line.starts_with("--tls-cert ") && line.contains("tls.crt"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        replace(&files.cert, CERT_A);
        let line = ReloadingCert::open(files.clone())
            .expect_err("no key")
            .to_string();
        assert!(
            line.starts_with("--tls-key ") && line.contains("tls.key"),
            "{line}"
        );
        replace(&files.key, KEY_B);
        let line = ReloadingCert::open(files.clone())
            .expect_err("mismatch")
            .to_string();
        assert!(
            line.contains("--tls-key") && line.contains("tls.crt"),
            "{line}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
