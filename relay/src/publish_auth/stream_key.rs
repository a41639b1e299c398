//! The stream key a broadcaster sends with `publish`: `NAME?key=SECRET` (OBS's "stream key"
//! field, or the last path segment of an ffmpeg `rtmp://HOST/APP/NAME?key=SECRET` URL).

/// A publish key as sent by a broadcaster. Its `Debug` hides the value, so the events and
/// errors that carry it can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey(String);

impl PresentedKey {
    pub fn new(key: impl Into<String>) -> Self {
        PresentedKey(key.into())
    }

    /// The secret itself: only for comparing with the configured keys.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedKey(<redacted>)")
    }
}

/// The `key` parameter of the query after the stream name, percent-decoded; `None` when there
/// is no query or no `key` in it (the first `key=` wins).
pub fn key_param(stream_key: &str) -> Option<PresentedKey> {
    let (_, query) = stream_key.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))
        .map(|v| PresentedKey(percent_decode(v)))
}

/// `%XX` escapes decoded (encoders escape reserved characters of a key they put in a URL);
/// a malformed escape is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Option<String> {
        key_param(s).map(|k| k.expose().to_string())
    }

    #[test]
    fn the_key_parameter_of_the_query() {
        assert_eq!(key("cam?key=s3cret"), Some("s3cret".into()));
        assert_eq!(key("cam?token=1&key=a&key=b"), Some("a".into()));
        assert_eq!(key("cam?key="), Some(String::new()));
        assert_eq!(key("cam?key=a%2Bb%3d%zz"), Some("a+b=%zz".into()));
        assert_eq!(key("cam"), None);
        assert_eq!(key("cam?token=1"), None);
        assert_eq!(key("cam?mykey=1"), None);
    }

    #[test]
    fn debug_hides_the_key() {
        let k = key_param("cam?key=s3cret").expect("key");
        assert!(!format!("{k:?}").contains("s3cret"));
    }
}
