//! HLS media playlists (RFC 8216): the tags a live player needs to poll — target duration,
//! media sequence, the segments with their durations, and the end marker. Master playlists
//! are refused (the load generator is given a media playlist's path).

/// Playlists larger than this are refused (a live window is a few lines).
pub const MAX_PLAYLIST: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlaylistError {
    #[error("not an HLS playlist (the first line is not #EXTM3U)")]
    NotM3u8,
    #[error("playlist larger than {MAX_PLAYLIST} bytes")]
    TooLarge,
    #[error("playlist is not UTF-8")]
    NotText,
    #[error("a master playlist (#EXT-X-STREAM-INF): give the media playlist's path")]
    Master,
    #[error("playlist has no #EXT-X-TARGETDURATION")]
    NoTargetDuration,
    #[error("line {line}: malformed {tag}")]
    BadTag { line: usize, tag: &'static str },
    #[error(
        "segment URI `{0}` is on another host or scheme (only paths on the playlist's server are fetched)"
    )]
    ForeignUri(String),
}

/// One media segment of the playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number (`#EXT-X-MEDIA-SEQUENCE` + position).
    pub sequence: u64,
    /// `#EXTINF` duration, seconds.
    pub duration_s: f64,
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    pub target_duration_s: f64,
    pub media_sequence: u64,
    pub segments: Vec<Segment>,
    /// `#EXT-X-ENDLIST`: the broadcast is over.
    pub ended: bool,
}

