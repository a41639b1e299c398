//! Playing through a region's locator, the pure parts: the play and locate paths, a
//! redirect's `Location` (absolute `http://` or a path on the same host), the hop limit and
//! loop check, the `X-Surge-Placement` header, `Retry-After`, and the locate answer.

use std::time::Duration;

use serde::Deserialize;

use super::placement::Placement;
use crate::rtmp_client::RtmpUrl;

/// Redirects a viewer follows before it gives up (a real player stops somewhere too).
pub const MAX_REDIRECTS: usize = 3;
/// The wait when a refusal names none (or one we cannot read): what the relay sends.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);
/// Bounds on the wait, so a zero or a huge `Retry-After` neither hammers nor parks a viewer.
const MIN_RETRY_AFTER: Duration = Duration::from_millis(250);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocatorError {
    #[error("bad redirect Location `{0}`: {1}")]
    BadLocation(String, &'static str),
    #[error("redirect without a Location")]
    NoLocation,
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("redirect loop back to {0}")]
    Loop(String),
    #[error("bad locate answer: {0}")]
    BadAnswer(String),
}

/// `http://HOST:PORT/PATH?QUERY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The key of the relay this URL reaches, for the per-relay counts.
    pub fn relay(&self) -> String {
        format!("http://{}", self.addr())
    }
}

/// `/APP/STREAM.flv`.
pub fn play_path(app: &str, stream: &str) -> String {
    format!("/{app}/{stream}.flv")
}

/// The locate request of an RTMP viewer. No `region=`: the locator places for its own
/// region, which is the one the target names.
pub fn locate_path(app: &str, stream: &str) -> String {
    format!(
        "/api/v1/locate?app={}&stream={}&protocol=rtmp",
        encode(app),
        encode(stream)
    )
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where a redirect from `base` goes.
pub fn parse_location(location: &str, base: &HttpUrl) -> Result<HttpUrl, LocatorError> {
    let bad = |why| LocatorError::BadLocation(location.to_owned(), why);
    let location = location.trim();
    if location.is_empty() {
        return Err(bad("empty"));
    }
    if location.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad("control characters or spaces"));
    }
    if location.starts_with('/') && !location.starts_with("//") {
        return Ok(HttpUrl {
            path: location.to_owned(),
            ..base.clone()
        });
    }
    let (scheme, rest) = location
        .split_once("://")
        .ok_or_else(|| bad("neither http://HOST:PORT/PATH nor /PATH"))?;
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad("not http://"));
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') || authority.starts_with('[') {
        return Err(bad("unsupported host"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad("bad port"))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Ok(HttpUrl {
        host: host.to_owned(),
        port,
        path,
    })
}

/// `X-Surge-Placement` of a redirect: `overflow`, else an edge (also without the header: a
/// locator that does not say placed the viewer in its region).
pub fn parse_placement(header: Option<&str>) -> Placement {
    match header {
        Some(v) if v.trim().eq_ignore_ascii_case("overflow") => Placement::Overflow,
        _ => Placement::Edge,
    }
}

/// How long a refused viewer waits: `Retry-After` in seconds, within bounds.
pub fn retry_after(header: Option<&str>) -> Duration {
    header
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_RETRY_AFTER)
        .clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER)
}

/// One viewer's path through redirects: the URLs asked so far and how it was placed.
#[derive(Debug, Clone)]
pub struct Redirects {
    asked: Vec<HttpUrl>,
    placement: Placement,
}

impl Redirects {
    /// Starts at the locator; a viewer it serves itself counts as an edge placement.
    pub fn new(start: HttpUrl) -> Self {
        Self {
            asked: vec![start],
            placement: Placement::Edge,
        }
    }

    pub fn current(&self) -> &HttpUrl {
        self.asked.last().expect("starts with one URL")
    }

    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// Takes the redirect the current URL answered with; the next URL to ask.
    pub fn follow(
        &mut self,
        location: Option<&str>,
        placement: Option<&str>,
    ) -> Result<&HttpUrl, LocatorError> {
        if self.asked.len() > MAX_REDIRECTS {
            return Err(LocatorError::TooManyRedirects);
        }
        let location = location.ok_or(LocatorError::NoLocation)?;
        let next = parse_location(location, self.current())?;
        if self.asked.contains(&next) {
            return Err(LocatorError::Loop(format!(
                "http://{}{}",
                next.addr(),
                next.path
            )));
        }
        self.placement = parse_placement(placement);
        self.asked.push(next);
        Ok(self.current())
    }
}

/// An RTMP viewer's place, from the locate answer `{url, relay, region, load, overflow}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpPlace {
    pub url: RtmpUrl,
    pub placement: Placement,
}

impl RtmpPlace {
    /// The key of the relay, for the per-relay counts.
    pub fn relay(&self) -> String {
        format!("rtmp://{}", self.url.addr())
    }
}

#[derive(Deserialize)]
struct Answer {
    url: String,
    #[serde(default)]
    overflow: bool,
}

