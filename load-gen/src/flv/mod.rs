//! FLV files for `publish --input`. The format itself (tags, the incremental parser HTTP-FLV
//! viewers use) is `surge_wire`'s.

use std::path::Path;

pub use surge_wire::flv::{FlvTag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};

/// How many leading bytes of each media message a viewer keeps: enough for the
/// video header and the timing SEI (and a few NALs before it), never the whole frame.
pub const PREFIX_CAP: usize = 192;

/// Why an FLV file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FlvError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Format(#[from] surge_wire::flv::FlvError),
}

pub fn read_flv(path: &Path) -> Result<Vec<FlvTag>, FlvError> {
    let bytes = std::fs::read(path).map_err(|source| FlvError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(surge_wire::flv::parse_flv(&bytes)?)
}
