//! Signed frames on the operator's side (`spec.integrity`), pure: which Secret holds a
//! Stream's signing key, the keys read from it, the status that publishes the public key,
//! and the hops whose relays reported verification failures (the `Degraded` condition). The
//! Secret is read (and generated when the Stream names none) in `signing_secret` (IO); the
//! relays get the keys as files (`build::integrity`).

use std::collections::BTreeMap;

use surge_integrity::{SigningKey, VerifyKey};
use surge_wire::streams_api::IntegrityStats;

use crate::crd::{IntegrityStatus, StreamSpec};
use crate::validate::FieldError;

/// The Secret's data key holding the Ed25519 private key (PKCS#8 PEM).
pub const SIGNING_ITEM: &str = "signing.key";
/// The Secret's optional data key with more public keys (PEM blocks) relays still trust.
pub const TRUSTED_ITEM: &str = "trusted.pem";
/// A failure reported this long ago (or less) keeps the Stream `Degraded`: the relay sets a
/// tampering upstream aside for as long (`integrity_quarantine`, 5 minutes).
pub const RECENT_FAILURE_SECONDS: u64 = 300;

/// The Secret the operator generates for a Stream that names none.
pub fn generated_secret_name(stream: &str) -> String {
    format!("{stream}-signing-key")
}

/// Where a Stream's signing key is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySecret {
    pub name: String,
    /// The operator's own (created when missing), not `signingKeySecretRef`'s.
    pub generated: bool,
}

/// The Secret of a Stream that signs; `None` with `spec.integrity.enabled: false`, and with
/// external upstreams (`spec.upstream`: this cluster runs no origin to sign with it).
pub fn key_secret(stream: &str, spec: &StreamSpec) -> Option<KeySecret> {
    if !spec.integrity.enabled || spec.has_external_upstreams() {
        return None;
    }
    Some(match &spec.integrity.signing_key_secret_ref {
        Some(r) => KeySecret {
            name: r.name.clone(),
            generated: false,
        },
        None => KeySecret {
            name: generated_secret_name(stream),
            generated: true,
        },
    })
}

/// What observing found of the key Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRead {
    /// Its data by key.
    Data(BTreeMap<String, Vec<u8>>),
    Missing,
    /// It could not be read or made (the API server's words).
    Failed(String),
}

/// A Stream's keys, as read from its Secret (and `spec.integrity.trustedKeys`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// The Secret with the signing key; `None` when this cluster does not sign (external
    /// upstreams): its relays only verify.
    pub secret: Option<String>,
    /// The public half of the signing key; with external upstreams, the first trusted key
    /// (the remote origin's).
    pub signing: VerifyKey,
    /// What pullers trust: the signing key first, then `trusted.pem`'s and
    /// `spec.integrity.trustedKeys` (no repeats).
    pub trusted: Vec<VerifyKey>,
}

/// The keys of a Stream, or the field to blame. `Ok(None)`: signing is off.
pub fn keys(
    stream: &str,
    spec: &StreamSpec,
    read: Option<&SecretRead>,
) -> Result<Option<Keys>, FieldError> {
    if spec.integrity.enabled && spec.has_external_upstreams() {
        return verify_only(spec).map(Some);
    }
    let Some(secret) = key_secret(stream, spec) else {
        return Ok(None);
    };
    let field = if secret.generated {
        "spec.integrity"
    } else {
        "spec.integrity.signingKeySecretRef.name"
    };
    let fail = |message: String| FieldError {
        field: field.to_string(),
        message,
    };
    let name = &secret.name;
    let data = match read {
        Some(SecretRead::Data(data)) => data,
        Some(SecretRead::Missing) => {
            return Err(fail(format!("Secret {name} not found")));
        }
        Some(SecretRead::Failed(why)) => {
            return Err(fail(format!("Secret {name} could not be read: {why}")));
        }
        None => return Err(fail(format!("Secret {name} was not read"))),
    };
    let pem = data
        .get(SIGNING_ITEM)
        .ok_or_else(|| fail(format!("Secret {name} has no {SIGNING_ITEM}")))?;
    let signing = SigningKey::from_pem(pem)
        .map_err(|e| fail(format!("Secret {name}: {SIGNING_ITEM}: {e}")))?
        .public_key();
    let mut trusted = vec![signing.clone()];
    if let Some(more) = data.get(TRUSTED_ITEM) {
        let more = VerifyKey::all_from_pem(more)
            .map_err(|e| fail(format!("Secret {name}: {TRUSTED_ITEM}: {e}")))?;
        add_new(&mut trusted, more);
    }
    add_new(&mut trusted, spec_keys(spec)?);
    Ok(Some(Keys {
        secret: Some(secret.name),
        signing,
        trusted,
    }))
}

