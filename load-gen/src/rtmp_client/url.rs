use surge_wire::url::{
    AuthorityError, socket_addr, split_authority, split_host_port, strip_scheme,
};

/// An `rtmp://HOST[:PORT]/APP/STREAM` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub host: String,
    pub port: u16,
    pub app: String,
    pub stream: String,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = strip_scheme(url).ok_or_else(|| format!("`{url}` is not an rtmp:// URL"))?;
        let (authority, path) = split_authority(rest);
        let path = path.ok_or_else(|| format!("`{url}` has no /APP/STREAM path"))?;
        let (host, port) = split_host_port(authority).map_err(|e| match e {
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
        format!("rtmp://{}/{}", self.addr(), self.app)
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
        for bad in [
            "http://h/a/b",
            "rtmp://h",
            "rtmp://h:x/a/b",
            "rtmp://h/live",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
