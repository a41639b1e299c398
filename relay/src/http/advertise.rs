//! The host this relay advertises (to locators, in redirects): the content of
//! `--advertise-host-file` when it names one (Kubernetes writes a pod annotation there through
//! a Downward API volume and updates it in place, so the operator can hand a relay its node's
//! external address after scheduling), else `--advertise-host`, else nothing (a locator then
//! uses the address it polled the relay at).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a read of the file is reused (stats are asked about once a second per peer).
const REREAD_AFTER: Duration = Duration::from_secs(1);
/// Longest DNS name.
const MAX_HOST_LEN: usize = 253;

#[derive(Debug, Default)]
pub struct AdvertisedHost {
    fixed: Option<Arc<str>>,
    file: Option<PathBuf>,
    cache: Mutex<Option<(Instant, Option<Arc<str>>)>>,
}

impl AdvertisedHost {
    pub fn new(fixed: Option<String>, file: Option<PathBuf>) -> Self {
        AdvertisedHost {
            fixed: fixed.map(Arc::from),
            file,
            cache: Mutex::new(None),
        }
    }

    /// The host to advertise now, if any.
    pub fn get(&self) -> Option<Arc<str>> {
        self.read_file().or_else(|| self.fixed.clone())
    }

    fn read_file(&self) -> Option<Arc<str>> {
        let path = self.file.as_ref()?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, host)) = cache.as_ref()
            && at.elapsed() < REREAD_AFTER
        {
            return host.clone();
        }
        let host = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| parse_host(&text).map(Arc::from));
        *cache = Some((Instant::now(), host.clone()));
        host
    }
}

/// A host name or address from a file's text: trimmed, one token, no URL parts; `None` for an
/// empty or unusable text (the fallback applies).
pub fn parse_host(text: &str) -> Option<&str> {
    let host = text.trim();
    let usable = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && !host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/?#@".contains(c));
    if !usable {
        if !host.is_empty() {
            tracing::warn!(text = %host.chars().take(80).collect::<String>(), "advertise host file holds no usable host; using the fallback");
        }
        return None;
    }
    Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_one_plain_token() {
        assert_eq!(parse_host("198.51.100.9\n"), Some("198.51.100.9"));
        assert_eq!(
            parse_host(" edge-1.example.net "),
            Some("edge-1.example.net")
        );
        for bad in [
            "",
            "  \n",
            "a b",
            "http://x/",
            "x/y",
            "user@host",
            &"a".repeat(300),
        ] {
            assert_eq!(parse_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_file_wins_over_the_flag_and_follows_its_changes() {
        let dir = std::env::temp_dir().join(format!("surge-advertise-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("advertise-host");
        let a = AdvertisedHost::new(Some("10.0.0.1".into()), Some(file.clone()));
        assert_eq!(
            a.get().as_deref(),
            Some("10.0.0.1"),
            "no file yet: the flag"
        );
        std::fs::write(&file, "198.51.100.9\n").expect("write");
        *a.cache.lock().expect("lock") = None;
        assert_eq!(a.get().as_deref(), Some("198.51.100.9"));
        std::fs::write(&file, "").expect("write");
        *a.cache.lock().expect("lock") = None;
        assert_eq!(
            a.get().as_deref(),
            Some("10.0.0.1"),
            "emptied: the flag again"
        );
        assert_eq!(AdvertisedHost::new(None, None).get(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
