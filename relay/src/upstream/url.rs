//! Parsing of `--upstream` URLs (`rtmp://HOST[:PORT][/APP]`, or `rtmps://` for RTMP in TLS).

use std::fmt;

pub use surge_wire::url::DEFAULT_RTMP_PORT;
use surge_wire::url::{AuthorityError, split_authority, split_host_port};

/// Port of an `rtmps://` upstream that names none (as ffmpeg and OBS assume).
pub const DEFAULT_RTMPS_PORT: u16 = 443;

/// A parsed upstream address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `rtmps://`: RTMP inside TLS, the upstream's certificate checked for `host`.
    pub tls: bool,
    /// Host name or IP address (IPv6 without the brackets).
    pub host: String,
    pub port: u16,
    /// The application named in the URL path, if any. When absent, the viewer's app is used.
    pub app: Option<String>,
}

/// Why an upstream URL was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error(
        "upstream URL `{0}` must start with rtmp:// or rtmps:// (e.g. rtmp://origin:1935/live)"
    )]
    WrongScheme(String),
    #[error("upstream URL `{0}` has no host (expected rtmp://HOST:PORT/APP)")]
    MissingHost(String),
    #[error("upstream URL `{url}` has an invalid port `{port}` (expected 1-65535)")]
    InvalidPort { url: String, port: String },
    #[error("upstream URL `{0}` has an unterminated IPv6 address (missing `]`)")]
    BadIpv6(String),
    #[error(
        "upstream URL `{0}` has more than one path segment; give only the app (rtmp://HOST:PORT/APP), the stream name comes from the viewer"
    )]
    TooManySegments(String),
    #[error("upstream URL `{0}` contains a query or fragment, which RTMP pulling does not support")]
    QueryNotSupported(String),
}

impl UpstreamUrl {
    /// Parses `rtmp://HOST[:PORT][/APP]` or `rtmps://HOST[:PORT][/APP]`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let trimmed = url.trim();
        let wrong = || UrlError::WrongScheme(url.to_string());
        let (scheme, rest) = trimmed.split_once("://").ok_or_else(wrong)?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => false,
            "rtmps" => true,
            _ => return Err(wrong()),
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(UrlError::QueryNotSupported(url.to_string()));
        }
        let (authority, path) = split_authority(rest);
        let path = path.unwrap_or("");
        let default_port = if tls {
            DEFAULT_RTMPS_PORT
        } else {
            DEFAULT_RTMP_PORT
        };
        let (host, port) = split_host_port(authority, default_port).map_err(|e| match e {
            AuthorityError::BadIpv6 => UrlError::BadIpv6(url.to_string()),
            AuthorityError::InvalidPort(port) => UrlError::InvalidPort {
                url: url.to_string(),
                port,
            },
        })?;
        if host.is_empty() {
            return Err(UrlError::MissingHost(url.to_string()));
        }
        let path = path.trim_end_matches('/');
        let app = if path.is_empty() {
            None
        } else if path.contains('/') {
            return Err(UrlError::TooManySegments(url.to_string()));
        } else {
            Some(path.to_string())
        };
        Ok(UpstreamUrl {
            tls,
            host: host.to_string(),
            port,
            app,
        })
    }

    /// `host:port` for `TcpStream::connect` (IPv6 hosts get brackets).
    pub fn socket_addr(&self) -> String {
        surge_wire::url::socket_addr(&self.host, self.port)
    }

    /// The app to connect to: the URL's own app if it has one, else `fallback`.
    pub fn app_or<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.app.as_deref().unwrap_or(fallback)
    }

    /// The tcUrl sent in `connect` (some servers require it).
    pub fn tc_url(&self, app: &str) -> String {
        format!("{}://{}/{}", self.scheme(), self.socket_addr(), app)
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "rtmps" } else { "rtmp" }
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme();
        match &self.app {
            Some(app) => write!(f, "{scheme}://{}/{}", self.socket_addr(), app),
            None => write!(f, "{scheme}://{}", self.socket_addr()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_url() {
        let u = UpstreamUrl::parse("rtmp://origin.example:1936/live").unwrap();
        assert_eq!(u.host, "origin.example");
        assert_eq!(u.port, 1936);
        assert_eq!(u.app.as_deref(), Some("live"));
        assert_eq!(u.socket_addr(), "origin.example:1936");
        assert_eq!(u.tc_url("live"), "rtmp://origin.example:1936/live");
        assert_eq!(u.to_string(), "rtmp://origin.example:1936/live");
    }

    #[test]
    fn rtmps_urls_name_tls_and_its_default_port() {
        let u = UpstreamUrl::parse("RTMPS://origin.example/live").unwrap();
        assert!(u.tls);
        assert_eq!(u.port, 443);
        assert_eq!(u.to_string(), "rtmps://origin.example:443/live");
        assert_eq!(u.tc_url("live"), "rtmps://origin.example:443/live");
        let u = UpstreamUrl::parse("rtmps://[::1]:1936/live").unwrap();
        assert_eq!((u.tls, u.port), (true, 1936));
        let u = UpstreamUrl::parse("rtmps://[::1]/live").unwrap();
        assert_eq!(u.port, 443);
        assert!(!UpstreamUrl::parse("rtmp://h/live").unwrap().tls);
    }

    #[test]
    fn default_port_and_missing_app() {
        let u = UpstreamUrl::parse("RTMP://10.0.0.1").unwrap();
        assert_eq!(u.port, 1935);
        assert_eq!(u.app, None);
        assert_eq!(u.app_or("live"), "live");
        let u = UpstreamUrl::parse("rtmp://10.0.0.1:19350/").unwrap();
        assert_eq!(u.app, None);
        assert_eq!(u.port, 19350);
    }

    #[test]
    fn ipv6_hosts() {
        let u = UpstreamUrl::parse("rtmp://[::1]:1937/app").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 1937);
        assert_eq!(u.socket_addr(), "[::1]:1937");
        let u = UpstreamUrl::parse("rtmp://[::1]/app").unwrap();
        assert_eq!(u.port, 1935);
        assert!(matches!(
            UpstreamUrl::parse("rtmp://[::1/app"),
            Err(UrlError::BadIpv6(_))
        ));
    }

    #[test]
    fn clear_errors() {
        assert!(matches!(
            UpstreamUrl::parse("http://x/live"),
            Err(UrlError::WrongScheme(_))
        ));
        assert!(matches!(
            UpstreamUrl::parse("origin:1935/live"),
            Err(UrlError::WrongScheme(_))
        ));
        assert!(matches!(
            UpstreamUrl::parse("rtmp://:1935/live"),
            Err(UrlError::MissingHost(_))
        ));
        let e = UpstreamUrl::parse("rtmp://h:99999/live").unwrap_err();
        assert_eq!(
            e.to_string(),
            "upstream URL `rtmp://h:99999/live` has an invalid port `99999` (expected 1-65535)"
        );
        assert!(matches!(
            UpstreamUrl::parse("rtmp://h:0/live"),
            Err(UrlError::InvalidPort { .. })
        ));
        assert!(matches!(
            UpstreamUrl::parse("rtmp://h/live/stream"),
            Err(UrlError::TooManySegments(_))
        ));
        assert!(matches!(
            UpstreamUrl::parse("rtmp://h/live?token=1"),
            Err(UrlError::QueryNotSupported(_))
        ));
    }
}