pub fn parse_locate_answer(body: &[u8]) -> Result<RtmpPlace, LocatorError> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| LocatorError::BadAnswer(e.to_string()))?;
    let url = RtmpUrl::parse(&answer.url).map_err(LocatorError::BadAnswer)?;
    Ok(RtmpPlace {
        url,
        placement: if answer.overflow {
            Placement::Overflow
        } else {
            Placement::Edge
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locator() -> HttpUrl {
        HttpUrl {
            host: "127.0.0.1".into(),
            port: 8080,
            path: "/live/s.flv".into(),
        }
    }

    #[test]
    fn parses_absolute_and_relative_locations() {
        let abs =
            parse_location("http://127.0.0.1:8081/live/s.flv?placed=1", &locator()).expect("valid");
        assert_eq!(abs.addr(), "127.0.0.1:8081");
        assert_eq!(abs.path, "/live/s.flv?placed=1");
        assert_eq!(abs.relay(), "http://127.0.0.1:8081");
        let rel = parse_location("/live/s.flv?placed=1", &locator()).expect("valid");
        assert_eq!(rel.addr(), "127.0.0.1:8080");
        assert_eq!(rel.path, "/live/s.flv?placed=1");
        let default_port = parse_location("HTTP://edge.eu", &locator()).expect("valid");
        assert_eq!((default_port.port, default_port.path.as_str()), (80, "/"));
        assert_eq!(
            parse_location("http://h:1?x", &locator())
                .expect("valid")
                .path,
            "/?x"
        );
    }

    #[test]
    fn rejects_bad_locations() {
        for (bad, why) in [
            ("", "empty"),
            ("https://h:443/a.flv", "not http://"),
            ("rtmp://h/live/s", "not http://"),
            ("//h:1/a.flv", "neither"),
            ("live/s.flv", "neither"),
            ("http://h:0/a", "bad port"),
            ("http://h:99999/a", "bad port"),
            ("http://h:x/a", "bad port"),
            ("http://:8080/a", "no host"),
            ("http://u@h:1/a", "unsupported host"),
            ("http://[::1]:1/a", "unsupported host"),
            ("/a\r\nSet-Cookie: x", "control"),
        ] {
            match parse_location(bad, &locator()) {
                Err(LocatorError::BadLocation(_, w)) => assert!(w.contains(why), "{bad}: {w}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn follows_redirects_up_to_the_hop_limit() {
        let mut r = Redirects::new(locator());
        assert_eq!(r.placement(), Placement::Edge);
        for port in 1..=MAX_REDIRECTS as u16 {
            let next = r
                .follow(Some(&format!("http://127.0.0.1:{port}/live/s.flv")), None)
                .expect("within the limit");
            assert_eq!(next.port, port);
        }
        assert_eq!(
            r.follow(Some("http://127.0.0.1:99/live/s.flv"), None),
            Err(LocatorError::TooManyRedirects)
        );
    }

    #[test]
    fn a_loop_or_a_missing_location_is_an_error() {
        let mut r = Redirects::new(locator());
        r.follow(Some("http://127.0.0.1:8081/live/s.flv"), Some("edge"))
            .expect("first hop");
        assert!(matches!(
            r.follow(Some("http://127.0.0.1:8080/live/s.flv"), None),
            Err(LocatorError::Loop(_))
        ));
        assert_eq!(r.follow(None, None), Err(LocatorError::NoLocation));
        // A relative redirect to the same path is a loop too.
        let mut same = Redirects::new(locator());
        assert!(matches!(
            same.follow(Some("/live/s.flv"), None),
            Err(LocatorError::Loop(_))
        ));
    }

    #[test]
    fn the_placement_header_tells_edge_from_overflow() {
        assert_eq!(parse_placement(Some("overflow")), Placement::Overflow);
        assert_eq!(parse_placement(Some(" Overflow ")), Placement::Overflow);
        assert_eq!(parse_placement(Some("edge")), Placement::Edge);
        assert_eq!(parse_placement(None), Placement::Edge);
        let mut r = Redirects::new(locator());
        r.follow(Some("http://o:1/live/s.flv?placed=1"), Some("overflow"))
            .expect("hop");
        assert_eq!(r.placement(), Placement::Overflow);
        assert_eq!(r.current().relay(), "http://o:1");
    }

    #[test]
    fn retry_after_is_read_and_bounded() {
        assert_eq!(retry_after(Some("2")), Duration::from_secs(2));
        assert_eq!(retry_after(Some(" 5 ")), Duration::from_secs(5));
        assert_eq!(retry_after(None), DEFAULT_RETRY_AFTER);
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            DEFAULT_RETRY_AFTER
        );
        assert_eq!(retry_after(Some("0")), MIN_RETRY_AFTER);
        assert_eq!(retry_after(Some("86400")), MAX_RETRY_AFTER);
    }

    #[test]
    fn reads_locate_answers() {
        let body = br#"{"url":"rtmp://127.0.0.1:1936/live/s","relay":"ab-12","region":"eu","load":0.5,"overflow":true}"#;
        let place = parse_locate_answer(body).expect("valid");
        assert_eq!(place.url.addr(), "127.0.0.1:1936");
        assert_eq!(
            (place.url.app.as_str(), place.url.stream.as_str()),
            ("live", "s")
        );
        assert_eq!(place.placement, Placement::Overflow);
        assert_eq!(place.relay(), "rtmp://127.0.0.1:1936");
        let edge =
            parse_locate_answer(br#"{"url":"rtmp://h:1/a/b","overflow":false}"#).expect("valid");
        assert_eq!(edge.placement, Placement::Edge);
        for bad in [
            &b"not json"[..],
            br#"{"overflow":false}"#,
            br#"{"url":"http://h:1/a/b.flv"}"#,
        ] {
            assert!(matches!(
                parse_locate_answer(bad),
                Err(LocatorError::BadAnswer(_))
            ));
        }
    }

    #[test]
    fn builds_play_and_locate_paths() {
        assert_eq!(play_path("live", "cam"), "/live/cam.flv");
        assert_eq!(
            locate_path("live", "cam 1&x"),
            "/api/v1/locate?app=live&stream=cam%201%26x&protocol=rtmp"
        );
    }
}
