//! `--target`: where a region's viewers go — a relay (`REGION=HOST:RTMP_PORT[:HTTP_PORT]`)
//! or the region's locator (`REGION=http://HOST:PORT`) — and the viewer protocols.

use std::fmt;

use surge_wire::url::socket_addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Rtmp,
    Flv,
    Hls,
}

/// `--protocol`: which protocol viewers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolChoice {
    /// RTMP play.
    Rtmp,
    /// HTTP-FLV (GET http://HOST:HTTP_PORT/APP/STREAM.flv).
    Flv,
    /// Half and half, alternating.
    Mix,
    /// HLS polling (GET http://HOST:HTTP_PORT/APP/STREAM.m3u8, then its segments), e.g.
    /// from nginx-rtmp's `hls on`; not served by surge-relay.
    Hls,
}

impl ProtocolChoice {
    /// The protocol of the `n`-th viewer.
    pub fn for_viewer(self, n: u64) -> Protocol {
        match self {
            ProtocolChoice::Rtmp => Protocol::Rtmp,
            ProtocolChoice::Flv => Protocol::Flv,
            ProtocolChoice::Mix if n.is_multiple_of(2) => Protocol::Rtmp,
            ProtocolChoice::Mix => Protocol::Flv,
            ProtocolChoice::Hls => Protocol::Hls,
        }
    }

    pub fn needs_http(self) -> bool {
        self != ProtocolChoice::Rtmp
    }

    pub fn needs_rtmp(self) -> bool {
        matches!(self, ProtocolChoice::Rtmp | ProtocolChoice::Mix)
    }
}

/// How a region's viewers reach their relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Straight to one relay.
    Direct {
        rtmp_port: u16,
        http_port: Option<u16>,
    },
    /// Through the region's locator (a relay started with `--placement-peer`), which places
    /// each viewer: HTTP-FLV plays follow its redirect, RTMP viewers ask `/api/v1/locate`.
    Locator { http_port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub region: String,
    pub host: String,
    pub access: Access,
}

impl Endpoint {
    /// The relay's RTMP address (a locator's is only known per viewer).
    pub fn rtmp_addr(&self) -> Option<String> {
        match self.access {
            Access::Direct { rtmp_port, .. } => Some(socket_addr(&self.host, rtmp_port)),
            Access::Locator { .. } => None,
        }
    }

    /// The relay's or the locator's HTTP port.
    pub fn http_port(&self) -> Option<u16> {
        match self.access {
            Access::Direct { http_port, .. } => http_port,
            Access::Locator { http_port } => Some(http_port),
        }
    }

    /// The relay's or the locator's HTTP address.
    pub fn http_addr(&self) -> Option<String> {
        self.http_port().map(|p| socket_addr(&self.host, p))
    }

    pub fn is_locator(&self) -> bool {
        matches!(self.access, Access::Locator { .. })
    }
}

/// The flag's own spelling, for reports.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither form takes IPv6 hosts, so the host needs no brackets.
        let host = &self.host;
        match self.access {
            Access::Direct {
                rtmp_port,
                http_port: Some(h),
            } => write!(f, "{}={host}:{rtmp_port}:{h}", self.region),
            Access::Direct {
                rtmp_port,
                http_port: None,
            } => write!(f, "{}={host}:{rtmp_port}", self.region),
            Access::Locator { http_port } => write!(f, "{}=http://{host}:{http_port}", self.region),
        }
    }
}

const FORMS: &str = "expected REGION=HOST:RTMP_PORT[:HTTP_PORT] or REGION=http://HOST:PORT";

