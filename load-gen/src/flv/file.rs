use std::path::Path;

/// Why an FLV file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FlvError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not an FLV file (missing the `FLV` signature)")]
    NotFlv,
    #[error("truncated FLV at byte {0}")]
    Truncated(usize),
    #[error("the FLV file has no video tags")]
    NoVideo,
}

/// One tag of an FLV file.
#[derive(Debug, Clone, PartialEq)]
pub struct FlvTag {
    pub tag_type: u8,
    pub timestamp_ms: u32,
    pub data: Vec<u8>,
}

pub fn read_flv(path: &Path) -> Result<Vec<FlvTag>, FlvError> {
    let bytes = std::fs::read(path).map_err(|source| FlvError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_flv(&bytes)
}

/// Parses a whole FLV file. A truncated last tag (a recording cut short) is dropped;
/// a file with no complete tag is an error.
pub fn parse_flv(bytes: &[u8]) -> Result<Vec<FlvTag>, FlvError> {
    if bytes.len() < 9 || &bytes[..3] != b"FLV" {
        return Err(FlvError::NotFlv);
    }
    let header_len = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    let mut at = header_len + 4; // header + PreviousTagSize0
    let mut tags = Vec::new();
    while at + 11 <= bytes.len() {
        let h = &bytes[at..at + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = at + 11;
        let Some(data) = bytes.get(start..start + size) else {
            break;
        };
        let tag_type = h[0] & 0x1f;
        if matches!(
            tag_type,
            super::TAG_AUDIO | super::TAG_VIDEO | super::TAG_SCRIPT
        ) {
            tags.push(FlvTag {
                tag_type,
                timestamp_ms,
                data: data.to_vec(),
            });
        }
        at = start + size + 4;
    }
    if tags.is_empty() {
        return Err(FlvError::Truncated(at));
    }
    if !tags.iter().any(|t| t.tag_type == super::TAG_VIDEO) {
        return Err(FlvError::NoVideo);
    }
    Ok(tags)
}

#[cfg(test)]
pub(crate) fn write_flv(tags: &[FlvTag]) -> Vec<u8> {
    let mut out = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    for t in tags {
        let size = t.data.len() as u32;
        let ts = t.timestamp_ms;
        out.push(t.tag_type);
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&t.data);
        out.extend_from_slice(&(size + 11).to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<FlvTag> {
        vec![
            FlvTag {
                tag_type: 18,
                timestamp_ms: 0,
                data: vec![2, 0, 1, b'x'],
            },
            FlvTag {
                tag_type: 9,
                timestamp_ms: 0x0100_0020,
                data: vec![0x17, 0, 0, 0, 0, 1],
            },
            FlvTag {
                tag_type: 8,
                timestamp_ms: 40,
                data: vec![0xaf, 1, 2],
            },
        ]
    }

    #[test]
    fn parses_tags_with_extended_timestamps() {
        let bytes = write_flv(&sample());
        assert_eq!(parse_flv(&bytes).expect("valid"), sample());
        // A cut-off last tag is dropped, not an error.
        let cut = &bytes[..bytes.len() - 5];
        assert_eq!(parse_flv(cut).expect("valid").len(), 2);
    }

    #[test]
    fn rejects_non_flv_and_videoless_files() {
        assert!(matches!(parse_flv(b"GIF89a..."), Err(FlvError::NotFlv)));
        let audio_only = write_flv(&sample()[2..]);
        assert!(matches!(parse_flv(&audio_only), Err(FlvError::NoVideo)));
        let header_only = write_flv(&[]);
        assert!(matches!(
            parse_flv(&header_only),
            Err(FlvError::Truncated(_))
        ));
    }
}
