//! One `flotilla server` process inside its node's namespace.
//!
//! Started as `ip netns exec <ns> <flotilla> server ...`; `ip` execs the binary in place, so
//! the child's pid is the server's and signals reach it directly. Output goes to
//! `<run dir>/<node>.log`, appended across restarts so one file tells the node's whole story.
//!
//! Invariants: at most one live child per node; a child is always reaped after SIGKILL (no
//! zombies), and a paused child is never left stopped by [`NodeProc::kill`].

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// What a node's process is doing, as the harness last made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    Running,
    Paused,
    Stopped,
}

/// The process of one node and how to start it again.
#[derive(Debug)]
pub struct NodeProc {
    pub netns: String,
    pub argv: Vec<String>,
    /// Extra environment (libfaketime's preload while the clock is skewed).
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    child: Option<Child>,
    state: ProcState,
}

impl NodeProc {
    pub fn new(netns: String, argv: Vec<String>, log: PathBuf) -> Self {
        NodeProc { netns, argv, env: Vec::new(), log, child: None, state: ProcState::Stopped }
    }

    pub fn state(&self) -> ProcState {
        self.state
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start the process; it must not be running.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        assert!(self.child.is_none(), "{}: spawn while a process is still running", self.netns);
        let log = open_log(&self.log)?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(&self.argv)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} in {}", self.argv[0], self.netns))?;
        tracing::debug!(netns = %self.netns, pid = child.id(), "started");
        self.child = Some(child);
        self.state = ProcState::Running;
        Ok(())
    }

    /// SIGKILL and reap. No-op when not running.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // SIGKILL ends a stopped process too; std's kill sends SIGKILL.
            let _ = child.kill();
            child.wait().with_context(|| format!("reaping the process of {}", self.netns))?;
        }
        self.state = ProcState::Stopped;
        Ok(())
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn set_paused(&mut self, paused: bool) -> anyhow::Result<()> {
        let pid = self.pid().with_context(|| format!("{} has no process to pause/resume", self.netns))?;
        let sig = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: kill(2) on our own child, which is not yet reaped so the pid is still ours.
        if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
            return Err(std::io::Error::last_os_error()).context("signalling the node");
        }
        self.state = if paused { ProcState::Paused } else { ProcState::Running };
        Ok(())
    }

    /// Whether the child exited by itself (a crash); reaps it if so.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.state = ProcState::Stopped;
        Some(status)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn open_log(path: &Path) -> anyhow::Result<std::fs::File> {
    OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening {}", path.display()))
}
