//! One relay process: started with its output in a log file, signalled by pid. IO.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::proc_stat::ProcessId;

/// A running (or exited, not yet reaped) relay process: one this fleet started (its child),
/// or one a previous run started and this one adopted ([`RelayProcess::adopt`]), which is
/// watched and signalled through its [`ProcessId`] (pid and start time), never by pid alone.
#[derive(Debug)]
pub struct RelayProcess {
    child: Option<Child>,
    id: ProcessId,
    pub log: PathBuf,
}

/// How a relay process ended: its status when it was this fleet's child; unknown for an
/// adopted one (its parent, gone, was the one to be told).
#[derive(Clone, Copy, Debug)]
pub struct Exit(Option<ExitStatus>);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(status) => write!(f, "{status}"),
            None => f.write_str("adopted, status unknown"),
        }
    }
}

impl RelayProcess {
    /// Starts `bin` with `args` and `env` added to this process's environment minus its
    /// `SURGE_*` variables (the relay reads its flags from those); stdout and stderr are
    /// appended to `log`. The relay gets a process group of its own, so a Ctrl-C in the
    /// terminal reaches the fleet, which stops the relays itself; and an operator killed
    /// outright leaves it running for the next one to adopt.
    pub fn spawn(
        bin: &Path,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> std::io::Result<RelayProcess> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SURGE_") {
                cmd.env_remove(key);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            // Last resort if the fleet is dropped without shutting down.
            .kill_on_drop(true);
        let child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("the process exited before it had a pid"))?;
        // A process that exited already has no start time to read: it is reaped as an exit.
        let id = ProcessId::of(pid).unwrap_or(ProcessId {
            pid,
            start_ticks: 0,
        });
        Ok(RelayProcess {
            child: Some(child),
            id,
            log: log.to_path_buf(),
        })
    }

    /// A relay a previous run started, if it still runs.
    pub fn adopt(id: ProcessId, log: PathBuf) -> Option<RelayProcess> {
        id.is_running().then_some(RelayProcess {
            child: None,
            id,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.id.pid
    }

    pub fn id(&self) -> ProcessId {
        self.id
    }

    /// How it ended, once it has exited (a child is then reaped).
    pub fn try_wait(&mut self) -> Option<Exit> {
        match &mut self.child {
            Some(child) => match child.try_wait() {
                Ok(status) => status.map(|s| Exit(Some(s))),
                // Not ours to wait for any more (should not happen): treat it as gone.
                Err(_) => Some(Exit(None)),
            },
            None => (!self.id.is_running()).then_some(Exit(None)),
        }
    }

    /// Waits until the process has exited.
    pub async fn wait(&mut self) {
        match &mut self.child {
            Some(child) => {
                let _ = child.wait().await;
            }
            None => {
                while self.id.is_running() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// SIGTERM: the relay drains (`--shutdown-grace`) and exits.
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
    }

    fn signal(&mut self, signal: libc::c_int) {
        match &mut self.child {
            // Only while the child is unreaped, so the pid cannot be someone else's.
            Some(child) => {
                if matches!(child.try_wait(), Ok(None))
                    && let Ok(pid) = libc::pid_t::try_from(self.id.pid)
                {
                    // SAFETY: kill(2) with a pid we own; no memory is involved.
                    unsafe {
                        libc::kill(pid, signal);
                    }
                }
            }
            // Only while the pid still has the adopted process's start time.
            None => {
                self.id.signal(signal);
            }
        }
    }

    /// The log's last non-empty line (what a relay that failed to start said last).
    pub fn last_log_line(&self) -> Option<String> {
        last_line(&self.log)
    }
}

/// What the relay whose output is at `path` said last, on one line: its fatal error
/// (`Error: ...` and its causes, without a backtrace), a panic, or its last log line.
pub fn last_line(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    // Enough for an error with a stack backtrace (RUST_BACKTRACE set) after it.
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text.lines().collect();
    let fatal = lines.iter().rposition(|l| {
        l.starts_with("Error: ") || (l.starts_with("thread '") && l.contains("panicked at"))
    });
    if let Some(first) = fatal {
        let said: Vec<&str> = lines[first..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.starts_with("Stack backtrace:") && !l.starts_with("note: run with"))
            .filter(|l| !l.is_empty() && *l != "Caused by:")
            .map(|l| strip_cause_number(l.trim_start_matches("Error: ")).trim_end_matches(':'))
            .collect();
        return Some(said.join(": "));
    }
    let line = lines.iter().rev().find(|l| !l.trim().is_empty())?;
    Some(json_message(line).unwrap_or_else(|| line.trim().to_string()))
}

/// `0: cause` (anyhow numbers causes when there are several) as `cause`.
fn strip_cause_number(line: &str) -> &str {
    match line.split_once(": ") {
        Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => line,
    }
}

/// The message of a JSON log line (`--log-format json`), with its error field if any.
fn json_message(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    let message = fields.get("message")?.as_str()?;
    Some(match fields.get("error").and_then(|e| e.as_str()) {
        Some(error) => format!("{message}: {error}"),
        None => message.to_string(),
    })
}

/// Whether `GET /readyz` at `http` answers 200 within `timeout`.
pub async fn readyz(http: SocketAddr, timeout: Duration) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(http).await.ok()?;
        let request = format!("GET /readyz HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let mut read = 0;
        while read < head.len() {
            match stream.read(&mut head[read..]).await.ok()? {
                0 => break,
                n => read += n,
            }
        }
        // "HTTP/1.1 200 OK"
        Some(head[..read].starts_with(b"HTTP/1.") && head[..read].get(9..12) == Some(b"200"))
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(true)))
}

/// Whether something accepts TCP connections at `address`.
pub async fn accepts(address: SocketAddr, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_reads_errors_panics_and_json_logs() {
        let dir = std::env::temp_dir().join(format!("surge-local-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.log");
        let said = |text: &str| {
            std::fs::write(&path, text).unwrap();
            last_line(&path)
        };
        assert_eq!(
            said(
                "{\"fields\":{\"message\":\"starting\"}}\nError: binding RTMP listener 127.200.0.1:1935\n\n\
                 Caused by:\n    Address already in use (os error 98)\n\nStack backtrace:\n   0: anyhow\n   at x.rs:1\n"
            )
            .as_deref(),
            Some("binding RTMP listener 127.200.0.1:1935: Address already in use (os error 98)")
        );
        assert_eq!(
            said("Error: a\n\nCaused by:\n    0: b\n    1: c\n").as_deref(),
            Some("a: b: c")
        );
        assert_eq!(
            said(
                "thread 'main' panicked at src/x.rs:3:5:\nboom\nnote: run with `RUST_BACKTRACE=1`\n"
            )
            .as_deref(),
            Some("thread 'main' panicked at src/x.rs:3:5: boom")
        );
        assert_eq!(
            said("{\"level\":\"ERROR\",\"fields\":{\"message\":\"upstream failed\",\"error\":\"refused\"}}\n\n").as_deref(),
            Some("upstream failed: refused")
        );
        assert_eq!(said("plain text\n").as_deref(), Some("plain text"));
        assert_eq!(last_line(&dir.join("none.log")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn readyz_wants_a_200() {
        async fn serve(
            status: axum::http::StatusCode,
        ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = axum::Router::new()
                .route("/readyz", axum::routing::get(move || async move { status }));
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            (addr, server)
        }
        let (ok, a) = serve(axum::http::StatusCode::OK).await;
        let (full, b) = serve(axum::http::StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(readyz(ok, Duration::from_secs(2)).await);
        assert!(!readyz(full, Duration::from_secs(2)).await);
        assert!(accepts(full, Duration::from_secs(2)).await);
        a.abort();
        b.abort();
        let _ = a.await;
        assert!(!readyz(ok, Duration::from_millis(500)).await);
    }
}
