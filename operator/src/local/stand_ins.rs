//! Where a fleet's Service stand-ins ([`super::service_proxy`]) run: in this process
//! ([`StandIns::Here`], for tests and fleets that keep no state), or in a process of their
//! own, `surge-operator stand-ins` ([`StandIns::Apart`]), which outlives the operator as
//! kube-proxy's rules outlive a controller: connections through a Service (a publisher's
//! ingest, relays' pulls through a tier's Service) are not cut when the operator dies, and a
//! restarted operator finds the process and keeps it ([`super::state_dir`]).
//!
//! Either way the fleet hands over a table ([`StandInSpec`] per Service); the process reads
//! the same table from a file ([`serve`]), applied by the same [`Listening::apply`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::proc_stat::ProcessId;
use super::service_proxy::ServiceProxy;
use super::state_dir::StateDir;

/// How often the stand-ins' process reads its table (a new Service or relay reaches it
/// within this).
pub const TABLE_POLL: Duration = Duration::from_millis(25);

/// One Service's stand-in: where it listens and where new connections go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandInSpec {
    /// The Service's `namespace/name`.
    pub service: String,
    pub address: Ipv4Addr,
    /// `(listen port, relay port)`.
    pub ports: Vec<(u16, u16)>,
    pub backends: Vec<Ipv4Addr>,
}

/// A stand-in that could not listen.
#[derive(Debug)]
pub struct NotListening {
    pub service: String,
    pub address: SocketAddr,
    pub error: std::io::Error,
}

/// Stand-ins listening in this process.
#[derive(Default)]
pub struct Listening {
    proxies: BTreeMap<String, ServiceProxy>,
}

impl Listening {
    /// Makes the listening stand-ins those of `table`: new ones bind (call inside a Tokio
    /// runtime), gone ones close (their forwarded connections go on), every one's backends
    /// are set. A stand-in whose address or ports changed is bound anew.
    pub fn apply(&mut self, table: &[StandInSpec]) -> Vec<NotListening> {
        self.proxies.retain(|key, proxy| {
            table
                .iter()
                .any(|s| &s.service == key && s.address == proxy.address && s.ports == proxy.ports)
        });
        let mut failed = Vec::new();
        for spec in table {
            if !self.proxies.contains_key(&spec.service) {
                match ServiceProxy::bind(spec.address, &spec.ports) {
                    Ok(proxy) => {
                        self.proxies.insert(spec.service.clone(), proxy);
                    }
                    Err(error) => {
                        failed.push(NotListening {
                            service: spec.service.clone(),
                            address: first_address(spec),
                            error,
                        });
                        continue;
                    }
                }
            }
            if let Some(proxy) = self.proxies.get(&spec.service)
                && proxy.backends() != spec.backends
            {
                proxy.set_backends(spec.backends.clone());
            }
        }
        failed
    }
}

impl Listening {
    /// Closes every stand-in, and returns once their listeners are closed.
    pub async fn close_all(&mut self) {
        for (_, proxy) in std::mem::take(&mut self.proxies) {
            proxy.close().await;
        }
    }
}

fn first_address(spec: &StandInSpec) -> SocketAddr {
    SocketAddr::from((spec.address, spec.ports.first().map_or(0, |p| p.0)))
}

/// The stand-ins' process, started or adopted, and the table last written for it.
pub struct Apart {
    state: StateDir,
    bin: PathBuf,
    log: PathBuf,
    process: ProcessId,
    /// Set when this fleet started it (so it is reaped); `None` when adopted.
    child: Option<std::process::Child>,
    table: Vec<StandInSpec>,
    written: Option<String>,
}

impl Apart {
    /// Adopts the stand-ins' process a previous run left in `state` (with the table it
    /// serves), else starts `bin stand-ins --table FILE` with an empty table; its output goes
    /// to `log`. Returns whether it was adopted.
    pub fn start_or_adopt(
        bin: &Path,
        state: StateDir,
        log: &Path,
    ) -> std::io::Result<(Apart, bool)> {
        if let Some(process) = state.stand_ins_pid_record().filter(ProcessId::is_running) {
            let table = std::fs::read_to_string(state.stand_ins_table())
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            let apart = Apart {
                state,
                bin: bin.to_path_buf(),
                log: log.to_path_buf(),
                process,
                child: None,
                table,
                written: None,
            };
            return Ok((apart, true));
        }
        let mut apart = Apart {
            state,
            bin: bin.to_path_buf(),
            log: log.to_path_buf(),
            process: ProcessId {
                pid: 0,
                start_ticks: 0,
            },
            child: None,
            table: Vec::new(),
            written: None,
        };
        apart.write_table()?;
        apart.spawn()?;
        Ok((apart, false))
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        use std::os::unix::process::CommandExt;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let err = out.try_clone()?;
        let child = std::process::Command::new(&self.bin)
            .arg("stand-ins")
            .arg("--table")
            .arg(self.state.stand_ins_table())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: a Ctrl-C in the terminal reaches the operator only,
            // which stops the stand-ins last, after its relays.
            .process_group(0)
            .spawn()?;
        let pid = child.id();
        self.child = Some(child);
        self.process = ProcessId::of(pid).ok_or_else(|| {
            std::io::Error::other(format!("the stand-ins' process {pid} exited at once"))
        })?;
        self.state.write_stand_ins_pid(self.process)?;
        tracing::info!(pid, table = %self.state.stand_ins_table().display(), "Service stand-ins' process started");
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The table as last handed over (an adopted process's: as the previous run left it).
    pub fn table(&self) -> &[StandInSpec] {
        &self.table
    }

    fn running(&mut self) -> bool {
        if let Some(child) = &mut self.child {
            // Reap it if it exited, so its pid is not left a zombie.
            if !matches!(child.try_wait(), Ok(None)) {
                return false;
            }
        }
        self.process.is_running()
    }

    fn write_table(&mut self) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&self.table).map_err(std::io::Error::other)?;
        if self.written.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        if let Some(dir) = self.state.stand_ins_table().parent() {
            std::fs::create_dir_all(dir)?;
        }
        super::hosts_file::write_atomically(&self.state.stand_ins_table(), &text)?;
        self.written = Some(text);
        Ok(())
    }