/// Parses `REGION=HOST:RTMP_PORT[:HTTP_PORT]` (a relay) or `REGION=http://HOST[:PORT][/]`
/// (the region's locator; port 80 when left out).
pub fn parse_target(s: &str) -> Result<Endpoint, String> {
    let (region, rest) = s
        .split_once('=')
        .filter(|(r, _)| !r.is_empty())
        .ok_or_else(|| format!("`{s}`: {FORMS}"))?;
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("`{s}`: `{p}` is not a port"))
    };
    if let Some((scheme, url)) = rest.split_once("://") {
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!(
                "`{s}`: a locator is reached over http:// (not {scheme}://); {FORMS}"
            ));
        }
        let authority = url.strip_suffix('/').unwrap_or(url);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{s}`: a locator target is only http://HOST:PORT (the locator finds the play path itself)"
            ));
        }
        let (host, http_port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, port(p)?),
            Some(_) => return Err(format!("`{s}`: IPv6 hosts are not supported; {FORMS}")),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("`{s}`: no host; {FORMS}"));
        }
        return Ok(Endpoint {
            region: region.to_owned(),
            host: host.to_owned(),
            access: Access::Locator { http_port },
        });
    }
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 || parts[0].is_empty() {
        return Err(format!("`{s}`: {FORMS}"));
    }
    Ok(Endpoint {
        region: region.to_owned(),
        host: parts[0].to_owned(),
        access: Access::Direct {
            rtmp_port: port(parts[1])?,
            http_port: parts.get(2).map(|p| port(p)).transpose()?,
        },
    })
}

/// The targets serving `region`: its own, else the `*` ones, else the only target. Several
/// targets for one region are a pool: each viewer session picks one at random, as a
/// Kubernetes Service does per connection.
pub fn endpoints_for<'a>(targets: &'a [Endpoint], region: &str) -> Vec<&'a Endpoint> {
    let of = |r: &str| -> Vec<&'a Endpoint> { targets.iter().filter(|t| t.region == r).collect() };
    let own = of(region);
    if !own.is_empty() {
        return own;
    }
    let star = of("*");
    if !star.is_empty() {
        return star;
    }
    if targets.len() == 1 {
        return vec![&targets[0]];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_for<'a>(targets: &'a [Endpoint], region: &str) -> Option<&'a Endpoint> {
        endpoints_for(targets, region).into_iter().next()
    }

    #[test]
    fn parses_relay_targets() {
        let t = parse_target("eu-west=127.0.0.1:1935:8080").expect("valid");
        assert_eq!(t.rtmp_addr().as_deref(), Some("127.0.0.1:1935"));
        assert_eq!(t.http_addr().as_deref(), Some("127.0.0.1:8080"));
        assert!(!t.is_locator());
        assert_eq!(t.to_string(), "eu-west=127.0.0.1:1935:8080");
        let no_http = parse_target("us=h:1").expect("valid");
        assert_eq!(no_http.http_addr(), None);
        assert_eq!(no_http.to_string(), "us=h:1");
        for bad in ["h:1", "us=h", "us=h:0", "us=h:x", "=h:1", "us=h:1:2:3"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_locator_targets() {
        let t = parse_target("eu=http://127.0.0.1:8080").expect("valid");
        assert!(t.is_locator());
        assert_eq!(t.access, Access::Locator { http_port: 8080 });
        assert_eq!(t.http_addr().as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(t.rtmp_addr(), None);
        assert_eq!(t.to_string(), "eu=http://127.0.0.1:8080");
        let slash = parse_target("eu=HTTP://edge.example:81/").expect("valid");
        assert_eq!(
            (slash.host.as_str(), slash.http_addr().as_deref()),
            ("edge.example", Some("edge.example:81"))
        );
        let default_port = parse_target("*=http://locator.eu").expect("valid");
        assert_eq!(default_port.access, Access::Locator { http_port: 80 });
    }

    #[test]
    fn rejects_junk_with_a_reason() {
        for (bad, says) in [
            ("eu=https://h:443", "http://"),
            ("eu=rtmp://h:1935", "http://"),
            ("eu=http://h:8080/live/s.flv", "only http://HOST:PORT"),
            ("eu=http://h:8080?x=1", "only http://HOST:PORT"),
            ("eu=http://h:0", "not a port"),
            ("eu=http://h:http", "not a port"),
            ("eu=http://:8080", "no host"),
            ("eu=http://", "no host"),
            ("eu=http://[::1]:8080", "IPv6"),
            ("=http://h:1", "expected REGION="),
            ("http://h:1", "expected REGION="),
        ] {
            let err = parse_target(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn picks_endpoints_by_region_then_default() {
        let a = parse_target("us=a:1").expect("valid");
        let star = parse_target("*=b:2").expect("valid");
        let both = vec![a.clone(), star.clone()];
        assert_eq!(first_for(&both, "us"), Some(&a));
        assert_eq!(first_for(&both, "eu"), Some(&star));
        assert_eq!(first_for(std::slice::from_ref(&a), "eu"), Some(&a));
        let two = vec![a.clone(), parse_target("ap=c:3").expect("valid")];
        assert_eq!(first_for(&two, "eu"), None);
        let pool = vec![
            parse_target("eu=e1:1:2").expect("valid"),
            a.clone(),
            parse_target("eu=e2:1:2").expect("valid"),
        ];
        let eu: Vec<String> = endpoints_for(&pool, "eu")
            .iter()
            .map(|e| e.host.clone())
            .collect();
        assert_eq!(
            eu,
            ["e1", "e2"],
            "a region's targets form its pool, in order"
        );
        assert_eq!(endpoints_for(&pool, "us").len(), 1);
        assert!(endpoints_for(&pool, "ap").is_empty());
        assert_eq!(ProtocolChoice::Mix.for_viewer(3), Protocol::Flv);
    }
}
