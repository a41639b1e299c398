//! `--target REGION=HOST:RTMP_PORT[:HTTP_PORT]` and the viewer protocols.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Rtmp,
    Flv,
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
}

impl ProtocolChoice {
    /// The protocol of the `n`-th viewer.
    pub fn for_viewer(self, n: u64) -> Protocol {
        match self {
            ProtocolChoice::Rtmp => Protocol::Rtmp,
            ProtocolChoice::Flv => Protocol::Flv,
            ProtocolChoice::Mix if n.is_multiple_of(2) => Protocol::Rtmp,
            ProtocolChoice::Mix => Protocol::Flv,
        }
    }

    pub fn needs_http(self) -> bool {
        self != ProtocolChoice::Rtmp
    }

    pub fn needs_rtmp(self) -> bool {
        self != ProtocolChoice::Flv
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub region: String,
    pub host: String,
    pub rtmp_port: u16,
    pub http_port: Option<u16>,
}

impl Endpoint {
    pub fn rtmp_addr(&self) -> String {
        format!("{}:{}", self.host, self.rtmp_port)
    }

    pub fn http_addr(&self) -> Option<String> {
        self.http_port.map(|p| format!("{}:{}", self.host, p))
    }
}

/// Parses `REGION=HOST:RTMP_PORT[:HTTP_PORT]`.
pub fn parse_target(s: &str) -> Result<Endpoint, String> {
    let (region, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected REGION=HOST:RTMP_PORT[:HTTP_PORT]"))?;
    let parts: Vec<&str> = rest.split(':').collect();
    if region.is_empty() || parts.len() < 2 || parts.len() > 3 || parts[0].is_empty() {
        return Err(format!("`{s}`: expected REGION=HOST:RTMP_PORT[:HTTP_PORT]"));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("`{s}`: `{p}` is not a port"))
    };
    Ok(Endpoint {
        region: region.to_owned(),
        host: parts[0].to_owned(),
        rtmp_port: port(parts[1])?,
        http_port: parts.get(2).map(|p| port(p)).transpose()?,
    })
}

/// The endpoint serving `region`: its own, else a `*` target, else the only target.
pub fn endpoint_for<'a>(targets: &'a [Endpoint], region: &str) -> Option<&'a Endpoint> {
    targets
        .iter()
        .find(|t| t.region == region)
        .or_else(|| targets.iter().find(|t| t.region == "*"))
        .or_else(|| (targets.len() == 1).then(|| &targets[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = parse_target("eu-west=127.0.0.1:1935:8080").expect("valid");
        assert_eq!(t.rtmp_addr(), "127.0.0.1:1935");
        assert_eq!(t.http_addr().as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(parse_target("us=h:1").expect("valid").http_port, None);
        for bad in ["h:1", "us=h", "us=h:0", "us=h:x", "=h:1", "us=h:1:2:3"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn picks_endpoints_by_region_then_default() {
        let a = parse_target("us=a:1").expect("valid");
        let star = parse_target("*=b:2").expect("valid");
        let both = vec![a.clone(), star.clone()];
        assert_eq!(endpoint_for(&both, "us"), Some(&a));
        assert_eq!(endpoint_for(&both, "eu"), Some(&star));
        assert_eq!(endpoint_for(std::slice::from_ref(&a), "eu"), Some(&a));
        let two = vec![a.clone(), parse_target("ap=c:3").expect("valid")];
        assert_eq!(endpoint_for(&two, "eu"), None);
        assert_eq!(ProtocolChoice::Mix.for_viewer(3), Protocol::Flv);
    }
}
