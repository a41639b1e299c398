//! What a fleet leaves on disk so that a restarted `surge-operator local` can adopt it:
//! one record per running relay (`relays/<name>.json`) and the Service stand-ins' process
//! (`stand-ins.pid`) with their table (`stand-ins.json`, see [`super::stand_ins`]). Written
//! as relays start, become Ready, are told to stop and exit; removed by a clean shutdown, so
//! only a run that was killed leaves records. IO (each write atomic), over plain data.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::proc_stat::ProcessId;

/// A relay as its fleet ran it: enough to take it back without restarting it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelayRecord {
    pub name: String,
    pub deployment: String,
    pub namespace: String,
    pub region: String,
    /// The pod's labels (its tier among them).
    pub labels: BTreeMap<String, String>,
    pub address: Ipv4Addr,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub probe: SocketAddr,
    pub serial: u64,
    pub process: ProcessId,
    /// Wall clock of its start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// From start to its first Ready, once it was.
    pub ready_after_ms: Option<u64>,
    /// Told to stop (taken out of its Services; SIGTERM follows or was sent).
    pub stopping: bool,
    pub args: Vec<String>,
}

/// A fleet's state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(root: PathBuf) -> StateDir {
        StateDir { root }
    }

    fn relays_dir(&self) -> PathBuf {
        self.root.join("relays")
    }

    fn relay_path(&self, name: &str) -> PathBuf {
        self.relays_dir().join(format!("{name}.json"))
    }

    /// The stand-ins' table, which their process reads.
    pub fn stand_ins_table(&self) -> PathBuf {
        self.root.join("stand-ins.json")
    }

    fn stand_ins_pid(&self) -> PathBuf {
        self.root.join("stand-ins.pid")
    }

    fn owner_pid(&self) -> PathBuf {
        self.root.join("operator.pid")
    }

    /// Makes this process the fleet's owner: fails with the owner's id when another running
    /// process holds it (two operators must not run one fleet). An owner that is gone (killed)
    /// is replaced: that is the restart this directory is for.
    pub fn take_ownership(&self) -> Result<(), ProcessId> {
        let me = ProcessId::of(std::process::id());
        let owner: Option<ProcessId> = std::fs::read_to_string(self.owner_pid())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(owner) = owner
            && Some(owner) != me
            && owner.is_running()
        {
            return Err(owner);
        }
        if let Some(me) = me
            && let Ok(text) = serde_json::to_string(&me)
            && let Err(e) = write_atomically(&self.owner_pid(), &text)
        {
            tracing::warn!(error = %e, "the fleet's owner record was not written");
        }
        Ok(())
    }

    pub fn write_relay(&self, record: &RelayRecord) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
        write_atomically(&self.relay_path(&record.name), &text)
    }

    pub fn remove_relay(&self, name: &str) {
        let _ = std::fs::remove_file(self.relay_path(name));
    }

    /// Every relay record, and the files that could not be read as one (with why).
    pub fn relays(&self) -> (Vec<RelayRecord>, Vec<(PathBuf, String)>) {
        let (mut records, mut unreadable) = (Vec::new(), Vec::new());
        let Ok(entries) = std::fs::read_dir(self.relays_dir()) else {
            return (records, unreadable);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(r) => records.push(r),
                Err(why) => unreadable.push((path, why)),
            }
        }
        records.sort_by(|a: &RelayRecord, b| a.name.cmp(&b.name));
        (records, unreadable)
    }

    pub fn write_stand_ins_pid(&self, id: ProcessId) -> std::io::Result<()> {
        let text = serde_json::to_string(&id).map_err(std::io::Error::other)?;
        write_atomically(&self.stand_ins_pid(), &text)
    }

    pub fn stand_ins_pid_record(&self) -> Option<ProcessId> {
        serde_json::from_str(&std::fs::read_to_string(self.stand_ins_pid()).ok()?).ok()
    }

    /// Removes every record (a clean shutdown: nothing is left to adopt).
    pub fn clear(&self) {
        let _ = std::fs::remove_dir_all(self.relays_dir());
        let _ = std::fs::remove_file(self.stand_ins_pid());
        let _ = std::fs::remove_file(self.stand_ins_table());
        let _ = std::fs::remove_file(self.owner_pid());
    }
}

/// Replaces `path` with `text` whole (a reader sees the old or the new file, never half).
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    super::hosts_file::write_atomically(path, text)
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> RelayRecord {
        RelayRecord {
            name: name.to_string(),
            deployment: "demo-edge-us".to_string(),
            namespace: "default".to_string(),
            region: "us".to_string(),
            labels: BTreeMap::from([("surge.dev/tier".to_string(), "edge".to_string())]),
            address: Ipv4Addr::new(127, 200, 3, 1),
            rtmp: "127.200.3.1:1935".parse().unwrap(),
            http: "127.200.3.1:8080".parse().unwrap(),
            probe: "127.200.3.1:9102".parse().unwrap(),
            serial: 4,
            process: ProcessId {
                pid: 77,
                start_ticks: 1234,
            },
            started_unix_ms: 1_700_000_000_000,
            ready_after_ms: Some(2500),
            stopping: false,
            args: vec!["--role".to_string(), "edge".to_string()],
        }
    }

    #[test]
    fn records_come_back_as_written_until_removed_or_cleared() {
        let root = std::env::temp_dir().join(format!("surge-state-dir-{}", std::process::id()));
        let state = StateDir::new(root.clone());
        assert_eq!(state.relays().0, []);
        let (a, b) = (record("demo-edge-us-4"), record("demo-edge-us-5"));
        state.write_relay(&b).unwrap();
        state.write_relay(&a).unwrap();
        let mut stopping = a.clone();
        stopping.stopping = true;
        state.write_relay(&stopping).unwrap();
        assert_eq!(state.relays().0, [stopping, b.clone()]);
        state.remove_relay("demo-edge-us-4");
        assert_eq!(state.relays().0, [b]);
        std::fs::write(state.relays_dir().join("broken.json"), "{").unwrap();
        let (_, unreadable) = state.relays();
        assert_eq!(unreadable.len(), 1);
        let id = ProcessId {
            pid: 9,
            start_ticks: 10,
        };
        state.write_stand_ins_pid(id).unwrap();
        assert_eq!(state.stand_ins_pid_record(), Some(id));
        state.clear();
        assert_eq!(state.relays(), (vec![], vec![]));
        assert_eq!(state.stand_ins_pid_record(), None);
        // Owned by this process: taken again by it; a running other owner refuses.
        assert_eq!(state.take_ownership(), Ok(()));
        assert_eq!(state.take_ownership(), Ok(()));
        let mut other = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let id = ProcessId::of(other.id()).unwrap();
        write_atomically(&state.owner_pid(), &serde_json::to_string(&id).unwrap()).unwrap();
        assert_eq!(state.take_ownership(), Err(id));
        other.kill().unwrap();
        other.wait().unwrap();
        assert_eq!(state.take_ownership(), Ok(()), "a gone owner is replaced");
        let _ = std::fs::remove_dir_all(root);
    }
}
