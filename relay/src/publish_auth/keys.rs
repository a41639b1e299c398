//! Publish keys: the text of a keys file parsed into a set, and a constant-time check of a
//! broadcaster's key against it.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// The keys a publisher may present. Only SHA-256 digests are kept: comparing digests of equal
/// length in constant time reveals neither a key's bytes nor its length through timing.
#[derive(Clone, Default)]
pub struct KeySet {
    digests: Vec<[u8; 32]>,
}

// Never print keys or their digests (logs, panics).
impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySet({} keys)", self.digests.len())
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl KeySet {
    /// One key per line; blank lines and lines starting with `#` are skipped, surrounding
    /// whitespace (a trailing newline, `\r`) is not part of a key.
    pub fn parse(text: &str) -> KeySet {
        let digests = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(digest)
            .collect();
        KeySet { digests }
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `candidate` is one of the keys. Every key is compared (no early exit), each in
    /// constant time.
    pub fn contains(&self, candidate: &str) -> bool {
        let wanted = digest(candidate);
        let found = self
            .digests
            .iter()
            .fold(Choice::from(0), |acc, d| acc | d.ct_eq(&wanted));
        found.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_per_line_with_comments_and_blank_lines() {
        let keys = KeySet::parse("# rotated 2026-01\nold-key\n\n  new-key \r\n#not-a-key\n");
        assert_eq!(keys.len(), 2);
        assert!(keys.contains("old-key"));
        assert!(keys.contains("new-key"));
        assert!(!keys.contains("not-a-key"));
        assert!(!keys.contains("#not-a-key"));
        assert!(!keys.contains(""));
        assert!(!keys.contains("new-key "));
        assert!(!keys.contains("old-ke"));
    }

    #[test]
    fn an_empty_file_holds_no_keys_and_accepts_nothing() {
        let keys = KeySet::parse("# nothing yet\n\n");
        assert!(keys.is_empty());
        assert!(!keys.contains(""));
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let keys = KeySet::parse("s3cret\n");
        assert_eq!(format!("{keys:?}"), "KeySet(1 keys)");
    }
}
