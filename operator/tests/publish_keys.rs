//! `spec.publish.keySecretRef`: the origin mounts the Secret as a file and gets
//! `--publish-keys-file`; no other tier does; the keys never reach the pod spec or its
//! arguments; a bad reference is named by the validator.

mod common;

use common::{fixture, target, tree_with};
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use surge_operator::build::build_deployment;
use surge_operator::config::OperatorConfig;
use surge_operator::crd::Stream;
use surge_operator::labels::TierKind;
use surge_operator::validate::validate;

/// The minimal Stream with `publish` as given (YAML, under `spec`).
fn stream_with_publish(publish_yaml: &str) -> Stream {
    let text =
        std::fs::read_to_string(common::repo_root().join("operator/tests/fixtures/minimal.yaml"))
            .expect("fixture");
    let text = format!("{text}  publish:\n{publish_yaml}");
    serde_saphyr::from_str(&text).expect("parses as a Stream")
}

fn deployments(stream: &Stream) -> Vec<(TierKind, Deployment)> {
    let cfg = OperatorConfig::default();
    let t = target(stream);
    tree_with(stream, 0)
        .tiers
        .iter()
        .map(|tier| (tier.kind, build_deployment(&t, &stream.spec, tier, &cfg)))
        .collect()
}

#[test]
fn the_origin_mounts_the_secret_and_reads_it_with_the_flag() {
    let stream = stream_with_publish(
        "    keySecretRef:\n      name: talk-publish\n      key: broadcaster\n",
    );
    assert!(validate(&stream.name_any(), &stream.spec).is_empty());
    let all = deployments(&stream);
    assert!(all.iter().any(|(k, _)| *k == TierKind::Origin));
    for (kind, d) in all {
        let pod = d.spec.expect("spec").template.spec.expect("pod");
        let c = &pod.containers[0];
        let args = c.args.clone().unwrap_or_default();
        let flag = args
            .windows(2)
            .find(|w| w[0] == "--publish-keys-file")
            .map(|w| w[1].clone());
        let keys_volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.secret.is_some())
            .cloned();
        if kind != TierKind::Origin {
            assert_eq!(flag, None, "{kind:?} gets no keys");
            assert!(keys_volume.is_none(), "{kind:?} mounts no Secret");
            continue;
        }
        assert_eq!(flag.as_deref(), Some("/etc/surge-publish/keys"));
        let volume = keys_volume.expect("the origin mounts the Secret");
        let secret = volume.secret.expect("secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("talk-publish"));
        let items = secret.items.expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].key.as_str(), items[0].path.as_str()),
            ("broadcaster", "keys")
        );
        // A directory mount (a subPath mount would never see the Secret's updates).
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == volume.name)
            .expect("mounted");
        assert_eq!(mount.mount_path, "/etc/surge-publish");
        assert_eq!(mount.read_only, Some(true));
        assert_eq!(mount.sub_path, None);
        // Only the file's path travels: neither the Secret nor its key is in the arguments
        // or the environment.
        let env = c.env.clone().unwrap_or_default();
        for text in args.iter().chain(env.iter().map(|e| &e.name)) {
            assert!(
                !text.contains("talk-publish") && !text.contains("broadcaster"),
                "{text}"
            );
        }
        assert!(env.iter().all(|e| {
            e.value_from
                .as_ref()
                .is_none_or(|f| f.secret_key_ref.is_none())
        }));
    }
}

#[test]
fn the_key_defaults_to_keys_and_no_ref_means_no_volume() {
    let stream = stream_with_publish("    keySecretRef:\n      name: talk-publish\n");
    let (_, origin) = deployments(&stream)
        .into_iter()
        .find(|(k, _)| *k == TierKind::Origin)
        .expect("origin");
    let pod = origin.spec.expect("spec").template.spec.expect("pod");
    let volumes = pod.volumes.expect("volumes");
    let items = volumes[0]
        .secret
        .as_ref()
        .and_then(|s| s.items.clone())
        .expect("items");
    assert_eq!(items[0].key, "keys");

    for stream in [fixture("minimal.yaml"), stream_with_publish("    {}\n")] {
        for (_, d) in deployments(&stream) {
            let pod = d.spec.expect("spec").template.spec.expect("pod");
            assert!(pod.volumes.is_none());
            let args = pod.containers[0].args.clone().unwrap_or_default();
            assert!(!args.iter().any(|a| a == "--publish-keys-file"));
        }
    }
}

#[test]
fn a_bad_secret_reference_is_named() {
    let stream =
        stream_with_publish("    keySecretRef:\n      name: Not_A_Name\n      key: \"a/b\"\n");
    let errors = validate(&stream.name_any(), &stream.spec);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.publish.keySecretRef.name",
            "spec.publish.keySecretRef.key"
        ],
        "{errors:?}"
    );
}

#[test]
fn the_crd_schema_bounds_the_reference() {
    let crd = serde_json::to_string(&<Stream as kube::CustomResourceExt>::crd()).expect("json");
    let schema: serde_json::Value = serde_json::from_str(&crd).expect("json");
    let publish = &schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["publish"];
    let secret = &publish["properties"]["keySecretRef"];
    assert_eq!(secret["required"], serde_json::json!(["name"]), "{publish}");
    assert!(
        secret["properties"]["name"]["pattern"].is_string(),
        "{secret}"
    );
    assert!(
        secret["properties"]["key"]["pattern"].is_string(),
        "{secret}"
    );
}
