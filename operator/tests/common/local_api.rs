//! Helpers for tests that run `surge-operator local` as a process and read its API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::repo_root;

/// A sibling binary of the workspace's debug build (`cargo build -p NAME` first).
pub fn built(name: &str) -> PathBuf {
    let bin = repo_root().join("target/debug").join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p {name}` first",
        bin.display()
    );
    bin
}

/// `n` distinct free loopback ports (two binds in a row may hand out the same one).
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < n {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("address").port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

/// `surge-operator local` started by a test; SIGTERM (it stops its relays) when dropped.
pub struct Operator {
    pub child: Child,
    pub log: PathBuf,
}

impl Operator {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the child this test started and has not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET path` at `addr`, when it answers.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    http_get_status(addr.parse().ok()?, path).map(|(_, body)| body)
}

/// `GET path` (HTTP/1.1, `Connection: close`): the status code and the body; `None` while
/// nothing answers.
pub fn http_get_status(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Polls the local API's one Stream until `ok`; panics with the operator's log after `within`.
pub fn wait_for(
    what: &str,
    api: &str,
    op: &Operator,
    within: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(body) = http_get(api, "/api/v1/streams") {
            last = serde_json::from_str::<Value>(&body).expect("JSON")[0].clone();
            if ok(&last) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}: {last:#}\n{}", op.log());
}

/// `(status, reason, message)` of the condition `type_` in the API's Stream answer.
pub fn condition(stream: &Value, type_: &str) -> (String, String, String) {
    let c = stream["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null);
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (s("status"), s("reason"), s("message"))
}
