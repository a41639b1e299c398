//! When to read the certificate and key again: whenever either file's stamp (modification
//! time, length, inode) differs from the one last tried. A rewrite, a rename over the file and
//! a Kubernetes Secret volume's symlink swap all change it; `stat` follows the symlink.

use std::path::Path;
use std::time::SystemTime;

/// One version of a file, or `None` while it cannot be `stat`ed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        }
    }

    /// The file's stamp now (`None`: missing or unreadable metadata).
    pub fn read(path: &Path) -> Option<Stamp> {
        std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
    }
}

/// The stamps of the certificate and key files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairStamp {
    pub cert: Option<Stamp>,
    pub key: Option<Stamp>,
}

/// Whether to load the pair again: only when the files differ from the version last tried.
/// A failed load also records what it tried, so a broken file is reported once, not at every
/// connection, and the pair is tried again as soon as either file changes (a certificate
/// written before its key fails once, then loads when the key lands).
pub fn should_reload(last_tried: &PairStamp, now: &PairStamp) -> bool {
    last_tried != now
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stamp(secs: u64, len: u64, inode: u64) -> Option<Stamp> {
        Some(Stamp {
            modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            len,
            inode,
        })
    }

    #[test]
    fn unchanged_files_are_not_read_again() {
        let a = PairStamp {
            cert: stamp(10, 600, 1),
            key: stamp(10, 200, 2),
        };
        assert!(!should_reload(&a, &a));
    }

    #[test]
    fn any_change_to_either_file_reloads() {
        let a = PairStamp {
            cert: stamp(10, 600, 1),
            key: stamp(10, 200, 2),
        };
        let variants = [
            PairStamp {
                cert: stamp(11, 600, 1),
                ..a
            },
            PairStamp {
                cert: stamp(10, 601, 1),
                ..a
            },
            // Renamed over with the same time and length (a copy keeping times).
            PairStamp {
                cert: stamp(10, 600, 9),
                ..a
            },
            PairStamp {
                key: stamp(12, 200, 2),
                ..a
            },
            // Gone (and back, below).
            PairStamp { key: None, ..a },
        ];
        for v in variants {
            assert!(should_reload(&a, &v), "{v:?}");
        }
        assert!(should_reload(&PairStamp { key: None, ..a }, &a));
    }

    #[test]
    fn a_missing_file_has_no_stamp_and_a_written_one_has_its_length() {
        let dir = std::env::temp_dir().join(format!("surge-tls-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("f");
        let _ = std::fs::remove_file(&path);
        assert_eq!(Stamp::read(&path), None);
        std::fs::write(&path, b"abc").expect("write");
        assert_eq!(Stamp::read(&path).map(|s| s.len), Some(3));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
