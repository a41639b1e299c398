//! A real `surge-relay` for the end-to-end tests: built from this workspace (a failed build
//! fails the test, never falls back to an old binary), started on loopback ports, and its
//! `/api/v1/streams` polled until a condition holds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Guard, wait_for_port};

/// The `surge-relay` binary next to this test's target directory, built (once per test
/// binary) with the same profile, so the test runs against the code in this checkout.
pub fn relay_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable");
        // target/<profile>/deps/<test>-HASH
        let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "surge-relay", "--bin", "surge-relay"]);
        if let Some(target_dir) = profile_dir.parent() {
            build.arg("--target-dir").arg(target_dir);
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let out = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo build -p surge-relay");
        // A binary left over from an earlier build would test code that is not this one.
        assert!(
            out.status.success(),
            "cargo build -p surge-relay failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile_dir.join("surge-relay");
        assert!(bin.exists(), "cargo built no {}", bin.display());
        bin
    })
}

/// A surge-relay on the given loopback ports (fixed, so a restart comes back on the same
/// ones), its log appended to `dir/relay.log`.
pub fn start_relay(dir: &Path, rtmp: u16, http: u16) -> Guard {
    start_relay_with(dir, rtmp, http, &[])
}

/// [`start_relay`] with more flags (e.g. `--sign-key`).
pub fn start_relay_with(dir: &Path, rtmp: u16, http: u16, extra: &[&str]) -> Guard {
    start_relay_logged(dir, "relay.log", rtmp, http, extra)
}

/// [`start_relay_with`], its log appended to `dir/log_name`.
pub fn start_relay_logged(
    dir: &Path,
    log_name: &str,
    rtmp: u16,
    http: u16,
    extra: &[&str],
) -> Guard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(log_name))
        .expect("relay log");
    let child = Command::new(relay_bin())
        .args([
            "--rtmp-listen",
            &format!("127.0.0.1:{rtmp}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--shutdown-grace",
            "1s",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        // The relay logs to stdout; stderr has what goes wrong before logging starts.
        .stdout(log.try_clone().map_or_else(|_| Stdio::null(), Stdio::from))
        .stderr(log)
        .spawn()
        .expect("start surge-relay");
    let guard = Guard(child);
    wait_for_port(rtmp);
    wait_for_port(http);
    guard
}

/// `GET /api/v1/streams` of the relay, parsed; `None` while it does not answer.
pub fn relay_streams(http: u16) -> Option<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", http)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /api/v1/streams HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

/// The relay's entry for stream `name` (any app), when it has one.
pub fn relay_stream(http: u16, name: &str) -> Option<Value> {
    relay_streams(http)?["streams"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

/// Polls `done` every 50 ms until it holds; panics naming `what` after `patience`.
/// Returns how long it took.
pub fn wait_until(what: &str, patience: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < patience,
            "{what}: not within {patience:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// Waits until the relay has a publisher on stream `name`; returns how long that took.
pub fn wait_for_publisher(http: u16, name: &str, patience: Duration) -> Duration {
    wait_until(&format!("a publisher on stream {name}"), patience, || {
        relay_stream(http, name).is_some_and(|s| s["source"] == "publisher")
    })
}

/// Viewers (RTMP + HTTP-FLV) the relay counts on stream `name`.
pub fn relay_viewers(http: u16, name: &str) -> Option<u64> {
    let s = relay_stream(http, name)?;
    Some(s["viewers"]["rtmp"].as_u64()? + s["viewers"]["flv"].as_u64()?)
}

/// `GET /metrics` of the relay: the sum of metric `name`'s samples whose labels include
/// every one of `labels` (e.g. `protocol="rtmp"`); `None` when the relay does not answer
/// or has no such sample.
pub fn relay_metric(http: u16, name: &str, labels: &[&str]) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", http)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let matches = (rest.is_empty() || rest.starts_with('{'))
                && labels.iter().all(|want| rest.contains(want));
            if matches { value.parse().ok() } else { None }
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
