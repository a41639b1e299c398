//! The committed CRD files are exactly what `surge-operator crd` generates.

mod common;

use common::repo_root;
use surge_operator::crd::crd_yaml;

fn assert_same(path: &str) {
    let generated = crd_yaml().expect("CRD serializes");
    let committed = std::fs::read_to_string(repo_root().join(path)).unwrap_or_default();
    assert!(
        committed == generated,
        "{path} differs from `surge-operator crd`; regenerate it with:\n  cargo run -q -p surge-operator -- crd > {path}"
    );
}

#[test]
fn crds_stream_yaml_is_generated() {
    assert_same("crds/stream.yaml");
}

#[test]
fn chart_crd_is_generated() {
    assert_same("charts/surge/crds/stream.yaml");
}

#[test]
fn crd_has_validation_rules_printer_columns_and_short_name() {
    let y = crd_yaml().unwrap();
    for needle in [
        "x-kubernetes-validations",
        "region names must be unique",
        "minEdges must be less than or equal to maxEdges",
        "name: Growth/min",
        "name: Edges",
        ".status.conditions[?(@.type==\"Ready\")].status",
        "- st",
        "minItems: 1",
        "subresources:",
    ] {
        assert!(y.contains(needle), "CRD lacks {needle}");
    }
}

/// The tier-level descriptions users read in `kubectl explain` must match the tree the
/// operator builds (tree.rs: level 1 feeds the edges, the highest level is fed by the origin).
#[test]
fn crd_describes_reflector_levels_as_built() {
    let y = crd_yaml().unwrap();
    assert!(
        !y.contains("nearest the origin"),
        "CRD still says level 1 is nearest the origin"
    );
    assert!(
        y.contains("Reflector level: 1 feeds the edges"),
        "CRD does not say level 1 feeds the edges"
    );
    assert!(
        y.contains("the highest reflector level (fed by the origin)"),
        "CRD does not describe the status tier order (top level first)"
    );
}
