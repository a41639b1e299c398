//! External upstreams (`spec.upstream`): a Stream whose origin runs outside this cluster, in
//! another cluster or at another service. Pure: the URLs' syntax (the CRD's CEL rules, again
//! in Rust), their one written form, and which of them the relays pull from now (for
//! `status.upstream` and the `UpstreamFailover` condition).
//!
//! No message here repeats a URL as given: a refused entry may hold credentials, and the
//! messages go to the status, events and logs. Only URLs that passed (no `user:password@`,
//! no query) are shown, in their written form.

use std::collections::BTreeMap;

use crate::crd::{MAX_UPSTREAM_LENGTH, MAX_UPSTREAMS, StreamSpec, UpstreamStatus, UpstreamUse};
use crate::validate::FieldError;

/// Port of an `rtmp://` URL that names none.
pub const RTMP_PORT: u16 = 1935;
/// Port of an `rtmps://` URL that names none (as ffmpeg and OBS assume).
pub const RTMPS_PORT: u16 = 443;
/// Most trusted public keys (matches the CRD schema).
pub const MAX_TRUSTED_KEYS: usize = 8;

/// One external upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalUpstream {
    /// `rtmps://` (RTMP in TLS).
    pub tls: bool,
    /// Host name (lower-case) or address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub app: String,
}

impl ExternalUpstream {
    /// Parses `rtmp[s]://HOST[:PORT]/APP`; the error says what is wrong without repeating
    /// the text.
    pub fn parse(text: &str) -> Result<ExternalUpstream, String> {
        if text.len() > MAX_UPSTREAM_LENGTH {
            return Err(format!("must be at most {MAX_UPSTREAM_LENGTH} characters"));
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("must be an rtmp:// or rtmps:// URL")?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => false,
            "rtmps" => true,
            _ => return Err("must be an rtmp:// or rtmps:// URL".into()),
        };
        if text.contains('@') {
            return Err(
                "must not carry credentials (user:password@): the URLs are shown in the status"
                    .into(),
            );
        }
        if text.contains('?') || text.contains('#') {
            return Err(
                "must not have a query or fragment: the URLs are shown in the status".into(),
            );
        }
        let (authority, path) = rest
            .split_once('/')
            .ok_or("must name an app: rtmp://HOST[:PORT]/APP")?;
        let default_port = if tls { RTMPS_PORT } else { RTMP_PORT };
        let (host, port) =
            surge_wire::url::split_host_port(authority, default_port).map_err(|e| match e {
                surge_wire::url::AuthorityError::BadIpv6 => {
                    "has an unterminated IPv6 address (missing `]`)".to_string()
                }
                surge_wire::url::AuthorityError::InvalidPort(_) => {
                    "the port must be 1-65535".into()
                }
            })?;
        if !valid_host(host, authority.starts_with('[')) {
            return Err("must name a host: a DNS name or an IP address".into());
        }
        let app = path.strip_suffix('/').unwrap_or(path);
        if app.is_empty() {
            return Err("must name an app: rtmp://HOST[:PORT]/APP".into());
        }
        if !app
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(
                "must have one app path segment of A-Z a-z 0-9 _ . - (the stream name is this Stream's)"
                    .into(),
            );
        }
        Ok(ExternalUpstream {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            app: app.to_string(),
        })
    }

    /// The written form: scheme, host and port spelled out, as the relay reports the
    /// upstream it is connected to.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        let address = surge_wire::url::socket_addr(&self.host, self.port);
        format!("{scheme}://{address}/{}", self.app)
    }
}

