//! `spec.scaling.schedule`: the CRD carries it, validation names each bad field, and the
//! announced audience reaches the planner on its clock (the operator's clock counts from its
//! start, the schedule is in wall time).

mod common;

use common::fixture;
use common::world::{World, with_reason};
use kube::ResourceExt;
use surge_operator::crd::Stream;
use surge_operator::sizing::{plan_input_at, schedule_events, unix_seconds};
use surge_operator::validate::validate;

/// The minimal Stream with `schedule` as given (YAML list items, under `spec.scaling`).
fn with_schedule(items: &str) -> Stream {
    let text =
        std::fs::read_to_string(common::repo_root().join("operator/tests/fixtures/minimal.yaml"))
            .expect("fixture");
    let text = format!("{text}  scaling:\n    schedule:\n{items}");
    serde_saphyr::from_str(&text).expect("parses as a Stream")
}

// The test world's wall clock: t = 0 is 1,700,000,000 s after the epoch (2023-11-14T22:13:20Z).
const AT_600: &str = "2023-11-14T22:23:20Z";

#[test]
fn bad_events_are_named_field_by_field() {
    let s = with_schedule(
        "      - {start: tomorrow, expectedViewers: 0, regions: [eu-west, mars], durationMinutes: 0}\n",
    );
    let errors = validate(&s.name_any(), &s.spec);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.scaling.schedule[0].start",
            "spec.scaling.schedule[0].expectedViewers",
            "spec.scaling.schedule[0].regions[1]",
            "spec.scaling.schedule[0].durationMinutes",
        ],
        "{errors:?}"
    );
    let good = with_schedule(&format!(
        "      - {{start: \"{AT_600}\", expectedViewers: 40000}}\n      - {{start: \"2023-11-14T23:23:20+01:00\", expectedViewers: 5, regions: [eu-west], durationMinutes: 120}}\n"
    ));
    assert_eq!(validate(&good.name_any(), &good.spec), []);
}

#[test]
fn starts_are_placed_on_the_planners_clock() {
    assert_eq!(unix_seconds(AT_600), Some(1_700_000_600.0));
    assert_eq!(
        unix_seconds("2023-11-14T23:23:20+01:00"),
        Some(1_700_000_600.0)
    );
    assert_eq!(unix_seconds("14/11/2023"), None);
    let s = with_schedule(&format!(
        "      - {{start: \"{AT_600}\", expectedViewers: 40000, regions: [eu-west], durationMinutes: 95}}\n"
    ));
    let events = schedule_events(&s.spec.scaling, 1_700_000_000.0);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].start_s, 600.0);
    assert_eq!(events[0].expected_viewers, 40_000);
    assert_eq!(events[0].regions, ["eu-west"]);
    assert_eq!(events[0].duration_seconds, Some(5_700.0));
    let input = plan_input_at(&s.spec, &[], 10.0, 1_700_000_000.0, Some(30.0));
    assert_eq!(input.scaling.schedule, events);
}

#[test]
fn the_operator_pre_scales_before_the_start() {
    let s = with_schedule(&format!(
        "      - {{start: \"{AT_600}\", expectedViewers: 40000, durationMinutes: 30}}\n"
    ));
    let per_edge = u64::from(s.spec.tree.viewers_per_edge);
    let need = 40_000u64.div_ceil(per_edge) as i32;
    let mut w = World::new(s);
    let edge = w.edge();
    w.reconcile(400.0, 10);
    assert!(w.replicas(&edge) < need, "not yet: {}", w.replicas(&edge));
    // One horizon (no ready time measured yet: leadTimeSeconds, 60 s) before the start.
    let r = w.reconcile(545.0, 10);
    assert!(w.replicas(&edge) >= need, "{} < {need}", w.replicas(&edge));
    let ups = with_reason(r.events(), "ScaledUp");
    assert!(
        ups.iter().any(|e| e.note.contains("scheduled event")),
        "{:?}",
        r.events()
    );
}

#[test]
fn the_crd_schema_has_the_schedule() {
    let crd = serde_json::to_string(&<Stream as kube::CustomResourceExt>::crd()).expect("json");
    let schema: serde_json::Value = serde_json::from_str(&crd).expect("json");
    let scaling = &schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["scaling"];
    let item = &scaling["properties"]["schedule"]["items"];
    assert_eq!(item["properties"]["start"]["format"], "date-time", "{item}");
    let mut required: Vec<&str> = item["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    required.sort();
    assert_eq!(required, ["expectedViewers", "start"]);
    assert_eq!(
        item["properties"]["durationMinutes"]["minimum"].as_f64(),
        Some(1.0)
    );
    // The fixture without a schedule still parses and plans nothing extra.
    assert!(fixture("minimal.yaml").spec.scaling.schedule.is_empty());
}
