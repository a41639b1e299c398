//! A process known by its pid *and* its start time (`/proc/<pid>/stat`, field 22), so a pid
//! the kernel has since given to another process is never mistaken for a relay a previous
//! run started. Linux only; the parsing is pure.

use std::path::PathBuf;

/// A process that was running at some point: `pid` started `start_ticks` clock ticks after
/// boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    pub start_ticks: u64,
}

impl ProcessId {
    /// `pid` as it is now, if it runs.
    pub fn of(pid: u32) -> Option<ProcessId> {
        let (state, start_ticks) = parse_stat(&std::fs::read_to_string(stat_path(pid)).ok()?)?;
        (!exited(state)).then_some(ProcessId { pid, start_ticks })
    }

    /// Whether this very process still runs (not exited, not a zombie, pid not reused).
    pub fn is_running(&self) -> bool {
        ProcessId::of(self.pid).is_some_and(|now| now == *self)
    }

    /// Sends `signal` if this very process still runs; returns whether it was sent.
    pub fn signal(&self, signal: libc::c_int) -> bool {
        if !self.is_running() {
            return false;
        }
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return false;
        };
        // SAFETY: kill(2) on a pid just checked to be this process; no memory is involved.
        unsafe { libc::kill(pid, signal) == 0 }
    }
}

fn stat_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/stat"))
}

/// Zombie (`Z`), dead (`X`, `x`): gone for our purposes.
fn exited(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// The state and start time (field 22) of a `/proc/<pid>/stat` line. The command name
/// (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are
/// counted from its last `)`.
pub fn parse_stat(line: &str) -> Option<(char, u64)> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // Field 3 (state) is the first after the name; field 22 is 19 further on.
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_counted_from_the_names_last_parenthesis() {
        let line = "4242 (surge (relay) x) S 1 4242 4242 0 -1 4194560 1207 0 0 0 3 1 0 0 20 0 \
                    9 0 987654 123 456";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("12 (a) Z 1 2 3"), None, "too short");
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn this_process_runs_and_a_changed_start_time_is_another_process() {
        let me = ProcessId::of(std::process::id()).expect("this process has a stat line");
        assert!(me.is_running());
        let other = ProcessId {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(
            !other.is_running(),
            "same pid, another start: not the same process"
        );
        assert!(!other.signal(0));
        assert!(me.signal(0), "signal 0 only checks");
    }

    #[test]
    fn an_exited_child_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId::of(child.id());
        child.wait().unwrap();
        if let Some(id) = id {
            assert!(!id.is_running());
        }
    }
}