/// With external upstreams nothing is signed here: the relays verify with the keys the
/// Stream lists (the remote origin's), the first standing as the signing key.
fn verify_only(spec: &StreamSpec) -> Result<Keys, FieldError> {
    let mut trusted = Vec::new();
    add_new(&mut trusted, spec_keys(spec)?);
    let signing = trusted.first().cloned().ok_or_else(|| FieldError {
        field: "spec.integrity.trustedKeys".into(),
        message: "with spec.upstream, list the remote origin's public key".into(),
    })?;
    Ok(Keys {
        secret: None,
        signing,
        trusted,
    })
}

/// `spec.integrity.trustedKeys`, parsed.
fn spec_keys(spec: &StreamSpec) -> Result<Vec<VerifyKey>, FieldError> {
    spec.integrity
        .trusted_keys
        .iter()
        .enumerate()
        .map(|(i, pem)| {
            crate::upstream::trusted_key(pem).map_err(|message| FieldError {
                field: format!("spec.integrity.trustedKeys[{i}]"),
                message,
            })
        })
        .collect()
}

fn add_new(trusted: &mut Vec<VerifyKey>, more: Vec<VerifyKey>) {
    for key in more {
        if !trusted.contains(&key) {
            trusted.push(key);
        }
    }
}

/// `status.integrity`: what a viewer needs to check the stream itself.
pub fn status(keys: &Keys) -> IntegrityStatus {
    IntegrityStatus {
        signer: if keys.secret.is_some() {
            "origin"
        } else {
            "upstream"
        }
        .to_string(),
        public_key: keys.signing.to_pem(),
        key_id: keys.signing.id().to_string(),
        trusted_key_ids: keys.trusted.iter().map(|k| k.id().to_string()).collect(),
        secret: keys.secret.clone().unwrap_or_default(),
    }
}

/// A relay whose upstream sent frames that failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailingHop {
    /// The relay (pod) that noticed.
    pub relay: String,
    /// The upstream it dropped.
    pub upstream: String,
    pub reason: String,
    pub failures: u64,
    pub age_s: u64,
}

impl std::fmt::Display for FailingHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} from {} ({}, {} s ago, {} in all)",
            self.relay, self.upstream, self.reason, self.age_s, self.failures
        )
    }
}

/// The relays (by pod name) whose last verification failure is recent, most recent first.
pub fn failing_hops(reports: &BTreeMap<String, IntegrityStats>) -> Vec<FailingHop> {
    let mut hops: Vec<FailingHop> = reports
        .iter()
        .filter(|(_, s)| s.failures > 0 && s.last_failure_age_s <= RECENT_FAILURE_SECONDS)
        .map(|(relay, s)| FailingHop {
            relay: relay.clone(),
            upstream: s.last_upstream.clone(),
            reason: s.last_reason.clone(),
            failures: s.failures,
            age_s: s.last_failure_age_s,
        })
        .collect();
    hops.sort_by(|a, b| a.age_s.cmp(&b.age_s).then(a.relay.cmp(&b.relay)));
    hops
}

