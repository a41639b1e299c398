//! Helpers shared by the end-to-end tests: child processes killed on drop, loopback ports,
//! the publisher, running `surge-load replay`; a real relay (`relay`), what a trace file
//! asks for (`trace`), what a healthy replay shows (`promises`) and signing keys and a
//! verifying edge (`signing`).

#![allow(dead_code)]

pub mod promises;
pub mod relay;
pub mod signing;
pub mod trace;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Held by every real-time test of a test binary, so they run one at a time whatever
/// `--test-threads` says: their lag and start-up bounds are for a machine not also
/// running the other tests' relays, publishers and viewers.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that failed holding the lock has released it all the same.
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kills the child when dropped, so a failing test leaves nothing running.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free now and never handed out before in this test binary: the kernel may
/// give the same ephemeral port to two binds in a row, and a relay then fails to bind its
/// second listener on the port of its first.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh directory for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("surge-load-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `surge-load publish ARGS` to rtmp://127.0.0.1:PORT/live/e2e for 60 s, its log in
/// `dir/publish.log` (plain text: colours go only to a terminal).
pub fn publish(dir: &Path, port: u16, extra: &[&str]) -> Guard {
    let log = std::fs::File::create(dir.join("publish.log")).expect("publish log");
    let child = Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .args([
            "publish",
            "--url",
            &format!("rtmp://127.0.0.1:{port}/live/e2e"),
            "--duration",
            "60s",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start publisher");
    Guard(child)
}

/// The publisher's "reconnecting in DELAY" back-off delays so far, in order.
pub fn publisher_backoffs(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("publish.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("reconnecting in ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Runs `surge-load replay ARGS` (warnings only on stderr) and waits for it.
pub fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .arg("replay")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run replay")
}

/// A file under `load-gen/tests/data/`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
