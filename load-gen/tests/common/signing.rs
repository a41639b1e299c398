//! Signed frames in the end-to-end tests: key pairs made by openssl as the README tells
//! users to, and an edge relay that verifies what it pulls.

use std::path::Path;
use std::process::{Command, Stdio};

use super::relay::relay_bin;
use super::{Guard, free_port, wait_for_port};

/// An Ed25519 key pair made by openssl: `dir/NAME.pem` (private) and `dir/NAME.pub.pem`.
pub fn key_pair(dir: &Path, name: &str) -> (String, String) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&private)
        .status()
        .expect("run openssl genpkey")
        .success();
    assert!(ok, "openssl genpkey failed");
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .expect("run openssl pkey")
        .success();
    assert!(ok, "openssl pkey -pubout failed");
    let text = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    (text(&private), text(&public))
}

/// An edge relay pulling from the origin's RTMP port and verifying with `verify_key`, its
/// log in `dir/edge.log`. Returns the guard and the edge's RTMP and HTTP ports.
pub fn start_edge(dir: &Path, origin_rtmp: u16, verify_key: &str) -> (Guard, u16, u16) {
    let (rtmp, http) = (free_port(), free_port());
    let log = std::fs::File::create(dir.join("edge.log")).expect("edge log");
    let child = Command::new(relay_bin())
        .args([
            "--rtmp-listen",
            &format!("127.0.0.1:{rtmp}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--upstream",
            &format!("rtmp://127.0.0.1:{origin_rtmp}"),
            "--verify-key",
            verify_key,
            "--shutdown-grace",
            "1s",
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the edge");
    let guard = Guard(child);
    wait_for_port(http);
    (guard, rtmp, http)
}