pub fn parse(bytes: &[u8]) -> Result<MediaPlaylist, PlaylistError> {
    if bytes.len() > MAX_PLAYLIST {
        return Err(PlaylistError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| PlaylistError::NotText)?;
    let mut lines = text.lines().map(str::trim).enumerate();
    // A BOM is not allowed by RFC 8216, but costs nothing to accept.
    match lines.next() {
        Some((_, first)) if first.trim_start_matches('\u{feff}') == "#EXTM3U" => {}
        _ => return Err(PlaylistError::NotM3u8),
    }
    let mut target = None;
    let mut media_sequence = 0u64;
    let mut pending: Option<f64> = None;
    let mut uris: Vec<(f64, String)> = Vec::new();
    let mut ended = false;
    for (i, line) in lines {
        let line_no = i + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            let d: f64 = v.trim().parse().map_err(|_| PlaylistError::BadTag {
                line: line_no,
                tag: "#EXT-X-TARGETDURATION",
            })?;
            if !(d.is_finite() && d > 0.0) {
                return Err(PlaylistError::BadTag {
                    line: line_no,
                    tag: "#EXT-X-TARGETDURATION",
                });
            }
            target = Some(d);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            media_sequence = v.trim().parse().map_err(|_| PlaylistError::BadTag {
                line: line_no,
                tag: "#EXT-X-MEDIA-SEQUENCE",
            })?;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d = v.split(',').next().unwrap_or_default().trim();
            let d: f64 = d
                .parse()
                .ok()
                .filter(|d: &f64| d.is_finite() && *d >= 0.0)
                .ok_or(PlaylistError::BadTag {
                    line: line_no,
                    tag: "#EXTINF",
                })?;
            pending = Some(d);
        } else if line.starts_with("#EXT-X-STREAM-INF") {
            return Err(PlaylistError::Master);
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if line.starts_with('#') {
            // Other tags (discontinuity, program date-time, ...) and comments: not needed.
        } else if let Some(d) = pending.take() {
            uris.push((d, line.to_owned()));
        }
        // A URI line without #EXTINF before it is not a segment (RFC 8216 requires one).
    }
    let target_duration_s = target.ok_or(PlaylistError::NoTargetDuration)?;
    let segments = uris
        .into_iter()
        .enumerate()
        .map(|(k, (duration_s, uri))| Segment {
            sequence: media_sequence.saturating_add(k as u64),
            duration_s,
            uri,
        })
        .collect();
    Ok(MediaPlaylist {
        target_duration_s,
        media_sequence,
        segments,
        ended,
    })
}

/// The path to GET for a segment URI, relative to the playlist's path (`/live/s.m3u8` and
/// `s-12.ts` give `/live/s-12.ts`). Absolute paths stay; `http://` URIs give their path.
pub fn resolve(playlist_path: &str, uri: &str) -> Result<String, PlaylistError> {
    if let Some(rest) = uri.strip_prefix("http://") {
        // The server that serves the playlist serves its segments (nginx-rtmp writes
        // relative URIs); another host would need its own connection.
        return match rest.find('/') {
            Some(at) => Ok(rest[at..].to_owned()),
            None => Err(PlaylistError::ForeignUri(uri.to_owned())),
        };
    }
    if uri.contains("://") {
        return Err(PlaylistError::ForeignUri(uri.to_owned()));
    }
    if uri.starts_with('/') {
        return Ok(uri.to_owned());
    }
    let dir = playlist_path
        .split('?')
        .next()
        .and_then(|p| p.rfind('/').map(|at| &p[..=at]))
        .unwrap_or("/");
    Ok(format!("{dir}{uri}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What nginx-rtmp writes with `hls_fragment 3s`.
    const NGINX: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:17\n#EXT-X-TARGETDURATION:3\n#EXTINF:3.000,\nbench-17.ts\n#EXTINF:3.033,\nbench-18.ts\n";

    #[test]
    fn parses_what_nginx_rtmp_writes() {
        let p = parse(NGINX.as_bytes()).expect("valid");
        assert_eq!(p.target_duration_s, 3.0);
        assert_eq!(p.media_sequence, 17);
        assert!(!p.ended);
        assert_eq!(
            p.segments,
            vec![
                Segment {
                    sequence: 17,
                    duration_s: 3.0,
                    uri: "bench-17.ts".into()
                },
                Segment {
                    sequence: 18,
                    duration_s: 3.033,
                    uri: "bench-18.ts".into()
                },
            ]
        );
        let ended = parse(format!("{NGINX}#EXT-X-ENDLIST\n").as_bytes()).expect("valid");
        assert!(ended.ended);
        let crlf = parse(NGINX.replace('\n', "\r\n").as_bytes()).expect("valid");
        assert_eq!(crlf.segments.len(), 2);
    }

    #[test]
    fn malformed_playlists_are_clear_errors() {
        for (bad, want) in [
            (&b""[..], PlaylistError::NotM3u8),
            (b"<html>", PlaylistError::NotM3u8),
            (
                b"#EXTM3U\n#EXTINF:3,\na.ts\n",
                PlaylistError::NoTargetDuration,
            ),
            (b"#EXTM3U\n\xff\xfe", PlaylistError::NotText),
            (
                b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n",
                PlaylistError::Master,
            ),
            (
                b"#EXTM3U\n#EXT-X-TARGETDURATION:x\n",
                PlaylistError::BadTag {
                    line: 2,
                    tag: "#EXT-X-TARGETDURATION",
                },
            ),
            (
                b"#EXTM3U\n#EXT-X-TARGETDURATION:-1\n",
                PlaylistError::BadTag {
                    line: 2,
                    tag: "#EXT-X-TARGETDURATION",
                },
            ),
            (
                b"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:NaN,\na.ts\n",
                PlaylistError::BadTag {
                    line: 3,
                    tag: "#EXTINF",
                },
            ),
            (
                b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:99999999999999999999999\n",
                PlaylistError::BadTag {
                    line: 2,
                    tag: "#EXT-X-MEDIA-SEQUENCE",
                },
            ),
        ] {
            assert_eq!(parse(bad), Err(want), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parse(&vec![b'#'; MAX_PLAYLIST + 1]),
            Err(PlaylistError::TooLarge)
        );
        // A URI without #EXTINF is not a segment; an #EXTINF without a URI neither.
        let p = parse(b"#EXTM3U\n#EXT-X-TARGETDURATION:3\nstray.ts\n#EXTINF:3,\n").expect("ok");
        assert!(p.segments.is_empty());
    }

    #[test]
    fn never_panics_on_junk() {
        let mut x: u32 = 7;
        for n in 0..2000 {
            let mut buf = b"#EXTM3U\n".to_vec();
            for _ in 0..(n % 64) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let pieces: [&[u8]; 8] = [
                    b"#EXTINF:",
                    b"#EXT-X-TARGETDURATION:",
                    b"#EXT-X-MEDIA-SEQUENCE:",
                    b"3.5,",
                    b"\n",
                    b"a.ts",
                    b"\xff",
                    b"-",
                ];
                buf.extend_from_slice(pieces[(x % 8) as usize]);
            }
            let _ = parse(&buf);
        }
    }

    #[test]
    fn resolves_segment_paths() {
        assert_eq!(resolve("/live/s.m3u8", "s-1.ts"), Ok("/live/s-1.ts".into()));
        assert_eq!(
            resolve("/live/s.m3u8?x=1", "s-1.ts"),
            Ok("/live/s-1.ts".into())
        );
        assert_eq!(
            resolve("/live/s.m3u8", "/hls/s-1.ts"),
            Ok("/hls/s-1.ts".into())
        );
        assert_eq!(resolve("s.m3u8", "s-1.ts"), Ok("/s-1.ts".into()));
        assert_eq!(
            resolve("/live/s.m3u8", "http://h:8080/x/s-1.ts"),
            Ok("/x/s-1.ts".into())
        );
        assert!(matches!(
            resolve("/live/s.m3u8", "https://cdn/x.ts"),
            Err(PlaylistError::ForeignUri(_))
        ));
        assert!(resolve("/live/s.m3u8", "http://h").is_err());
    }
}
