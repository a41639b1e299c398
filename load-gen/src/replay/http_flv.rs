//! The HTTP side of an HTTP-FLV viewer (and of a locate request): the request and the
//! response head. Chunked bodies are decoded by [`surge_wire::http_chunked`].

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("response head larger than 16 KiB")]
    HeadTooLarge,
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
}

pub fn request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: surge-load\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// The parts of a response head a viewer needs.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub chunked: bool,
    /// Length of the head including the blank line.
    pub len: usize,
    /// Header fields, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first field named `name` (lower case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the head if `buf` holds all of it.
pub fn parse_head(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > 16 * 1024 {
            Err(HttpError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed(format!("status line `{status_line}`")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line `{status_line}`")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    Ok(Some(ResponseHead {
        status,
        chunked,
        len: end + 4,
        headers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\nFLV";
        let parsed = parse_head(head).expect("valid").expect("complete");
        assert_eq!(
            (parsed.status, parsed.chunked, parsed.len),
            (200, true, head.len() - 3)
        );
        assert_eq!(parsed.header("content-type"), Some("video/x-flv"));
        let redirect = parse_head(
            b"HTTP/1.1 302 Found\r\nlocation: http://h:1/a.flv?placed=1\r\nX-Surge-Placement:  overflow \r\n\r\n",
        )
        .expect("valid")
        .expect("complete");
        assert_eq!(redirect.status, 302);
        assert_eq!(
            redirect.header("location"),
            Some("http://h:1/a.flv?placed=1")
        );
        assert_eq!(redirect.header("x-surge-placement"), Some("overflow"));
        assert_eq!(redirect.header("retry-after"), None);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert!(matches!(
            parse_head(b"SSH-2.0-x\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        let plain = parse_head(b"HTTP/1.0 404 Not Found\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!((plain.status, plain.chunked), (404, false));
    }
}
