//! Signed frames through `decide` and `settle`, without an API server: the origin gets
//! `--sign-key` from the key Secret, pullers one `--verify-key` per trusted key from the
//! verify-keys ConfigMap (no key in any argument or environment value), the status publishes
//! the public key and its id, a missing or broken Secret is refused naming the field, and
//! relays reporting verification failures make the Stream `Degraded` naming each hop.

mod common;

use common::fixture;
use common::world::{World, clock, condition, signing_key, with_reason};
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use surge_operator::decide::{Applied, Decision, Input, decide};
use surge_operator::integrity::{SIGNING_ITEM, SecretRead};
use surge_operator::observe::Observed;
use surge_wire::streams_api::IntegrityStats;

/// `openssl pkey -pubout` of common::world's signing key.
const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAkyBpJ4ZcD22khdXNGRQyhIbAmEGgiWGpiHZ1nfOopzQ=\n-----END PUBLIC KEY-----\n";

/// One reconcile of `w` with the observation changed by `change`: (events, status, planned).
fn reconcile_with(
    w: &mut World,
    t_s: f64,
    change: impl FnOnce(&mut Observed),
) -> (
    surge_operator::decide::Outcome,
    Option<surge_operator::decide::Planned>,
) {
    let mut observed = w.observed(10);
    change(&mut observed);
    let input = Input {
        stream: &w.stream,
        target: &w.target,
        observed: &observed,
        clock: clock(t_s),
        cfg: &w.cfg,
    };
    let (outcome, planned) = match decide(&input, &w.memory) {
        Decision::Done(o) => (o, None),
        Decision::Apply(p) => (p.clone().settle(&input, &Applied::default()), Some(p)),
    };
    w.memory = outcome.memory.clone();
    if let Some(s) = &outcome.status {
        w.stream.status = Some(s.clone());
    }
    (outcome, planned)
}

fn args(d: &Deployment) -> Vec<String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
        .containers[0]
        .args
        .clone()
        .unwrap_or_default()
}

fn flag_values(args: &[String], flag: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].clone())
        .collect()
}

#[test]
fn by_default_the_origin_signs_and_every_puller_verifies_with_mounted_files() {
    let mut w = World::new(fixture("minimal.yaml"));
    let (outcome, planned) = reconcile_with(&mut w, 0.0, |_| {});
    let planned = planned.expect("a tree");
    let keys = planned.keys.as_ref().expect("signing is on by default");
    assert_eq!(
        keys.secret,
        Some(format!("{}-signing-key", w.target.stream))
    );

    for (_, d) in &planned.objects {
        let pod = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod");
        let relay = &pod.containers[0];
        let a = args(d);
        let origin = d.name_any().ends_with("-origin");
        if origin {
            assert_eq!(
                flag_values(&a, "--sign-key"),
                ["/etc/surge-signing/signing.key"]
            );
            assert!(flag_values(&a, "--verify-key").is_empty());
            let volume = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == "signing-key");
            let secret = volume
                .and_then(|v| v.secret.as_ref())
                .expect("the Secret mounted");
            assert_eq!(secret.secret_name.as_deref(), keys.secret.as_deref());
        } else {
            assert_eq!(
                flag_values(&a, "--verify-key"),
                ["/etc/surge-verify/key-0.pem"]
            );
            assert!(
                flag_values(&a, "--sign-key").is_empty(),
                "only the origin signs"
            );
            let volume = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == "verify-keys");
            let map = volume
                .and_then(|v| v.config_map.as_ref())
                .expect("ConfigMap mounted");
            assert_eq!(map.name, format!("{}-verify-keys", w.target.stream));
            assert!(
                pod.volumes.iter().flatten().all(|v| v.secret.is_none()),
                "the private key is mounted in the origin only"
            );
        }
        let mount_dirs: Vec<&str> = relay
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        let dir = if origin {
            "/etc/surge-signing"
        } else {
            "/etc/surge-verify"
        };
        assert!(mount_dirs.contains(&dir), "{mount_dirs:?}");
        // No key material in arguments or environment values.
        let values = a
            .iter()
            .chain(relay.env.iter().flatten().filter_map(|e| e.value.as_ref()));
        assert!(values.into_iter().all(|v| !v.contains("BEGIN")));
        let annotations = d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        assert_eq!(
            annotations.get("surge.dev/integrity-key-ids"),
            Some(&keys.signing.id().to_string()),
            "a key change rolls the tier"
        );
    }
    let map = planned
        .verify_keys
        .as_ref()
        .expect("the verify-keys ConfigMap");
    assert_eq!(map.owner_references()[0].uid, w.target.owner.uid);
    assert_eq!(
        map.data
            .as_ref()
            .and_then(|d| d.get("key-0.pem"))
            .map(String::as_str),
        Some(PUBLIC_PEM)
    );

    let status = outcome.status.expect("status");
    let integrity = status.integrity.expect("status.integrity");
    assert_eq!(integrity.public_key, PUBLIC_PEM);
    assert_eq!(integrity.key_id, keys.signing.id().to_string());
    assert_eq!(integrity.key_id.len(), 16);
}

