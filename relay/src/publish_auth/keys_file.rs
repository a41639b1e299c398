//! The keys file (`--publish-keys-file`), read again whenever it changes: its metadata is
//! checked at each publish (one `stat`), so a rotated key takes effect without a restart and
//! without touching broadcasters already live. A Kubernetes Secret volume swaps a symlink on
//! update; the metadata followed through it changes with the new file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::keys::KeySet;

#[derive(Debug, thiserror::Error)]
#[error("--publish-keys-file {path}: cannot read it: {source}")]
pub struct KeysFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What identifies one version of the file: a rewrite or a symlink swap changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
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

#[derive(Debug)]
pub struct KeysFile {
    path: PathBuf,
    loaded: Mutex<Option<(Stamp, KeySet)>>,
}

impl KeysFile {
    /// Reads the file once: a relay started with a file it cannot read refuses to start.
    pub fn open(path: &Path) -> Result<KeysFile, KeysFileError> {
        let file = KeysFile {
            path: path.to_path_buf(),
            loaded: Mutex::new(None),
        };
        let keys = file.current()?;
        if keys.is_empty() {
            tracing::warn!(path = %path.display(), "publish keys file holds no keys: every publish is refused");
        } else {
            tracing::info!(path = %path.display(), keys = keys.len(), "publish keys loaded");
        }
        Ok(file)
    }

    /// The keys as the file holds them now (read again only when it changed).
    pub fn current(&self) -> Result<KeySet, KeysFileError> {
        let err = |source| KeysFileError {
            path: self.path.clone(),
            source,
        };
        let now = stamp(&std::fs::metadata(&self.path).map_err(err)?);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, keys)) = loaded.as_ref()
            && *s == now
        {
            return Ok(keys.clone());
        }
        let keys = KeySet::parse(&std::fs::read_to_string(&self.path).map_err(err)?);
        if loaded.is_some() {
            tracing::info!(path = %self.path.display(), keys = keys.len(), "publish keys file changed: keys reloaded");
        }
        *loaded = Some((now, keys.clone()));
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_is_read_again_and_a_missing_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("surge-keys-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("keys");
        std::fs::write(&path, "old\n").expect("write");
        let file = KeysFile::open(&path).expect("open");
        assert!(file.current().expect("keys").contains("old"));
        // Same length, new content: the inode or mtime moves (written through a new file, as
        // Secret volumes and editors do).
        let tmp = dir.join("keys.new");
        std::fs::write(&tmp, "new\n").expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        let keys = file.current().expect("keys");
        assert!(keys.contains("new") && !keys.contains("old"));
        std::fs::remove_file(&path).expect("remove");
        assert!(file.current().is_err());
        assert!(KeysFile::open(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