/// A DNS name (letters, digits, `-`, `.`, no empty label) or, in brackets, an IPv6 address.
fn valid_host(host: &str, bracketed: bool) -> bool {
    if bracketed {
        return host.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The written form of every valid `spec.upstream` entry, in order (all of them when the
/// spec is valid).
pub fn configured(spec: &StreamSpec) -> Vec<String> {
    spec.upstream
        .iter()
        .filter_map(|u| ExternalUpstream::parse(u).ok())
        .map(|u| u.url())
        .collect()
}

/// The problems of `spec.upstream` and of what goes with it: an origin (required without,
/// refused with), no signing here, and keys to verify with.
pub fn errors(spec: &StreamSpec) -> Vec<FieldError> {
    let err = |field: String, message: String| FieldError { field, message };
    let mut errors = Vec::new();
    if spec.upstream.len() > MAX_UPSTREAMS {
        errors.push(err(
            "spec.upstream".into(),
            format!("at most {MAX_UPSTREAMS} upstreams"),
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, text) in spec.upstream.iter().enumerate() {
        let field = format!("spec.upstream[{i}]");
        match ExternalUpstream::parse(text) {
            Ok(u) => {
                let url = u.url();
                if let Some(j) = seen.iter().position(|s| *s == url) {
                    errors.push(err(
                        field,
                        format!("the same upstream as spec.upstream[{j}]"),
                    ));
                }
                seen.push(url);
            }
            Err(why) => {
                errors.push(err(field, why));
                seen.push(String::new());
            }
        }
    }
    let external = spec.has_external_upstreams();
    match (&spec.origin, external) {
        (None, false) => errors.push(err(
            "spec.origin".into(),
            "required unless spec.upstream names the external upstreams to pull from".into(),
        )),
        (Some(_), true) => errors.push(err(
            "spec.origin".into(),
            "must be left out with spec.upstream: no origin runs in this cluster".into(),
        )),
        _ => {}
    }
    if external && spec.publish.is_some() {
        errors.push(err(
            "spec.publish".into(),
            "must be left out with spec.upstream: this cluster takes no publisher (publish keys belong to the origin's Stream)".into(),
        ));
    }
    if external && spec.integrity.signing_key_secret_ref.is_some() {
        errors.push(err(
            "spec.integrity.signingKeySecretRef".into(),
            "must be left out with spec.upstream: this cluster does not sign, it verifies with spec.integrity.trustedKeys".into(),
        ));
    }
    if external && spec.integrity.enabled && spec.integrity.trusted_keys.is_empty() {
        errors.push(err(
            "spec.integrity.trustedKeys".into(),
            "with spec.upstream, list the remote origin's public key (its Stream's status.integrity.publicKey), or set spec.integrity.enabled: false to pull unverified".into(),
        ));
    }
    if spec.integrity.trusted_keys.len() > MAX_TRUSTED_KEYS {
        errors.push(err(
            "spec.integrity.trustedKeys".into(),
            format!("at most {MAX_TRUSTED_KEYS} keys"),
        ));
    }
    for (i, pem) in spec.integrity.trusted_keys.iter().enumerate() {
        if let Err(why) = trusted_key(pem) {
            errors.push(err(format!("spec.integrity.trustedKeys[{i}]"), why));
        }
    }
    errors
}

/// One `spec.integrity.trustedKeys` entry: exactly one Ed25519 public key.
pub fn trusted_key(pem: &str) -> Result<surge_integrity::VerifyKey, String> {
    if pem.contains("PRIVATE KEY") {
        // Said without the text: a private key must go nowhere else.
        return Err(
            "is a private key: list public keys only (openssl pkey -pubout); replace this key, it is no longer private".into(),
        );
    }
    let keys = surge_integrity::VerifyKey::all_from_pem(pem.as_bytes())
        .map_err(|e| format!("not an Ed25519 public key in PEM: {e}"))?;
    match keys.as_slice() {
        [key] => Ok(key.clone()),
        [] => Err("holds no PEM public key (-----BEGIN PUBLIC KEY-----)".into()),
        _ => Err("must hold one public key: list each key as an entry of its own".into()),
    }
}

/// The index into `configured` of the upstream `reported` names (a relay's connected
/// upstream, as `/api/v1/streams` says it), if it is one of them.
pub fn index_of(configured: &[String], reported: &str) -> Option<usize> {
    let url = ExternalUpstream::parse(reported).ok()?.url();
    configured.iter().position(|c| *c == url)
}

/// `status.upstream`: per configured upstream, the relays connected to it now
/// (`connected`: relay name → its connected upstream, in-cluster parents included).
pub fn status(configured: &[String], connected: &BTreeMap<String, String>) -> UpstreamStatus {
    let mut counts = vec![0u32; configured.len()];
    for url in connected.values() {
        if let Some(i) = index_of(configured, url) {
            counts[i] += 1;
        }
    }
    // Most relays; on a tie the more preferred one (max_by_key keeps the last maximum).
    let in_use = counts
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, n)| **n > 0)
        .max_by_key(|(_, n)| **n)
        .map(|(i, _)| configured[i].clone());
    UpstreamStatus {
        in_use,
        relays: counts.iter().sum(),
        urls: configured
            .iter()
            .zip(&counts)
            .map(|(url, n)| UpstreamUse {
                url: url.clone(),
                relays: *n,
            })
            .collect(),
    }
}

/// The indices of the upstreams some relay is connected to, in order.
pub fn indices_in_use(status: &UpstreamStatus) -> Vec<usize> {
    status
        .urls
        .iter()
        .enumerate()
        .filter(|(_, u)| u.relays > 0)
        .map(|(i, _)| i)
        .collect()
}

/// The `UpstreamFailover` condition: (failed over, reason, message). True when some relay
/// pulls from another upstream than the first one (reason `FailedOver` when all of them do,
/// `RelaysDisagree` when only some do).
pub fn failover(status: &UpstreamStatus) -> (bool, &'static str, String) {
    let on = |i: usize, u: &UpstreamUse| format!("{} on spec.upstream[{i}] ({})", u.relays, u.url);
    let used: Vec<(usize, &UpstreamUse)> = status
        .urls
        .iter()
        .enumerate()
        .filter(|(_, u)| u.relays > 0)
        .collect();
    match used.as_slice() {
        [] => (
            false,
            "NotConnected",
            "no relay is connected to an external upstream now".into(),
        ),
        [(0, u)] => (
            false,
            "Preferred",
            format!(
                "{} relay(s) pull from the preferred spec.upstream[0] ({})",
                u.relays, u.url
            ),
        ),
        [(i, u)] => (
            true,
            "FailedOver",
            format!(
                "{} relay(s) pull from spec.upstream[{i}] ({}), not from the preferred spec.upstream[0]",
                u.relays, u.url
            ),
        ),
        many => (
            true,
            "RelaysDisagree",
            format!(
                "relays pull from different upstreams: {}",
                many.iter()
                    .map(|(i, u)| on(*i, u))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_written_one_way() {
        let u = ExternalUpstream::parse("RTMP://Origin.Example/live").expect("valid");
        assert_eq!(u.url(), "rtmp://origin.example:1935/live");
        let u = ExternalUpstream::parse("rtmps://origin.example/live/").expect("valid");
        assert_eq!(u.url(), "rtmps://origin.example:443/live");
        let u = ExternalUpstream::parse("rtmp://[::1]:1937/app").expect("valid");
        assert_eq!(u.url(), "rtmp://[::1]:1937/app");
        let u = ExternalUpstream::parse("rtmp://[::1]/app").expect("valid");
        assert_eq!(u.port, 1935);
        let u = ExternalUpstream::parse("rtmp://10.0.0.7:19350/live").expect("valid");
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.7", 19350));
    }

    #[test]
    fn refusals_say_why_without_repeating_the_url() {
        for (text, why) in [
            ("http://h/live", "rtmp:// or rtmps://"),
            ("h:1935/live", "rtmp:// or rtmps://"),
            ("rtmp://user:s3cret@h/live", "credentials"),
            ("rtmp://h/live?token=s3cret", "query"),
            ("rtmp://h:0/live", "1-65535"),
            ("rtmp://h:99999/live", "1-65535"),
            ("rtmp://h:port/live", "1-65535"),
            ("rtmp://h", "must name an app"),
            ("rtmp://h/", "must name an app"),
            ("rtmp://h/live/s3cret", "one app path segment"),
            ("rtmp:///live", "host"),
            ("rtmp://bad_host/live", "host"),
            ("rtmp://[::1/live", "IPv6"),
            ("rtmp://[nope]/live", "host"),
        ] {
            let e = ExternalUpstream::parse(text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
            assert!(!e.contains("s3cret") && !e.contains(text), "{text}: {e}");
        }
    }

    fn connected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(r, u)| (r.to_string(), u.to_string()))
            .collect()
    }

    #[test]
    fn relays_are_counted_per_upstream_and_the_majority_is_in_use() {
        let configured = vec![
            "rtmp://a.example:1935/live".to_string(),
            "rtmp://b.example:1935/live".to_string(),
        ];
        // In-cluster parents are not external upstreams; the relay's spelling matches.
        let s = status(
            &configured,
            &connected(&[
                (
                    "edge-1",
                    "rtmp://s-eu-reflector-1.media.svc.cluster.local:1935/live",
                ),
                ("refl-1", "rtmp://A.example:1935/live"),
            ]),
        );
        assert_eq!(s.in_use.as_deref(), Some("rtmp://a.example:1935/live"));
        assert_eq!((s.relays, s.urls[0].relays, s.urls[1].relays), (1, 1, 0));
        assert_eq!(failover(&s).1, "Preferred");
        assert_eq!(indices_in_use(&s), [0]);

        let s = status(
            &configured,
            &connected(&[
                ("e1", "rtmp://b.example:1935/live"),
                ("e2", "rtmp://b.example:1935/live"),
            ]),
        );
        assert_eq!(s.in_use.as_deref(), Some("rtmp://b.example:1935/live"));
        let (on, reason, message) = failover(&s);
        assert!(on);
        assert_eq!(reason, "FailedOver");
        assert!(
            message.contains("2 relay(s) pull from spec.upstream[1]"),
            "{message}"
        );

        // A tie goes to the preferred one; the split is named.
        let s = status(
            &configured,
            &connected(&[
                ("e1", "rtmp://b.example:1935/live"),
                ("e2", "rtmp://a.example:1935/live"),
            ]),
        );
        assert_eq!(s.in_use.as_deref(), Some("rtmp://a.example:1935/live"));
        let (on, reason, message) = failover(&s);
        assert!(on && reason == "RelaysDisagree", "{reason}");
        assert!(
            message.contains(
                "1 on spec.upstream[0] (rtmp://a.example:1935/live), 1 on spec.upstream[1]"
            ),
            "{message}"
        );

        let s = status(&configured, &BTreeMap::new());
        assert_eq!((s.in_use.as_deref(), s.relays), (None, 0));
        assert_eq!(failover(&s).1, "NotConnected");
    }
}
