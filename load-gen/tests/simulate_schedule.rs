//! `surge-load simulate` with a schedule: the match family's own announcement (the trace
//! header's `schedule=[...]`, `--trace-schedule`) and a `--schedule FILE` reach surge, and a
//! correct schedule removes the kick-off's shortfall.

use std::path::PathBuf;

use surge_load::simulate::policies::PolicyName;
use surge_load::simulate::{PolicyReport, Report, SimulateArgs, schedule, simulate_loaded};
use surge_load::trace::generate::{Shape, generate};

fn surge(report: &Report) -> &PolicyReport {
    report
        .policies
        .iter()
        .find(|p| p.name == "surge")
        .expect("surge ran")
}

fn args(ready_seconds: u64) -> SimulateArgs {
    SimulateArgs {
        policy: PolicyName::Surge,
        ready_seconds,
        ..SimulateArgs::for_trace(PathBuf::new())
    }
}

#[test]
fn a_match_with_its_schedule_is_not_short_at_kick_off() {
    let (trace, _) = generate(Shape::Match, 3, None);
    let events = schedule::from_header(&trace.header)
        .expect("parses")
        .expect("a generated match announces itself");
    assert_eq!(events.len(), 1);
    for ready in [60, 120] {
        let (plain, _, _) = simulate_loaded(&trace, "match", &args(ready)).expect("simulates");
        let scheduled_args = SimulateArgs {
            trace_schedule: true,
            ..args(ready)
        };
        let (scheduled, _, _) =
            simulate_loaded(&trace, "match", &scheduled_args).expect("simulates");
        let before = surge(&plain).underprovisioned_viewer_seconds;
        let after = surge(&scheduled).underprovisioned_viewer_seconds;
        let reactive = scheduled.reactive_underprovisioned_viewer_seconds;
        assert!(
            before > 1e6,
            "ready {ready}: without it the kick-off is short ({before})"
        );
        assert!(
            after < reactive * 1e-3,
            "ready {ready}: {after} viewer-s short with the schedule (reactive {reactive})"
        );
    }
}

#[test]
fn a_schedule_file_reaches_surge_and_a_bad_one_is_refused() {
    let (trace, _) = generate(Shape::Match, 3, None);
    let events = schedule::from_header(&trace.header).unwrap().unwrap();
    let dir = std::env::temp_dir().join(format!("surge-schedule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("schedule.yaml");
    std::fs::write(&file, serde_json::to_string(&events).unwrap()).unwrap();
    let from_file = SimulateArgs {
        schedule: Some(file.clone()),
        ..args(60)
    };
    let from_header = SimulateArgs {
        trace_schedule: true,
        ..args(60)
    };
    let (a, _, _) = simulate_loaded(&trace, "match", &from_file).unwrap();
    let (b, _, _) = simulate_loaded(&trace, "match", &from_header).unwrap();
    assert_eq!(surge(&a).relay_seconds, surge(&b).relay_seconds);
    std::fs::write(&file, "- {start: soon, expectedViewers: 10}\n").unwrap();
    let err = simulate_loaded(&trace, "match", &from_file).unwrap_err();
    assert!(
        format!("{err:#}").contains("spec.scaling.schedule[0].start"),
        "{err:#}"
    );
    let (push, _) = generate(Shape::Push, 3, None);
    assert!(
        simulate_loaded(&push, "push", &from_header).is_err(),
        "no schedule in a push trace"
    );
    std::fs::remove_dir_all(&dir).ok();
}