/// The `Degraded` message naming the failing hops (at most five, then a count).
pub fn degraded_message(hops: &[FailingHop]) -> String {
    let shown: Vec<String> = hops.iter().take(5).map(ToString::to_string).collect();
    let more = hops.len().saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "signed frames failed verification at {} relay(s), each dropping its upstream: {}{tail}",
        hops.len(),
        shown.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIFjfaxQn836f1im3Oe6zm0hPpqIbt6rX9bWLG59C0e7\n-----END PRIVATE KEY-----\n";
    const PUB_A: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAkyBpJ4ZcD22khdXNGRQyhIbAmEGgiWGpiHZ1nfOopzQ=\n-----END PUBLIC KEY-----\n";
    const KEY_B: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIk8XE7BmxkewpD4T9xRg6LJ67DkZiBl5y9mJafS1BLp\n-----END PRIVATE KEY-----\n";

    fn spec(integrity: serde_json::Value) -> StreamSpec {
        serde_json::from_value(serde_json::json!({
            "origin": {"region": "eu"},
            "regions": [{"name": "eu"}],
            "integrity": integrity,
        }))
        .expect("a Stream spec")
    }

    fn data(items: &[(&str, &str)]) -> SecretRead {
        SecretRead::Data(
            items
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn signing_is_on_by_default_with_a_generated_secret() {
        let on = spec(serde_json::json!({}));
        assert_eq!(
            key_secret("live", &on),
            Some(KeySecret {
                name: "live-signing-key".into(),
                generated: true
            })
        );
        let named = spec(serde_json::json!({"signingKeySecretRef": {"name": "k"}}));
        assert_eq!(key_secret("live", &named).map(|s| s.generated), Some(false));
        let off = spec(serde_json::json!({"enabled": false}));
        assert_eq!(key_secret("live", &off), None);
        assert_eq!(keys("live", &off, None), Ok(None));
    }

    #[test]
    fn the_public_key_and_its_id_are_published_and_trusted_keys_follow() {
        let b_pub = SigningKey::from_pem(KEY_B.as_bytes())
            .expect("b")
            .public_key()
            .to_pem();
        let read = data(&[
            (SIGNING_ITEM, KEY_A),
            (TRUSTED_ITEM, &format!("{b_pub}{PUB_A}")),
        ]);
        let keys = keys("live", &spec(serde_json::json!({})), Some(&read))
            .expect("valid")
            .expect("on");
        let status = status(&keys);
        assert_eq!(
            status.public_key, PUB_A,
            "as openssl pkey -pubout writes it"
        );
        assert_eq!(status.key_id.len(), 16);
        assert_eq!(status.key_id, keys.signing.id().to_string());
        assert_eq!(
            status.trusted_key_ids.len(),
            2,
            "the signing key is not repeated"
        );
        assert_eq!(status.trusted_key_ids[0], status.key_id);
        assert_eq!(status.secret, "live-signing-key");
    }

    #[test]
    fn a_missing_or_unreadable_key_names_the_field() {
        let named = spec(serde_json::json!({"signingKeySecretRef": {"name": "mine"}}));
        let field = "spec.integrity.signingKeySecretRef.name";
        let e = keys("live", &named, Some(&SecretRead::Missing)).expect_err("missing");
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            (field, "Secret mine not found")
        );
        let e = keys("live", &named, Some(&data(&[("other", KEY_A)]))).expect_err("no key");
        assert!(e.message.contains("has no signing.key"), "{e:?}");
        let e = keys("live", &named, Some(&data(&[(SIGNING_ITEM, "junk")]))).expect_err("junk");
        assert!(e.message.contains("signing.key: no PEM key found"), "{e:?}");
        let e = keys("live", &named, Some(&data(&[(SIGNING_ITEM, PUB_A)]))).expect_err("public");
        assert_eq!(e.field, field);
        let bad_trust = data(&[
            (SIGNING_ITEM, KEY_A),
            (
                TRUSTED_ITEM,
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            ),
        ]);
        let e = keys("live", &named, Some(&bad_trust)).expect_err("bad trust list");
        assert!(e.message.contains("trusted.pem"), "{e:?}");
        let generated = spec(serde_json::json!({}));
        let e = keys(
            "live",
            &generated,
            Some(&SecretRead::Failed("forbidden".into())),
        )
        .expect_err("failed");
        assert_eq!(e.field, "spec.integrity");
        assert!(
            e.message
                .contains("live-signing-key could not be read: forbidden")
        );
    }

    #[test]
    fn recent_failures_name_the_relay_and_its_upstream() {
        let stats = |failures, age, up: &str| IntegrityStats {
            failures,
            last_upstream: up.into(),
            last_reason: "bad_signature".into(),
            last_failure_age_s: age,
        };
        let reports = BTreeMap::from([
            (
                "edge-a".to_string(),
                stats(1, 40, "rtmp://s-eu-reflector:1935/live"),
            ),
            (
                "edge-b".to_string(),
                stats(3, 2, "rtmp://10.0.0.7:1935/live"),
            ),
            (
                "edge-c".to_string(),
                stats(9, RECENT_FAILURE_SECONDS + 1, "rtmp://old"),
            ),
            ("edge-d".to_string(), stats(0, 0, "")),
        ]);
        let hops = failing_hops(&reports);
        let names: Vec<&str> = hops.iter().map(|h| h.relay.as_str()).collect();
        assert_eq!(
            names,
            ["edge-b", "edge-a"],
            "most recent first, old ones left out"
        );
        let message = degraded_message(&hops);
        assert!(
            message.contains(
                "edge-b from rtmp://10.0.0.7:1935/live (bad_signature, 2 s ago, 3 in all)"
            ),
            "{message}"
        );
        assert!(message.starts_with("signed frames failed verification at 2 relay(s)"));
        assert!(failing_hops(&BTreeMap::new()).is_empty());
    }
}
