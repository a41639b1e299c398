//! The real `surge-load` as a viewer in relay tests: built from this workspace (a failed
//! build fails the test, never falls back to an old binary) and run with `replay`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The `surge-load` binary in this test's target directory, built (once per test binary)
/// with the same profile, so the test runs the load generator in this checkout.
pub fn surge_load_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable");
        // target/<profile>/deps/<test>-HASH
        let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "surge-load", "--bin", "surge-load"]);
        if let Some(target_dir) = profile_dir.parent() {
            build.arg("--target-dir").arg(target_dir);
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let out = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo build -p surge-load");
        assert!(
            out.status.success(),
            "cargo build -p surge-load failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile_dir.join("surge-load");
        assert!(bin.exists(), "cargo built no {}", bin.display());
        bin
    })
}

/// What `surge-load replay` reported.
pub struct ReplayRun {
    pub report: Value,
    /// The terminal summary.
    pub stdout: String,
}

/// `surge-load replay --verify-key KEY`: `viewers` viewers (RTMP and HTTP-FLV alternating)
/// of live/STREAM at the relay for `seconds`, starting at once (no preflight: the first
/// viewer's play is what makes an edge pull). Blocks until it ends.
pub fn verifying_replay(
    dir: &Path,
    relay: (std::net::SocketAddr, std::net::SocketAddr),
    stream: &str,
    key: &Path,
    viewers: u32,
    seconds: u32,
) -> ReplayRun {
    let trace = dir.join("viewers.csv");
    std::fs::write(
        &trace,
        format!(
            "# livetrace v1; viewers\nbroadcast_id,t_s,region,viewers\nb,0,r,{viewers}\nb,{seconds},r,{viewers}\n"
        ),
    )
    .expect("write trace");
    let report = dir.join("replay.json");
    let out = Command::new(surge_load_bin())
        .arg("replay")
        .arg("--target")
        .arg(format!(
            "r={}:{}:{}",
            relay.0.ip(),
            relay.0.port(),
            relay.1.port()
        ))
        .args(["--protocol", "mix", "--speed", "1", "--no-preflight"])
        .arg("--stream")
        .arg(format!("live/{stream}"))
        .arg("--trace")
        .arg(&trace)
        .arg("--verify-key")
        .arg(key)
        .arg("--report")
        .arg(&report)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run surge-load replay");
    assert!(
        out.status.success(),
        "surge-load replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report).expect("replay report");
    ReplayRun {
        report: serde_json::from_str(&text).expect("report JSON"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// The report's signed-frame verdicts per second: (verified, failed, unverified).
pub fn integrity_per_second(report: &Value) -> Vec<(u64, u64, u64)> {
    report["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let n = |k: &str| p["integrity"][k].as_u64().unwrap_or(0);
            (n("verified"), n("failed"), n("unverified"))
        })
        .collect()
}
