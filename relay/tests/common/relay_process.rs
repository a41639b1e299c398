//! Runs the real `surge-relay` binary on loopback with OS-assigned ports; killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct RelayProcess {
    pub child: Child,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RelayProcess {
    pub fn start(extra: &[&str]) -> RelayProcess {
        let mut args = vec![
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        RelayProcess::spawn(&args, &[])
    }

    /// Starts the relay with exactly `args` (no listen flags added) and `env`; `SURGE_*`
    /// variables of the test's own environment are not passed on.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> RelayProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_surge-relay"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SURGE_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn surge-relay");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let tx = tx.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.contains("listening") {
                        let _ = tx.send(line.clone());
                    }
                    log.lock().expect("log lock").push(line);
                }
            });
        }
        // Every reader thread holds a sender: the channel disconnects when the process has
        // closed both pipes (it exited) without reporting its listeners.
        drop(tx);
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // The reader threads end with the process; what it said tells why.
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "relay did not report its listeners:\n{}",
                    log.lock().expect("log lock").join("\n")
                );
            }
        };
        // Text logs say `name=ADDR`, JSON logs `"name":"ADDR"`.
        let field = |name: &str| -> Option<SocketAddr> {
            let (start, skip) = match line.find(&format!("{name}=")) {
                Some(p) => (p, name.len() + 1),
                None => (line.find(&format!("\"{name}\":"))?, name.len() + 3),
            };
            let rest = line[start + skip..].trim_start_matches('"');
            let end = rest.find([' ', '"', ',']).unwrap_or(rest.len());
            rest[..end].parse().ok()
        };
        let (Some(rtmp), Some(http)) = (field("rtmp_addr"), field("http_addr")) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cannot parse listener addresses from: {line}");
        };
        RelayProcess {
            child,
            rtmp,
            http,
            log,
        }
    }

    /// An edge relay pulling app `live` from `upstream`, with `extra` flags.
    pub fn edge_pulling_from(upstream: &RelayProcess, extra: &[&str]) -> RelayProcess {
        let url = format!("rtmp://{}/live", upstream.rtmp);
        let mut args = vec!["--tier", "edge", "--upstream", url.as_str()];
        args.extend_from_slice(extra);
        RelayProcess::start(&args)
    }

    pub fn rtmp_url(&self, app: &str, stream: &str) -> String {
        format!("rtmp://{}/{app}/{stream}", self.rtmp)
    }

    pub fn flv_url(&self, app: &str, stream: &str) -> String {
        format!("http://{}/{app}/{stream}.flv", self.http)
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .any(|l| l.contains(needle))
    }

    /// The relay's "connection closed" lines for the connection from `peer` (its span names
    /// the peer).
    pub fn close_lines(&self, peer: std::net::SocketAddr) -> Vec<String> {
        let (a, b) = (format!("peer={peer}}}"), format!("peer={peer} "));
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|l| l.contains("connection closed") && (l.contains(&a) || l.contains(&b)))
            .cloned()
            .collect()
    }

    /// Viewers the relay reports in `/api/v1/streams` (`u64::MAX` if it reports none).
    pub async fn viewers(&self) -> u64 {
        super::stats(self.http).await["relay"]["viewers"]
            .as_u64()
            .unwrap_or(u64::MAX)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Sends SIGTERM (graceful drain).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop (ffmpeg publishers etc.).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
