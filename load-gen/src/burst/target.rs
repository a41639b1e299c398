//! `surge-load burst --url`: what each connection of the burst does — play over HTTP-FLV
//! (`http://` or `https://`) or publish over RTMP (`rtmp://` or `rtmps://`).

use crate::rtmp_client::RtmpUrl;
use surge_wire::url::{split_authority, split_host_port};

/// Replaced by the connection's number (0, 1, ...) in `--url`: publishers need a stream
/// name each.
pub const NUMBER: &str = "{n}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BurstTarget {
    /// GET the path and read until the first video tag.
    Viewer {
        tls: bool,
        host: String,
        port: u16,
        /// The path and query, starting with `/`.
        path: String,
    },
    /// Handshake, connect, createStream, publish; joined at `NetStream.Publish.Start`.
    Publisher(RtmpUrl),
}

impl BurstTarget {
    /// Parses the `--url` of connection `n`.
    pub fn parse(url: &str, n: u64) -> Result<Self, String> {
        let url = url.replace(NUMBER, &n.to_string());
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}`: {FORMS}"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" | "rtmps" => return RtmpUrl::parse(&url).map(BurstTarget::Publisher),
            "http" => false,
            "https" => true,
            other => return Err(format!("`{url}`: unknown scheme {other}://; {FORMS}")),
        };
        let (authority, path) = split_authority(rest);
        let path = path
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("`{url}` has no path (e.g. /live/cam.flv)"))?;
        let default_port = if tls { 443 } else { 80 };
        let (host, port) =
            split_host_port(authority, default_port).map_err(|e| format!("`{url}`: {e}"))?;
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        Ok(BurstTarget::Viewer {
            tls,
            host: host.to_owned(),
            port,
            path: format!("/{path}"),
        })
    }

    pub fn tls(&self) -> bool {
        match self {
            BurstTarget::Viewer { tls, .. } => *tls,
            BurstTarget::Publisher(u) => u.tls,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            BurstTarget::Viewer { tls: false, .. } => "http-flv viewer",
            BurstTarget::Viewer { tls: true, .. } => "https-flv viewer",
            BurstTarget::Publisher(u) if u.tls => "rtmps publisher",
            BurstTarget::Publisher(_) => "rtmp publisher",
        }
    }
}

const FORMS: &str = "expected http(s)://HOST[:PORT]/APP/STREAM.flv (viewers) or \
                     rtmp(s)://HOST[:PORT]/APP/STREAM[?key=SECRET] (publishers)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_and_publishers_with_their_default_ports() {
        assert_eq!(
            BurstTarget::parse("https://127.0.0.1:8443/live/cam.flv", 3),
            Ok(BurstTarget::Viewer {
                tls: true,
                host: "127.0.0.1".into(),
                port: 8443,
                path: "/live/cam.flv".into()
            })
        );
        let plain = BurstTarget::parse("http://edge/live/cam.flv", 0).expect("valid");
        assert!(matches!(
            plain,
            BurstTarget::Viewer {
                port: 80,
                tls: false,
                ..
            }
        ));
        let tls = BurstTarget::parse("https://edge/live/cam.flv", 0).expect("valid");
        assert!(matches!(tls, BurstTarget::Viewer { port: 443, .. }));
        assert_eq!(tls.kind(), "https-flv viewer");
        let p = BurstTarget::parse("rtmps://o:1936/live/cam-{n}?key=k", 7).expect("valid");
        let BurstTarget::Publisher(u) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(
            (u.tls, u.port, u.stream.as_str()),
            (true, 1936, "cam-7?key=k")
        );
        assert_eq!(p.kind(), "rtmps publisher");
    }

    #[test]
    fn bad_urls_are_explained() {
        for (bad, says) in [
            ("edge/live/cam.flv", "expected"),
            ("ftp://edge/live/cam.flv", "unknown scheme ftp://"),
            ("http://edge", "no path"),
            ("http://edge:x/a.flv", "port"),
            ("http://:80/a.flv", "no host"),
            ("rtmp://edge/live", "app and a stream"),
        ] {
            let e = BurstTarget::parse(bad, 0).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
