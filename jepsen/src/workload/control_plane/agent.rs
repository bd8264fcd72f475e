//! The hollow nodes: one `flotilla agent --runtime fake --simulate N` process in the root
//! namespace, talking to every API replica.
//!
//! Invariants: the process is killed when [`Agent::stop`] runs or the value is dropped
//! (`kill_on_drop`), and its data dir (a fresh temp dir holding `agent.log`) is removed by
//! `stop`.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use tokio::process::{Child, Command};

/// Hollow nodes to run: enough to spread pods and to show a double binding.
const NODES: usize = 3;

pub struct Agent {
    child: Child,
    dir: PathBuf,
}

impl Agent {
    /// Starts the agent with node names `<prefix>0..`.
    pub async fn start(urls: &[String], prefix: &str) -> anyhow::Result<Agent> {
        let binary = crate::cluster::default_binary()?;
        let dir = std::env::temp_dir().join(format!("flotilla-jepsen-{prefix}agent"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = std::fs::File::create(dir.join("agent.log")).context("creating agent.log")?;
        let child = Command::new(&binary)
            .args(["agent", "--runtime", "fake", "--simulate", &NODES.to_string()])
            .args(["--node-name-prefix", prefix, "--server", &urls.join(",")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cloning the log handle")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} agent", binary.display()))?;
        Ok(Agent { child, dir })
    }

    /// Kills the agent, waits for it, and removes its directory.
    pub async fn stop(&mut self) {
        if let Err(e) = self.child.kill().await {
            tracing::warn!(error = %e, "control-plane workload: stopping the agent");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "control-plane workload: removing the agent dir");
        }
    }
}
