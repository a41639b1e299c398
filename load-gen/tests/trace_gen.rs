//! The committed traces are exactly what `surge-load trace gen` makes, and they read back.

use std::path::PathBuf;
use std::process::Command;

use surge_load::trace::generate::{Shape, generate};
use surge_load::trace::read_trace;

#[test]
fn committed_traces_are_reproducible_from_their_seed() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("traces");
    for shape in Shape::ALL {
        let path = dir.join(format!("{}.csv", shape.name()));
        let committed = std::fs::read_to_string(&path).expect("trace is committed");
        let (trace, check) = generate(shape, 1, None);
        assert!(check.passed, "{}: {}", shape.name(), check.summary);
        assert!(
            committed == trace.to_csv(),
            "{} differs from `surge-load trace gen --shape {} --seed 1`",
            path.display(),
            shape.name()
        );
        let read = read_trace(&path).expect("reads back");
        assert!(read.header.contains("calibrated to:"));
        assert!(committed.len() < 4 << 20, "keep committed traces small");
    }
}

#[test]
fn trace_gen_command_writes_a_checked_trace() {
    let out_path = std::env::temp_dir().join(format!("surge-gen-{}.csv", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .args([
            "trace", "gen", "--shape", "facebook", "--seed", "5", "--out",
        ])
        .arg(&out_path)
        .output()
        .expect("runs surge-load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("max gain within 180 s"), "{stdout}");
    let trace = read_trace(&out_path).expect("valid trace");
    assert!(trace.header.contains("seed=5"));
    assert_eq!(trace.regions("facebook-flash").len(), 3);
    std::fs::remove_file(&out_path).ok();
}
