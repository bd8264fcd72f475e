//! Who owns which service table, so that the tables of agents that died (SIGKILL, a crash,
//! OOM) and never came back do not keep catching traffic.
//!
//! Every agent records itself as its table's owner in `OWNER_DIR/<table>` before it first
//! programs the table: its pid and the process's start time (field 22 of
//! `/proc/<pid>/stat`, so a recycled pid is not mistaken for the owner). Every agent sweeps
//! now and then: a `flotilla-svc-*` table in its network namespace whose recorded owner is
//! no longer running is deleted, with its record. A stopping agent deletes its own table
//! and record.
//!
//! Invariants:
//! - a table is deleted only when its owner is known and provably gone; a table without a
//!   record (an agent that is just starting, one from an older release) is left alone;
//! - an agent never sweeps its own table (a restarted agent takes its table over: the new
//!   record replaces the old one before the first apply).
//!
//! The records are per host, the tables per network namespace: agents sharing a host share
//! both, which is the case this is for (one host's agents, typically of test clusters,
//! outliving each other).

use std::io;
use std::path::{Path, PathBuf};

use super::nft;

/// Where owners are recorded (a tmpfs on most hosts: records go with the tables at reboot).
pub const OWNER_DIR: &str = "/run/flotilla/services";
/// The tables this sweeps: every agent's table starts so (see `runner::table_name`).
pub const TABLE_PREFIX: &str = "flotilla-svc-";

/// A running process, told apart from a later one with the same pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub start: u64,
}

impl Process {
    /// This process.
    pub fn me() -> io::Result<Self> {
        let pid = std::process::id();
        Self::find(pid).ok_or_else(|| io::Error::other("cannot read this process's start time"))
    }

    /// The process `pid` if it is running (a zombie, dead but not yet reaped, is not), with
    /// its start time.
    pub fn find(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count from the last `)`.
        let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
        if matches!(fields.next()?, "Z" | "X") {
            return None;
        }
        let start = fields.nth(18)?.parse().ok()?;
        Some(Self { pid, start })
    }

    fn alive(self) -> bool {
        Self::find(self.pid) == Some(self)
    }

    fn record(self) -> String {
        format!("{} {}\n", self.pid, self.start)
    }

    fn parse(text: &str) -> Option<Self> {
        let mut fields = text.split_whitespace();
        Some(Self { pid: fields.next()?.parse().ok()?, start: fields.next()?.parse().ok()? })
    }
}

/// The owner records of one directory.
#[derive(Debug, Clone)]
pub struct Owners {
    dir: PathBuf,
}

impl Default for Owners {
    fn default() -> Self {
        Self::new(OWNER_DIR)
    }
}

impl Owners {
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self { dir: dir.as_ref().to_path_buf() }
    }

    /// Record `owner` as `table`'s owner (replacing an earlier record).
    pub fn claim(&self, table: &str, owner: Process) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{table}.{}", owner.pid));
        std::fs::write(&tmp, owner.record())?;
        std::fs::rename(tmp, self.dir.join(table))
    }

    /// Forget `table`'s owner.
    pub fn release(&self, table: &str) {
        let _ = std::fs::remove_file(self.dir.join(table));
    }

    /// `table`'s recorded owner.
    pub fn owner(&self, table: &str) -> Option<Process> {
        Process::parse(&std::fs::read_to_string(self.dir.join(table)).ok()?)
    }

    /// Of `tables`, those (other than `own`) whose recorded owner is not running.
    pub fn orphans<'a>(&self, tables: &'a [String], own: &str) -> Vec<&'a str> {
        tables
            .iter()
            .map(String::as_str)
            .filter(|t| *t != own && t.starts_with(TABLE_PREFIX))
            .filter(|t| self.owner(t).is_some_and(|p| !p.alive()))
            .collect()
    }

    /// Delete the orphaned service tables of this network namespace and their records;
    /// returns their names.
    pub async fn sweep(&self, own: &str) -> io::Result<Vec<String>> {
        let tables = nft::tables().await.map_err(|e| io::Error::other(e.to_string()))?;
        let mut removed = Vec::new();
        for table in self.orphans(&tables, own) {
            nft::remove(table).await.map_err(|e| io::Error::other(e.to_string()))?;
            self.release(table);
            removed.push(table.to_string());
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that has certainly exited: a child that was reaped.
    fn dead_process() -> Process {
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let found = Process::find(child.id()).expect("the child sleeps");
        child.kill().unwrap();
        child.wait().unwrap();
        found
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        let me = Process::me().unwrap();
        assert!(me.alive());
        assert!(!Process { start: me.start + 1, ..me }.alive(), "same pid, other start: a recycled pid");
        assert!(!dead_process().alive());
    }

    #[test]
    fn a_zombie_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Not reaped yet: once it has exited it stays a zombie until `wait`.
        while Process::find(child.id()).is_some() {
            assert!(std::time::Instant::now() < deadline, "the child never exited");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(std::fs::metadata(format!("/proc/{}", child.id())).is_ok(), "still a zombie, not reaped");
        child.wait().unwrap();
    }

    #[test]
    fn orphans_are_tables_whose_recorded_owner_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let owners = Owners::new(dir.path());
        let me = Process::me().unwrap();
        owners.claim("flotilla-svc-live", me).unwrap();
        owners.claim("flotilla-svc-dead", dead_process()).unwrap();
        owners.claim("flotilla-svc-mine", dead_process()).unwrap();
        owners.claim("other-dead", dead_process()).unwrap();
        let tables: Vec<String> =
            ["flotilla-svc-live", "flotilla-svc-dead", "flotilla-svc-mine", "flotilla-svc-unrecorded", "other-dead"]
                .map(String::from)
                .into();
        assert_eq!(owners.orphans(&tables, "flotilla-svc-mine"), vec!["flotilla-svc-dead"]);
        owners.claim("flotilla-svc-dead", me).unwrap();
        assert!(owners.orphans(&tables, "flotilla-svc-mine").is_empty(), "a new claim replaces the record");
        owners.release("flotilla-svc-live");
        assert_eq!(owners.owner("flotilla-svc-live"), None);
    }
}