#[test]
fn signing_off_builds_no_keys_and_a_bad_secret_is_refused_naming_the_field() {
    let mut stream = fixture("minimal.yaml");
    stream.spec.integrity.enabled = false;
    let mut w = World::new(stream);
    let (outcome, planned) = reconcile_with(&mut w, 0.0, |o| o.signing_key = None);
    let planned = planned.expect("a tree");
    assert!(planned.keys.is_none() && planned.verify_keys.is_none());
    for (_, d) in &planned.objects {
        let a = args(d);
        assert!(!a.contains(&"--sign-key".to_string()) && !a.contains(&"--verify-key".to_string()));
    }
    assert!(outcome.status.expect("status").integrity.is_none());

    let mut stream = fixture("minimal.yaml");
    stream.spec.integrity.signing_key_secret_ref = Some(surge_operator::crd::SecretRef {
        name: "broadcast-key".into(),
    });
    let mut w = World::new(stream);
    let (outcome, planned) = reconcile_with(&mut w, 0.0, |o| {
        o.signing_key = Some(SecretRead::Missing);
    });
    assert!(planned.is_none(), "nothing is built without its keys");
    let status = outcome.status.expect("status");
    let (ready, reason, message) = condition(&status, "Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        message.contains("spec.integrity.signingKeySecretRef.name")
            && message.contains("Secret broadcast-key not found"),
        "{message}"
    );
    assert_eq!(with_reason(&outcome.events, "InvalidSpec").len(), 1);

    let (outcome, _) = reconcile_with(&mut w, 5.0, |o| {
        o.signing_key = Some(SecretRead::Data(
            [(SIGNING_ITEM.to_string(), b"not a key".to_vec())].into(),
        ));
    });
    let (_, _, message) = condition(outcome.status.as_ref().expect("status"), "Degraded");
    assert!(
        message.contains("signing.key: no PEM key found"),
        "{message}"
    );

    // Fixed: built again.
    let (_, planned) = reconcile_with(&mut w, 10.0, |o| o.signing_key = Some(signing_key()));
    assert!(planned.is_some_and(|p| p.keys.is_some()));
}

#[test]
fn verification_failures_make_the_stream_degraded_naming_the_relay_and_its_upstream() {
    let mut w = World::new(fixture("minimal.yaml"));
    let edge_pod = format!("{}-0", w.edge());
    let report = |age| IntegrityStats {
        failures: 2,
        last_upstream: "rtmp://talk-origin.default.svc.cluster.local:1935/live".into(),
        last_reason: "bad_signature".into(),
        last_failure_age_s: age,
    };
    let (outcome, _) = reconcile_with(&mut w, 0.0, |_| {});
    assert_eq!(
        condition(outcome.status.as_ref().expect("status"), "Degraded").0,
        "False"
    );

    let pod = edge_pod.clone();
    let (outcome, _) = reconcile_with(&mut w, 5.0, |o| {
        o.integrity.insert(pod, report(3));
    });
    let (degraded, reason, message) =
        condition(outcome.status.as_ref().expect("status"), "Degraded");
    assert_eq!(
        (degraded.as_str(), reason.as_str()),
        ("True", "IntegrityFailure")
    );
    assert!(
        message.contains(&format!(
            "{edge_pod} from rtmp://talk-origin.default.svc.cluster.local:1935/live (bad_signature"
        )),
        "{message}"
    );
    let events = with_reason(&outcome.events, "IntegrityFailure");
    assert_eq!(events.len(), 1, "{:?}", outcome.events);
    assert!(events[0].note.contains(&edge_pod));

    // The same hop again: no new event; the Stream stays degraded.
    let pod = edge_pod.clone();
    let (outcome, _) = reconcile_with(&mut w, 10.0, |o| {
        o.integrity.insert(pod, report(8));
    });
    assert!(with_reason(&outcome.events, "IntegrityFailure").is_empty());
    assert_eq!(
        condition(outcome.status.as_ref().expect("status"), "Degraded").1,
        "IntegrityFailure"
    );

    // Long past: not degraded any more.
    let pod = edge_pod.clone();
    let (outcome, _) = reconcile_with(&mut w, 15.0, |o| {
        o.integrity.insert(pod, report(3600));
    });
    let (degraded, reason, _) = condition(outcome.status.as_ref().expect("status"), "Degraded");
    assert_eq!(
        (degraded.as_str(), reason.as_str()),
        ("False", "AsExpected")
    );
}
