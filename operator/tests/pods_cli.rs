//! `surge-operator pods` without a cluster: its bad input fails at once, in one line.

use std::process::Command;

const OPERATOR: &str = env!("CARGO_BIN_EXE_surge-operator");

#[test]
fn a_missing_relay_binary_is_one_line_and_a_failure() {
    let out = Command::new(OPERATOR)
        .args(["pods", "--relay-bin", "/nonexistent/surge-relay"])
        // No cluster is asked: the binary is checked first.
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no relay binary at /nonexistent/surge-relay"),
        "{err}"
    );
}

#[test]
fn the_relay_binary_is_required_and_durations_are_checked() {
    let run = |args: &[&str]| {
        let out = Command::new(OPERATOR)
            .arg("pods")
            .args(args)
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = run(&[]);
    assert!(!ok && err.contains("--relay-bin"), "{err}");
    let (ok, err) = run(&["--relay-bin", "x", "--interval", "0"]);
    assert!(!ok && err.contains("--interval"), "{err}");
}
