//! The hollow nodes: one `flotilla agent --runtime fake --simulate N` process in the root
//! namespace, talking to every API replica.
//!
//! Invariants: the process is killed when [`Agent::stop`] runs or the value is dropped
//! (`kill_on_drop`), and its data dir (a fresh temp dir holding `agent.log`) is removed by
//! `stop`. [`Agent::check`] (called on every observation) and `stop` note whether the
//! process still runs: an exit before teardown is dated by the last check that found it
//! running, which is the earliest it can have happened, so the checker's "the agent had
//! stopped for so long" is never overstated.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::checker::control_plane::{AgentExit, AgentRun};

/// Hollow nodes to run: enough to spread pods and to show a double binding.
const NODES: usize = 3;

pub struct Agent {
    child: Child,
    dir: PathBuf,
    /// When it was spawned (history clock).
    pub started_ns: u64,
    /// The last time a check found it running.
    last_running_ns: u64,
    exit: Option<AgentExit>,
}

impl Agent {
    /// Starts the agent with node names `<prefix>0..`; `now_ns` is the history clock.
    pub async fn start(urls: &[String], prefix: &str, now_ns: u64) -> anyhow::Result<Agent> {
        let binary = crate::cluster::default_binary()?;
        let dir = std::env::temp_dir().join(format!("flotilla-jepsen-{prefix}agent"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = std::fs::File::create(dir.join("agent.log")).context("creating agent.log")?;
        let child = Command::new(&binary)
            .args(["agent", "--runtime", "fake", "--simulate", &NODES.to_string()])
            .args(["--node-name-prefix", prefix, "--server", &urls.join(","), "--insecure-plaintext"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cloning the log handle")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} agent", binary.display()))?;
        Ok(Agent { child, dir, started_ns: now_ns, last_running_ns: now_ns, exit: None })
    }

    /// Notes whether the process still runs at `now_ns`; the first time it has exited,
    /// records the exit.
    pub fn check(&mut self, now_ns: u64) {
        if self.exit.is_some() {
            return;
        }
        match self.child.try_wait() {
            Ok(None) => self.last_running_ns = now_ns,
            Ok(Some(status)) => {
                tracing::warn!(%status, "control-plane workload: the agent exited during the run");
                let last_running_ns = self.last_running_ns;
                self.exit = Some(AgentExit { last_running_ns, noticed_ns: now_ns, status: status.to_string() });
            }
            Err(e) => tracing::warn!(error = %e, "control-plane workload: polling the agent"),
        }
    }

    /// Checks it a last time at `now_ns`, kills it, waits for it, removes its directory,
    /// and returns its run as the history records it.
    pub async fn stop(&mut self, now_ns: u64) -> AgentRun {
        self.check(now_ns);
        if let Err(e) = self.child.kill().await {
            tracing::warn!(error = %e, "control-plane workload: stopping the agent");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "control-plane workload: removing the agent dir");
        }
        AgentRun { exit: self.exit.clone() }
    }
}
