use surge_wire::url::{
    AuthorityError, DEFAULT_RTMP_PORT, socket_addr, split_authority, split_host_port,
};

/// Port of an `rtmps://` URL that names none (as ffmpeg and OBS assume).
const RTMPS_DEFAULT_PORT: u16 = 443;

/// An `rtmp://HOST[:PORT]/APP/STREAM` or `rtmps://HOST[:PORT]/APP/STREAM` (RTMP in TLS)
/// address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `rtmps://`.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub app: String,
    pub stream: String,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let not_rtmp = || format!("`{url}` is not an rtmp:// or rtmps:// URL");
        let (scheme, rest) = url.split_once("://").ok_or_else(not_rtmp)?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => false,
            "rtmps" => true,
            _ => return Err(not_rtmp()),
        };
        let (authority, path) = split_authority(rest);
        let path = path.ok_or_else(|| format!("`{url}` has no /APP/STREAM path"))?;
        let default_port = if tls {
            RTMPS_DEFAULT_PORT
        } else {
            DEFAULT_RTMP_PORT
        };
        let (host, port) = split_host_port(authority, default_port).map_err(|e| match e {
            AuthorityError::InvalidPort(p) => format!("`{url}`: bad port `{p}`"),
            e => format!("`{url}`: {e}"),
        })?;
        let (app, stream) = path.split_once('/').ok_or_else(|| {
            format!("`{url}` needs both an app and a stream name (rtmp://HOST:PORT/APP/STREAM)")
        })?;
        if host.is_empty() || app.is_empty() || stream.is_empty() {
            return Err(format!(
                "`{url}` needs a host, an app and a stream name (rtmp://HOST:PORT/APP/STREAM)"
            ));
        }
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            app: app.to_owned(),
            stream: stream.to_owned(),
        })
    }

    pub fn addr(&self) -> String {
        socket_addr(&self.host, self.port)
    }

    pub fn tc_url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        format!("{scheme}://{}/{}", self.addr(), self.app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_explains_bad_ones() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:1936/live/cam?k=1").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.port, u.app.as_str(), u.stream.as_str()),
            ("127.0.0.1", 1936, "live", "cam?k=1")
        );
        assert_eq!(RtmpUrl::parse("rtmp://h/live/s").expect("valid").port, 1935);
        let tls = RtmpUrl::parse("rtmps://h/live/s").expect("valid");
        assert_eq!((tls.tls, tls.port), (true, 443));
        assert_eq!(tls.tc_url(), "rtmps://h:443/live");
        let tls = RtmpUrl::parse("RTMPS://127.0.0.1:1936/live/s").expect("valid");
        assert_eq!((tls.tls, tls.port), (true, 1936));
        assert!(!RtmpUrl::parse("rtmp://h:1/live/s").expect("valid").tls);
        for bad in [
            "http://h/a/b",
            "rtmpx://h/a/b",
            "h/a/b",
            "rtmp://h",
            "rtmp://h:x/a/b",
            "rtmp://h/live",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
