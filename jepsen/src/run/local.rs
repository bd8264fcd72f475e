//! A plain local cluster as the [`Target`]: `flotilla up --dir D --replicas N` on loopback,
//! no network namespaces, no faults. It makes the runner and the workloads testable
//! without root; the namespace cluster replaces it for fault runs.
//!
//! Invariants: the endpoints are read from `D/cluster.json`, which `up` writes only once
//! every replica answers and a leader is agreed; the `up` process (which owns the replicas)
//! gets SIGTERM on [`LocalCluster::stop`] and, as a last resort, on drop, so no replica
//! outlives the harness.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use tokio::process::{Child, Command};

use super::Target;

/// How long `up` may take to write cluster.json (elections, first start of RocksDB).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `up` gets to stop its replicas after SIGTERM (it gives each 10 s itself).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between looks at cluster.json.
const POLL: Duration = Duration::from_millis(100);

#[derive(Deserialize)]
struct ClusterFile {
    replicas: Vec<Replica>,
}

#[derive(Deserialize)]
struct Replica {
    client_url: String,
}

/// A cluster started by `flotilla up`.
#[derive(Debug)]
pub struct LocalCluster {
    up: Child,
    endpoints: Vec<String>,
    pub dir: PathBuf,
}

impl LocalCluster {
    /// Starts `nodes` replicas with `bin up` in `dir` and waits until they are ready.
    /// `server_args` (the `--unsafe-*` self-check flags) cannot be passed through `up`
    /// yet, so any is refused rather than silently ignored.
    pub async fn start(bin: &Path, dir: &Path, nodes: usize, server_args: &[String]) -> anyhow::Result<Self> {
        if !server_args.is_empty() {
            bail!("`flotilla up` cannot pass server flags {server_args:?} to its replicas yet");
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = std::fs::File::create(dir.join("up.log")).context("creating up.log")?;
        let up = Command::new(bin)
            .args(["up", "--dir"])
            .arg(dir)
            // The checkers' clients speak plain gRPC; local runs are on loopback.
            .args(["--replicas", &nodes.to_string(), "--no-demo", "--insecure-plaintext"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} up", bin.display()))?;
        let mut cluster = Self { up, endpoints: Vec::new(), dir: dir.to_path_buf() };
        cluster.endpoints = cluster.wait_ready().await?;
        Ok(cluster)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let path = self.dir.join("cluster.json");
        loop {
            if let Ok(raw) = std::fs::read(&path) {
                let file: ClusterFile = serde_json::from_slice(&raw).context("parsing cluster.json")?;
                return Ok(file.replicas.into_iter().map(|r| r.client_url).collect());
            }
            if let Some(status) = self.up.try_wait()? {
                bail!(
                    "flotilla up exited with {status} before the cluster was ready (see {}/up.log)",
                    self.dir.display()
                );
            }
            if Instant::now() >= deadline {
                bail!("the cluster was not ready within {READY_TIMEOUT:?} (see {}/up.log)", self.dir.display());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGTERM to `up`, which stops the replicas; waits for it, then kills it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.terminate();
        if tokio::time::timeout(STOP_TIMEOUT, self.up.wait()).await.is_err() {
            self.up.kill().await.context("killing flotilla up")?;
            bail!("flotilla up did not stop within {STOP_TIMEOUT:?}");
        }
        Ok(())
    }

    fn terminate(&self) {
        if let Some(pid) = self.up.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) on our own child's pid, with a valid signal number.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Without this, dropping the Child would leave `up` and its replicas running.
        if matches!(self.up.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

impl Target for LocalCluster {
    fn endpoints(&self) -> Vec<String> {
        self.endpoints.clone()
    }
}
