//! A Stream whose origin is outside this cluster (`spec.upstream`): no origin Deployment,
//! Service or PodDisruptionBudget (one left from before is an orphan); each region's top tier
//! pulls from the external URLs in their order, the tiers below fall back to them after
//! their parent; nothing is signed here and the relays verify with the listed keys; the
//! status shows which upstream the relays pull from, and an UpstreamFailover condition and
//! events when they leave the first one. Bad entries are refused naming `spec.upstream[i]`.

mod common;

use std::collections::BTreeMap;

use common::world::{World, condition, with_reason};
use common::{target, tree_with};
use kube::ResourceExt;
use surge_operator::build::relay_args;
use surge_operator::config::OperatorConfig;
use surge_operator::crd::Stream;
use surge_operator::labels::TierKind;
use surge_operator::validate::validate;

const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAkyBpJ4ZcD22khdXNGRQyhIbAmEGgiWGpiHZ1nfOopzQ=\n-----END PUBLIC KEY-----\n";
const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIFjfaxQn836f1im3Oe6zm0hPpqIbt6rX9bWLG59C0e7\n-----END PRIVATE KEY-----\n";
const A: &str = "rtmp://origin-a.example:1935/live";
const B: &str = "rtmp://10.1.2.3:19350/ingest";

/// `final` in `media`: eu-west small enough for edges only, ap-south with a reflector level.
fn stream(spec_extra: &str) -> Stream {
    let key = serde_json::to_string(PUBLIC).expect("JSON string");
    let yaml = format!(
        "apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {{name: final, namespace: media}}
spec:
  upstream: [rtmp://Origin-A.example/live/, 'rtmp://10.1.2.3:19350/ingest']
  integrity: {{trustedKeys: [{key}]}}
  tree: {{fanout: 8}}
  regions:
    - {{name: eu-west, maxEdges: 2}}
    - {{name: ap-south, maxEdges: 40}}
{spec_extra}"
    );
    serde_saphyr::from_str(&yaml).expect("a Stream")
}

fn upstream_args(args: &[String]) -> Vec<&str> {
    args.windows(2)
        .filter(|w| w[0] == "--upstream")
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn each_regions_top_tier_pulls_from_the_external_upstreams_in_order() {
    let s = stream("");
    assert!(validate("final", &s.spec).is_empty());
    let (t, cfg) = (target(&s), OperatorConfig::default());
    let tree = tree_with(&s, 100);
    assert!(tree.origin().is_none());
    assert!(tree.tiers.iter().all(|t| t.kind != TierKind::Origin));
    let args = |name: &str| {
        let tier = tree.tiers.iter().find(|t| t.name == name).expect(name);
        relay_args(&t, &s.spec, tier, &cfg)
    };
    // Edges only in eu-west: they are its top tier.
    let edge = args("final-eu-west-edge");
    assert_eq!(upstream_args(&edge), [A, B], "{edge:?}");
    let prewarm = edge.windows(2).find(|w| w[0] == "--prewarm");
    assert_eq!(prewarm.map(|w| w[1].as_str()), Some("live/final"));
    // ap-south: its reflector level is the top tier; the edges pull from it, then from the
    // external upstreams (an idle level is passed over, as the origin is otherwise).
    let reflector = args("final-ap-south-reflector-1");
    assert_eq!(upstream_args(&reflector), [A, B], "{reflector:?}");
    let edge = args("final-ap-south-edge");
    assert_eq!(
        upstream_args(&edge),
        [
            "rtmp://final-ap-south-reflector-1.media.svc.cluster.local:1935/live",
            A,
            B
        ]
    );
}

#[test]
fn no_origin_objects_are_built_and_the_relays_only_verify() {
    let mut w = World::new(stream(""));
    // An origin from before spec.upstream was set: not kept, so applying deletes it.
    w.deployments.insert(
        "final-origin".into(),
        ("eu-west".into(), TierKind::Origin, 1),
    );
    let r = w.reconcile(0.0, 10);
    let planned = r.planned.expect("a tree");
    let names: Vec<String> = planned
        .objects
        .iter()
        .map(|(svc, d)| format!("{} {}", svc.name_any(), d.name_any()))
        .chain(planned.pdbs.iter().map(|p| p.name_any()))
        .collect();
    assert!(names.iter().all(|n| !n.contains("origin")), "{names:?}");
    assert!(!planned.keep.contains("final-origin"), "{:?}", planned.keep);
    assert!(planned.keep.contains("final-eu-west-edge"));

    // The verify keys are the listed one; nothing mounts a Secret or signs.
    let map = planned.verify_keys.as_ref().expect("the trusted keys");
    let data = map.data.as_ref().expect("data");
    assert_eq!(data.get("key-0.pem").map(String::as_str), Some(PUBLIC));
    for (_, d) in &planned.objects {
        let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        let pod = pod.expect("a pod template");
        let args = pod.containers[0].args.clone().unwrap_or_default();
        assert!(args.iter().any(|a| a == "--verify-key"), "{args:?}");
        assert!(!args.iter().any(|a| a == "--sign-key"), "{args:?}");
        assert!(pod.volumes.iter().flatten().all(|v| v.secret.is_none()));
    }

    let status = r.outcome.status.expect("a status");
    assert_eq!(status.origin, None);
    assert_eq!(status.endpoints.ingest, "", "nothing to publish to here");
    assert_eq!(status.endpoints.playback.len(), 2);
    let integrity = status.integrity.expect("status.integrity");
    assert_eq!(integrity.signer, "upstream");
    assert_eq!(integrity.public_key, PUBLIC);
    assert_eq!(integrity.secret, "");
    let upstream = status.upstream.expect("status.upstream");
    let urls: Vec<&str> = upstream.urls.iter().map(|u| u.url.as_str()).collect();
    assert_eq!(urls, [A, B]);
    assert_eq!((upstream.in_use, upstream.relays), (None, 0));
}

#[test]
fn unverified_pulls_need_integrity_off() {
    let mut w = World::new(stream("").clone());
    w.stream.spec.integrity =
        serde_json::from_value(serde_json::json!({"enabled": false})).expect("integrity");
    let r = w.reconcile(0.0, 0);
    let planned = r.planned.expect("a tree");
    assert!(planned.verify_keys.is_none());
    for (_, d) in &planned.objects {
        let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        let args = pod.expect("pod").containers[0]
            .args
            .clone()
            .unwrap_or_default();
        assert!(!args.iter().any(|a| a == "--verify-key"), "{args:?}");
    }
    assert_eq!(r.outcome.status.expect("status").integrity, None);
}

#[test]
fn invalid_entries_are_refused_naming_the_field_without_repeating_them() {
    let errors = |extra: &str| {
        let mut s = stream("");
        let patch: serde_json::Value = serde_saphyr::from_str(extra).expect("YAML");
        let mut spec = serde_json::to_value(&s.spec).expect("spec");
        for (k, v) in patch.as_object().expect("an object") {
            spec[k] = v.clone();
        }
        s.spec = serde_json::from_value(spec).expect("a spec");
        validate("final", &s.spec)
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    };
    let e = errors(
        "upstream: [rtmp://a/live, 'rtmp://user:s3cret@b/live', 'rtmp://c/live?k=s3cret', http://d/live, rtmp://e:70000/live, rtmp://f, rtmp://A:1935/live]",
    );
    let text = e.join("\n");
    assert!(!text.contains("s3cret"), "{text}");
    for (field, why) in [
        ("spec.upstream[1]", "credentials"),
        ("spec.upstream[2]", "query"),
        ("spec.upstream[3]", "rtmp:// or rtmps://"),
        ("spec.upstream[4]", "1-65535"),
        ("spec.upstream[5]", "app"),
        ("spec.upstream[6]", "the same upstream as spec.upstream[0]"),
    ] {
        assert!(
            e.iter()
                .any(|l| l.starts_with(&format!("{field}: ")) && l.contains(why)),
            "{field} {why}: {text}"
        );
    }
    assert_eq!(e.len(), 6, "{text}");

    let e = errors("origin: {region: eu-west}");
    assert_eq!(
        e,
        ["spec.origin: must be left out with spec.upstream: no origin runs in this cluster"]
    );
    let e = errors("publish: {keySecretRef: {name: keys}}");
    assert!(e[0].starts_with("spec.publish: "), "{e:?}");
    let e = errors("integrity: {signingKeySecretRef: {name: k}}");
    assert!(
        e.iter()
            .any(|l| l.starts_with("spec.integrity.signingKeySecretRef: must be left out")),
        "{e:?}"
    );
    let e = errors("integrity: {}");
    assert!(e[0].starts_with("spec.integrity.trustedKeys: "), "{e:?}");
    let private = serde_json::to_string(PRIVATE).expect("JSON");
    let e = errors(&format!("integrity: {{trustedKeys: [{private}, junk]}}"));
    assert!(
        e[0].starts_with("spec.integrity.trustedKeys[0]: is a private key"),
        "{e:?}"
    );
    assert!(!e[0].contains("MC4CAQAw"), "{e:?}");
    assert!(e[1].starts_with("spec.integrity.trustedKeys[1]: "), "{e:?}");
    let e = errors("upstream: []");
    assert_eq!(
        e,
        ["spec.origin: required unless spec.upstream names the external upstreams to pull from"]
    );
}

#[test]
fn the_status_names_the_upstream_in_use_and_failover_is_a_condition_and_events() {
    let mut w = World::new(stream(""));
    let edge = |i: usize| format!("final-eu-west-edge-{i}");
    w.reconcile(0.0, 10);
    w.connected = BTreeMap::from([(edge(0), A.to_string())]);
    let r = w.reconcile(5.0, 10);
    let status = r.outcome.status.expect("status");
    let upstream = status.upstream.clone().expect("status.upstream");
    assert_eq!(upstream.in_use.as_deref(), Some(A));
    assert_eq!((upstream.urls[0].relays, upstream.urls[1].relays), (1, 0));
    let (on, reason, _) = condition(&status, "UpstreamFailover");
    assert_eq!((on.as_str(), reason.as_str()), ("False", "Preferred"));
    assert!(with_reason(&r.outcome.events, "UpstreamRestored").is_empty());
    assert!(with_reason(&r.outcome.events, "UpstreamFailover").is_empty());

    // The relay reports the URL as it dialled it: the same upstream, spelled its way.
    w.connected = BTreeMap::from([(edge(0), "rtmp://10.1.2.3:19350/ingest".to_string())]);
    let r = w.reconcile(10.0, 10);
    let status = r.outcome.status.expect("status");
    assert_eq!(
        status.upstream.as_ref().and_then(|u| u.in_use.as_deref()),
        Some(B)
    );
    let (on, reason, message) = condition(&status, "UpstreamFailover");
    assert_eq!((on.as_str(), reason.as_str()), ("True", "FailedOver"));
    assert!(message.contains("spec.upstream[1]"), "{message}");
    let events = with_reason(&r.outcome.events, "UpstreamFailover");
    assert_eq!(events.len(), 1, "{:?}", r.outcome.events);
    // No second event while nothing changes.
    let r = w.reconcile(15.0, 10);
    assert!(with_reason(&r.outcome.events, "UpstreamFailover").is_empty());

    w.connected = BTreeMap::from([(edge(0), A.to_string())]);
    let r = w.reconcile(20.0, 10);
    assert_eq!(with_reason(&r.outcome.events, "UpstreamRestored").len(), 1);
    let status = r.outcome.status.expect("status");
    assert_eq!(condition(&status, "UpstreamFailover").0, "False");
}

#[test]
fn a_stream_with_an_origin_has_no_upstream_status() {
    let mut w = World::new(common::fixture("minimal.yaml"));
    let status = w.reconcile(0.0, 0).outcome.status.expect("status");
    assert_eq!(status.upstream, None);
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.type_ != "UpstreamFailover")
    );
    assert_eq!(status.integrity.expect("signed").signer, "origin");
    assert!(status.endpoints.ingest.starts_with("rtmp://"));
}
