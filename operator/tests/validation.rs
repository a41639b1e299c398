//! The pure validator names each bad field; valid fixtures pass.

mod common;

use common::{fixture, load};
use kube::ResourceExt;
use surge_operator::validate::validate;

#[test]
fn valid_streams_have_no_errors() {
    for s in [
        load("examples/stream.yaml"),
        fixture("minimal.yaml"),
        fixture("custom-selector.yaml"),
    ] {
        assert_eq!(validate(&s.name_any(), &s.spec), vec![], "{}", s.name_any());
    }
}

#[test]
fn invalid_stream_reports_every_field() {
    let s = fixture("invalid.yaml");
    let errors = validate(&s.name_any(), &s.spec);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    for expected in [
        "metadata.name",
        "spec.bitrateKbps",
        "spec.regions[0].minEdges",
        "spec.regions[1].name",
        "spec.tree.fanout",
        "spec.scaling.headroom",
    ] {
        assert!(
            fields.contains(&expected),
            "missing {expected} in {errors:?}"
        );
    }
    let dup = errors
        .iter()
        .find(|e| e.field == "spec.regions[1].name")
        .unwrap();
    assert!(dup.message.contains("unique"), "{}", dup.message);
    let min = errors
        .iter()
        .find(|e| e.field == "spec.regions[0].minEdges")
        .unwrap();
    assert!(min.message.contains("maxEdges"), "{}", min.message);
}

#[test]
fn empty_regions_are_rejected() {
    let mut s = fixture("minimal.yaml");
    s.spec.regions.clear();
    let errors = validate(&s.name_any(), &s.spec);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "spec.regions");
}
