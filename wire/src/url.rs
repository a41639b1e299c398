//! `rtmp://HOST[:PORT]/...` addresses: the scheme, the host (IPv6 in brackets) and the port.
//! Each caller applies its own rules to the path (the relay's `--upstream` takes only an app,
//! the load generator's `--url` an app and a stream) and words its own errors.

/// Port when an RTMP URL names none.
pub const DEFAULT_RTMP_PORT: u16 = 1935;

/// Why the authority of an `rtmp://` URL was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthorityError {
    #[error("unterminated IPv6 address (missing `]`)")]
    BadIpv6,
    #[error("invalid port `{0}` (expected 1-65535)")]
    InvalidPort(String),
}

/// The text after `rtmp://` (the scheme is case-insensitive); `None` for any other scheme.
pub fn strip_scheme(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    scheme.eq_ignore_ascii_case("rtmp").then_some(rest)
}

/// Splits what follows the scheme at the first `/`: (authority, path without that `/`).
pub fn split_authority(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (rest, None),
    }
}

/// `host[:port]` or `[v6-host][:port]` → (host without brackets, the port named or
/// `default_port`: RTMP's 1935, RTMPS's 443, HTTP's 80 — the caller's scheme decides).
pub fn split_host_port(authority: &str, default_port: u16) -> Result<(&str, u16), AuthorityError> {
    let (host, port_text) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or(AuthorityError::BadIpv6)?;
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(AuthorityError::BadIpv6),
        };
        (&v6[..end], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port_text {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(AuthorityError::InvalidPort(p.to_string())),
        },
    };
    Ok((host, port))
}

/// `host:port` for connecting (IPv6 hosts get brackets).
pub fn socket_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_authorities_and_ports() {
        assert_eq!(strip_scheme("RTMP://h/live"), Some("h/live"));
        assert_eq!(strip_scheme("http://h/live"), None);
        assert_eq!(strip_scheme("h:1935/live"), None);
        assert_eq!(split_authority("h:1/a/b"), ("h:1", Some("a/b")));
        assert_eq!(split_authority("h"), ("h", None));
        assert_eq!(split_host_port("h", DEFAULT_RTMP_PORT), Ok(("h", 1935)));
        assert_eq!(
            split_host_port("h:1936", DEFAULT_RTMP_PORT),
            Ok(("h", 1936))
        );
        assert_eq!(
            split_host_port("[::1]:1937", DEFAULT_RTMP_PORT),
            Ok(("::1", 1937))
        );
        assert_eq!(
            split_host_port("[::1]", DEFAULT_RTMP_PORT),
            Ok(("::1", 1935))
        );
        assert_eq!(
            split_host_port("[::1", DEFAULT_RTMP_PORT),
            Err(AuthorityError::BadIpv6)
        );
        assert_eq!(
            split_host_port("[::1]x", DEFAULT_RTMP_PORT),
            Err(AuthorityError::BadIpv6)
        );
        for bad in ["h:0", "h:99999", "h:x", "h:"] {
            assert!(
                matches!(
                    split_host_port(bad, DEFAULT_RTMP_PORT),
                    Err(AuthorityError::InvalidPort(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(socket_addr("::1", 1935), "[::1]:1935");
        assert_eq!(socket_addr("h", 1), "h:1");
    }
}
