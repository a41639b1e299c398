//! Signed frames in the end-to-end tests: key pairs made by openssl as the README tells
//! users to, and an edge relay that verifies what it pulls.

use std::path::Path;
use std::process::Command;

use super::relay::start_relay_logged;
use super::{Guard, free_port};

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
    let upstream = format!("rtmp://127.0.0.1:{origin_rtmp}");
    let extra = ["--upstream", upstream.as_str(), "--verify-key", verify_key];
    let guard = start_relay_logged(dir, "edge.log", rtmp, http, &extra);
    (guard, rtmp, http)
}
