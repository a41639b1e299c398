//! Recognises an HTTP-FLV play from the first bytes of a connection (peeked, not read), so the
//! relay can serve it on the raw socket (`flv_direct`) and leave every other request to the
//! HTTP server untouched. Pure.

/// What the first bytes of a connection are.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// The request line is not complete yet.
    NeedMore,
    /// Anything but a plain `GET /APP/STREAM.flv`: the HTTP server takes it.
    Other,
    /// An HTTP-FLV play the relay writes itself.
    FlvPlay(FlvPlay),
}

/// `GET /APP/STREAM.flv[?QUERY] HTTP/1.x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvPlay {
    pub app: String,
    pub name: String,
    pub query: Option<String>,
    /// HTTP/1.1: a chunked body; HTTP/1.0: the body ends when the connection closes.
    pub http11: bool,
}

/// Longest request line looked at; a longer one is left to the HTTP server.
pub const MAX_REQUEST_LINE: usize = 2048;

/// Classifies the start of a connection. Only what the axum route would take as the same play
/// is claimed (no percent-escapes, exactly two path segments), so both paths agree.
pub fn sniff(bytes: &[u8]) -> Sniffed {
    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
        return if bytes.len() >= MAX_REQUEST_LINE
            || !b"GET ".starts_with(&bytes[..bytes.len().min(4)])
        {
            Sniffed::Other
        } else {
            Sniffed::NeedMore
        };
    };
    let Ok(line) = std::str::from_utf8(&bytes[..end]) else {
        return Sniffed::Other;
    };
    let mut parts = line.split(' ');
    let (Some("GET"), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Sniffed::Other;
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Sniffed::Other,
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    if path.contains('%') {
        return Sniffed::Other;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Sniffed::Other;
    };
    let Some((app, file)) = rest.split_once('/') else {
        return Sniffed::Other;
    };
    let name = match file.strip_suffix(".flv") {
        Some(n) if !app.is_empty() && !n.is_empty() && !n.contains('/') => n,
        _ => return Sniffed::Other,
    };
    Sniffed::FlvPlay(FlvPlay {
        app: app.to_string(),
        name: name.to_string(),
        query,
        http11,
    })
}

/// Length of the request head (through the blank line) if `bytes` holds all of it.
pub fn head_len(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(app: &str, name: &str, query: Option<&str>, http11: bool) -> Sniffed {
        Sniffed::FlvPlay(FlvPlay {
            app: app.into(),
            name: name.into(),
            query: query.map(str::to_string),
            http11,
        })
    }

    #[test]
    fn claims_plain_flv_plays_only() {
        assert_eq!(
            sniff(b"GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n"),
            play("live", "cam", None, true)
        );
        assert_eq!(
            sniff(b"GET /live/cam.flv?placed=1&a=b HTTP/1.0\r\n"),
            play("live", "cam", Some("placed=1&a=b"), false)
        );
        for other in [
            &b"GET /metrics HTTP/1.1\r\n"[..],
            b"GET /api/v1/streams HTTP/1.1\r\n",
            b"HEAD /live/cam.flv HTTP/1.1\r\n",
            b"POST /live/cam.flv HTTP/1.1\r\n",
            b"GET /live/c%20m.flv HTTP/1.1\r\n",
            b"GET /live/a/cam.flv HTTP/1.1\r\n",
            b"GET /live/.flv HTTP/1.1\r\n",
            b"GET //cam.flv HTTP/1.1\r\n",
            b"GET /live/cam.mp4 HTTP/1.1\r\n",
            b"GET /live/cam.flv HTTP/2.0\r\n",
            b"GET /live/cam.flv\r\n",
            b"PRI * HTTP/2.0\r\n",
            b"\x16\x03\x01\x02\x00",
        ] {
            assert_eq!(
                sniff(other),
                Sniffed::Other,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn waits_for_the_whole_request_line() {
        assert_eq!(sniff(b""), Sniffed::NeedMore);
        assert_eq!(sniff(b"GE"), Sniffed::NeedMore);
        assert_eq!(sniff(b"GET /live/cam.fl"), Sniffed::NeedMore);
        assert_eq!(sniff(&[b'G'; MAX_REQUEST_LINE]), Sniffed::Other);
        assert_eq!(head_len(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_len(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
    }
}