    /// Hands `table` to the process. A stand-in new to it must be able to listen: each of its
    /// ports is bound here first (and let go), so a taken address fails now, in one line,
    /// rather than in the process's log. A process that died is started again.
    fn set(&mut self, table: &[StandInSpec]) -> Vec<NotListening> {
        let mut failed = Vec::new();
        let mut next = Vec::new();
        for spec in table {
            let known = self.table.iter().any(|s| {
                s.service == spec.service && s.address == spec.address && s.ports == spec.ports
            });
            if !known && let Err((address, error)) = can_listen(spec) {
                failed.push(NotListening {
                    service: spec.service.clone(),
                    address,
                    error,
                });
                continue;
            }
            next.push(spec.clone());
        }
        self.table = next;
        if let Err(e) = self.write_table() {
            tracing::warn!(error = %e, "the stand-ins' table was not written");
        }
        if !self.running() {
            tracing::warn!(
                pid = self.process.pid,
                "the Service stand-ins' process is gone; starting it again"
            );
            if let Err(e) = self.spawn() {
                tracing::warn!(error = %e, "the Service stand-ins' process did not start");
            }
        }
        failed
    }

    /// SIGTERM, SIGKILL after 2 s; then its records are removed.
    async fn stop(&mut self) {
        self.process.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.process.signal(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.state.stand_ins_table());
    }

    fn kill_now(&mut self) {
        self.process.signal(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

/// Whether every port of `spec` can be listened on now (bound and let go at once).
fn can_listen(spec: &StandInSpec) -> Result<(), (SocketAddr, std::io::Error)> {
    for &(port, _) in &spec.ports {
        let address = SocketAddr::from((spec.address, port));
        std::net::TcpListener::bind(address).map_err(|e| (address, e))?;
    }
    Ok(())
}

/// Where a fleet's stand-ins listen.
pub enum StandIns {
    Here(Listening),
    Apart(Apart),
}

impl Default for StandIns {
    fn default() -> Self {
        StandIns::Here(Listening::default())
    }
}

impl StandIns {
    /// Makes the stand-ins those of `table`; returns those that cannot listen (left out).
    pub fn set(&mut self, table: &[StandInSpec]) -> Vec<NotListening> {
        match self {
            StandIns::Here(listening) => listening.apply(table),
            StandIns::Apart(apart) => apart.set(table),
        }
    }

    /// Closes every stand-in (and stops their process).
    pub async fn stop(&mut self) {
        match self {
            StandIns::Here(listening) => listening.close_all().await,
            StandIns::Apart(apart) => apart.stop().await,
        }
    }

    /// For a fleet dropped without a shutdown: SIGKILL at once.
    pub fn kill_now(&mut self) {
        match self {
            StandIns::Here(listening) => {
                listening.apply(&[]);
            }
            StandIns::Apart(apart) => apart.kill_now(),
        }
    }
}

/// `surge-operator stand-ins --table FILE`: listens as `FILE` says, reading it again every
/// [`TABLE_POLL`], until SIGTERM or SIGINT, or until the file is removed (its operator shut
/// down cleanly).
pub async fn serve(table: &Path) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut listening = Listening::default();
    let mut last: Option<String> = None;
    tracing::info!(table = %table.display(), "Service stand-ins: serving");
    loop {
        match std::fs::read_to_string(table) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!("the table is gone (its operator stopped): exiting");
                return Ok(());
            }
            Err(e) => tracing::warn!(error = %e, "table not read"),
            Ok(text) if last.as_deref() != Some(text.as_str()) => {
                match serde_json::from_str::<Vec<StandInSpec>>(&text) {
                    Ok(specs) => {
                        for f in listening.apply(&specs) {
                            tracing::warn!(service = %f.service, address = %f.address, error = %f.error, "stand-in cannot listen");
                        }
                        tracing::info!(stand_ins = specs.len(), "table applied");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "table not understood; keeping the last one")
                    }
                }
                last = Some(text);
            }
            Ok(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(TABLE_POLL) => {}
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn a_table_binds_new_stand_ins_sets_backends_and_closes_gone_ones() {
        // 127.98.x: apart from the other tests' blocks.
        let port = free_port();
        let backend = Ipv4Addr::new(127, 98, 1, 1);
        let server = tokio::net::TcpListener::bind((backend, port))
            .await
            .unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = server.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"relay").await;
            }
        });
        let spec = StandInSpec {
            service: "media/edge".to_string(),
            address: Ipv4Addr::new(127, 98, 1, 0),
            ports: vec![(port, port)],
            backends: vec![backend],
        };
        let mut listening = Listening::default();
        assert!(listening.apply(std::slice::from_ref(&spec)).is_empty());
        let mut reply = Vec::new();
        let mut s = TcpStream::connect((spec.address, port)).await.unwrap();
        s.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"relay");
        // The same address twice: the second cannot listen and says where.
        let mut other = Listening::default();
        let failed = other.apply(std::slice::from_ref(&spec));
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].address, SocketAddr::from((spec.address, port)));
        assert!(can_listen(&spec).is_err());
        listening.apply(&[]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(can_listen(&spec).is_ok(), "closed once out of the table");
    }
}
