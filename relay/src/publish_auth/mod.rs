//! Who may publish: only an origin-tier relay takes publishers, and with a keys file
//! (`--publish-keys-file`) only those presenting one of its keys (`NAME?key=SECRET`).
//! Failed attempts from one address are answered ever more slowly ([`limiter`]).

pub mod keys;
pub mod keys_file;
pub mod limiter;
pub mod stream_key;

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use keys_file::{KeysFile, KeysFileError};
pub use limiter::{FailureLimiter, LimiterSettings};
pub use stream_key::{PresentedKey, key_param};

/// Why a publish is refused; `label` is the `reason` of `surge_relay_publish_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// This relay is a reflector or an edge.
    NotOrigin,
    MissingKey,
    WrongKey,
    /// The keys file cannot be read now (refused rather than let anyone in).
    KeysUnavailable,
}

impl RefusalReason {
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::NotOrigin => "not_origin",
            RefusalReason::MissingKey => "missing_key",
            RefusalReason::WrongKey => "wrong_key",
            RefusalReason::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// A refused publish: why, and how long to wait before answering (repeated failures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    /// What the broadcaster is told (the onStatus description); never holds a key.
    pub description: String,
    pub delay: Duration,
}

#[derive(Debug)]
pub struct PublishAuth {
    /// `Some(tier)` on a relay that is not the origin: every publish is refused.
    not_origin: Option<&'static str>,
    keys: Option<KeysFile>,
    limiter: Mutex<FailureLimiter>,
}

impl PublishAuth {
    /// An origin that takes any publisher (no keys file).
    pub fn open() -> Self {
        PublishAuth::new(None, None)
    }

    /// `not_origin`: this relay's tier when it is not the origin.
    pub fn new(not_origin: Option<&'static str>, keys: Option<KeysFile>) -> Self {
        PublishAuth {
            not_origin,
            keys,
            limiter: Mutex::new(FailureLimiter::new(LimiterSettings::default())),
        }
    }

    /// From `--tier` and `--publish-keys-file` (read once here: an unreadable file stops the
    /// start).
    pub fn from_config(cfg: &crate::config::Config) -> Result<Self, KeysFileError> {
        let not_origin = (cfg.tier != crate::config::Tier::Origin).then(|| cfg.tier.as_str());
        let keys = match &cfg.publish_keys_file {
            Some(path) => Some(KeysFile::open(path)?),
            None => None,
        };
        Ok(PublishAuth::new(not_origin, keys))
    }

    /// Decides a publish from `peer` presenting `key`.
    pub fn check(
        &self,
        peer: Option<IpAddr>,
        key: Option<&PresentedKey>,
        now: Instant,
    ) -> Result<(), Refusal> {
        if let Some(tier) = self.not_origin {
            return Err(Refusal {
                reason: RefusalReason::NotOrigin,
                description: format!(
                    "publish only at the origin: this relay is a {tier}; publish to the Stream's ingest address"
                ),
                delay: Duration::ZERO,
            });
        }
        let Some(file) = &self.keys else {
            return Ok(());
        };
        let (reason, description) = match (file.current(), key) {
            (Err(e), _) => {
                tracing::error!(error = %e, "publish keys unavailable");
                (
                    RefusalReason::KeysUnavailable,
                    "publish refused: the relay cannot read its publish keys",
                )
            }
            (Ok(_), None) => (
                RefusalReason::MissingKey,
                "publish refused: a stream key is required (NAME?key=SECRET)",
            ),
            (Ok(keys), Some(k)) if keys.contains(k.expose()) => {
                if let Some(ip) = peer {
                    self.limiter().success(ip);
                }
                return Ok(());
            }
            (Ok(_), Some(_)) => (RefusalReason::WrongKey, "publish refused: wrong stream key"),
        };
        let delay = match (reason, peer) {
            (RefusalReason::MissingKey | RefusalReason::WrongKey, Some(ip)) => {
                self.limiter().failure(ip, now)
            }
            _ => Duration::ZERO,
        };
        Err(Refusal {
            reason,
            description: description.to_string(),
            delay,
        })
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, FailureLimiter> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_file(name: &str, text: &str) -> (std::path::PathBuf, KeysFile) {
        let dir = std::env::temp_dir().join(format!("surge-auth-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("keys");
        std::fs::write(&path, text).expect("write");
        let file = KeysFile::open(&path).expect("open");
        (dir, file)
    }

    fn key(k: &str) -> PresentedKey {
        PresentedKey::new(k)
    }

    #[test]
    fn only_the_origin_takes_publishers() {
        let edge = PublishAuth::new(Some("edge"), None);
        let r = edge
            .check(None, Some(&key("k")), Instant::now())
            .unwrap_err();
        assert_eq!(r.reason, RefusalReason::NotOrigin);
        assert!(
            r.description.contains("publish only at the origin"),
            "{}",
            r.description
        );
        assert!(
            PublishAuth::open()
                .check(None, None, Instant::now())
                .is_ok()
        );
    }

    #[test]
    fn with_a_keys_file_the_key_must_match_and_failures_slow_down() {
        let (dir, file) = keys_file("match", "# keys\nk1\nk2\n");
        let auth = PublishAuth::new(None, Some(file));
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        let now = Instant::now();
        assert!(auth.check(ip, Some(&key("k1")), now).is_ok());
        assert!(auth.check(ip, Some(&key("k2")), now).is_ok());
        let missing = auth.check(ip, None, now).unwrap_err();
        assert_eq!(missing.reason, RefusalReason::MissingKey);
        let wrong = auth.check(ip, Some(&key("k3")), now).unwrap_err();
        assert_eq!(
            (wrong.reason, wrong.delay),
            (RefusalReason::WrongKey, Duration::ZERO)
        );
        assert!(!wrong.description.contains("k3"));
        for _ in 0..3 {
            let _ = auth.check(ip, Some(&key("k3")), now);
        }
        let slowed = auth.check(ip, Some(&key("k3")), now).unwrap_err();
        assert!(slowed.delay > Duration::ZERO, "{slowed:?}");
        std::fs::remove_file(dir.join("keys")).expect("remove");
        let gone = auth.check(ip, Some(&key("k1")), now).unwrap_err();
        assert_eq!(gone.reason, RefusalReason::KeysUnavailable);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
