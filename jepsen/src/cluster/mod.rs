//! The cluster under test: real `flotilla server` processes, each in its own network
//! namespace on a private bridge (see [`net`] for the topology), reachable from the root
//! namespace where the clients run.
//!
//! Data flow: [`Cluster::start`] claims a run number, builds the network, starts one server
//! per node (`<run dir>/n<i>` data dir, `<run dir>/n<i>.log` output) and waits until every
//! node reports the same leader. The nemeses then act through [`Cluster`]'s methods (signals,
//! restarts, a skewed clock, a fresh member) and through nftables in the node namespaces.
//!
//! Invariants:
//! - everything the harness creates carries its run number and is removed by
//!   [`Cluster::teardown`], which also runs on drop (so after a panic in a test too);
//!   leftovers of a killed harness are found and removed by [`cleanup_stale`];
//! - a node's argv only changes through [`Cluster::rejoin`] (membership) — [`Cluster::restart`]
//!   reuses it, with the same data dir, so a restart is a crash-recovery, not a new member;
//! - nodes are addressed by 0-based index everywhere; their names are `n1`, `n2`, ...

mod health;
mod net;
mod process;
mod tools;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

pub use health::{status as node_status, NodeStatus};
pub use net::cleanup_stale;
pub use process::ProcState;
pub use tools::{ensure_tools, in_ns, require_root, LIBFAKETIME};

use net::Net;
use process::NodeProc;

/// Ports inside each node's namespace; every node has its own address, so they are fixed.
const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;
const API_PORT: u16 = 6443;

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// 3 or 5 (Raft needs an odd count to make the partition nemeses meaningful).
    pub nodes: usize,
    /// Data dirs and logs go here; it must exist or be creatable.
    pub run_dir: PathBuf,
    /// The `flotilla` binary.
    pub binary: PathBuf,
    pub election_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// How long [`Cluster::start`] waits for a leader everyone agrees on.
    pub start_timeout: Duration,
    /// Appended to every server's command line (the runner's `--unsafe-*` self-check modes).
    pub extra_server_args: Vec<String>,
}

impl ClusterOptions {
    pub fn new(run_dir: impl Into<PathBuf>, binary: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            nodes: 3,
            run_dir: run_dir.into(),
            binary: binary.into(),
            election_timeout_ms: 1000,
            heartbeat_interval_ms: 100,
            start_timeout: Duration::from_secs(30),
            extra_server_args: Vec::new(),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if ![3, 5].contains(&self.nodes) {
            bail!("nodes must be 3 or 5 (got {})", self.nodes);
        }
        if self.heartbeat_interval_ms == 0 || self.election_timeout_ms < 5 * self.heartbeat_interval_ms {
            bail!("election timeout must be at least 5 heartbeats");
        }
        if !self.binary.is_file() {
            bail!("{} is not a file: build it with `cargo build --bin flotilla`", self.binary.display());
        }
        Ok(())
    }
}

/// The `flotilla` binary: `$FLOTILLA_BIN`, else `target/<profile>/flotilla` next to the
/// running executable (a test in `target/<profile>/deps/` or the `flotilla-jepsen` binary).
pub fn default_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("FLOTILLA_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating the running executable")?;
    let dir = exe.parent().context("executable has no directory")?;
    let dir = if dir.ends_with("deps") { dir.parent().context("deps has no parent")? } else { dir };
    let bin = dir.join("flotilla");
    if !bin.exists() {
        bail!("{} not built: run `cargo build --bin flotilla` first (or set FLOTILLA_BIN)", bin.display());
    }
    Ok(bin)
}

/// What the harness knows about one node.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub index: usize,
    pub name: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub pid: Option<u32>,
    pub state: ProcState,
    pub client_url: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
}

/// A running cluster; torn down on drop.
pub struct Cluster {
    opts: ClusterOptions,
    net: Net,
    procs: Vec<NodeProc>,
}

impl Cluster {
    /// Build the network, start every node and wait until they agree on a leader.
    pub async fn start(opts: ClusterOptions) -> anyhow::Result<Cluster> {
        require_root()?;
        opts.validate()?;
        std::fs::create_dir_all(&opts.run_dir).with_context(|| format!("creating {}", opts.run_dir.display()))?;
        let net = Net::create(opts.nodes)?;
        let mut cluster = Cluster { procs: Vec::new(), net, opts };
        let initial = cluster.initial_cluster();
        for i in 0..cluster.opts.nodes {
            let argv = cluster.argv(i, &initial, "new");
            let log = cluster.opts.run_dir.join(format!("{}.log", name(i)));
            cluster.procs.push(NodeProc::new(cluster.net.namespaces[i].clone(), argv, log));
            cluster.procs[i].spawn()?;
        }
        tracing::info!(run = cluster.net.run, nodes = cluster.opts.nodes, "cluster started");
        let timeout = cluster.opts.start_timeout;
        cluster.wait_healthy(timeout).await.context("waiting for the new cluster to elect a leader")?;
        Ok(cluster)
    }

    /// The run number (third octet of the subnet, part of every name).
    pub fn run(&self) -> u8 {
        self.net.run
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn run_dir(&self) -> &Path {
        &self.opts.run_dir
    }

    /// Every node's etcd client URL, in node order, reachable from the root namespace.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.client_url(i)).collect()
    }

    pub fn node(&self, i: usize) -> NodeInfo {
        let p = &self.procs[i];
        NodeInfo {
            index: i,
            name: name(i),
            ip: self.net.node_ip(i),
            netns: p.netns.clone(),
            pid: p.pid(),
            state: p.state(),
            client_url: self.client_url(i),
            peer_url: self.peer_url(i),
            data_dir: self.data_dir(i),
        }
    }

    /// SIGKILL node `i` (no-op if it is not running).
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        tracing::info!(node = %name(i), "kill -9");
        self.procs[i].kill()
    }

    /// Kill node `i` if needed and start it again with the same argv and data dir.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.procs[i].kill()?;
        tracing::info!(node = %name(i), "restart");
        self.procs[i].spawn()
    }

    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        tracing::info!(node = %name(i), "SIGSTOP");
        self.procs[i].set_paused(true)
    }

    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        tracing::info!(node = %name(i), "SIGCONT");
        self.procs[i].set_paused(false)
    }

    /// Restart node `i` with its clock shifted by `offset` (libfaketime syntax, e.g. `+30s`,
    /// `-1h`), or back on the real clock with `None`.
    pub fn set_clock(&mut self, i: usize, offset: Option<&str>) -> anyhow::Result<()> {
        self.procs[i].env = match offset {
            Some(o) => vec![("LD_PRELOAD".into(), LIBFAKETIME.into()), ("FAKETIME".into(), o.into())],
            None => Vec::new(),
        };
        tracing::info!(node = %name(i), ?offset, "restart with clock offset");
        self.restart(i)
    }

    /// Nodes whose process exited without the harness stopping it (a crash: a finding, not
    /// a fault), reaped and marked stopped. Their logs say why.
    pub fn crashed(&mut self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.procs[i].exited().is_some()).collect()
    }

    /// Whether node `i` runs under libfaketime.
    pub fn clock_skewed(&self, i: usize) -> bool {
        !self.procs[i].env.is_empty()
    }

    /// Replace node `i`'s process by a fresh member joining an existing cluster: kill it, wipe
    /// its data dir, start it with `--initial-cluster-state existing` and `initial_cluster`
    /// (`name=peer_url,...`, as etcd's member add prints it). Used after a `MemberAdd`.
    pub fn rejoin(&mut self, i: usize, initial_cluster: &str) -> anyhow::Result<()> {
        self.procs[i].kill()?;
        let dir = self.data_dir(i);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("wiping {}", dir.display()))?;
        }
        self.procs[i].argv = self.argv(i, initial_cluster, "existing");
        tracing::info!(node = %name(i), initial_cluster, "rejoin as a new member");
        self.procs[i].spawn()
    }

    /// `name=peer_url,...` of the original members.
    pub fn initial_cluster(&self) -> String {
        (0..self.opts.nodes).map(|i| format!("{}={}", name(i), self.peer_url(i))).collect::<Vec<_>>().join(",")
    }

    /// Kill every process and remove the network. Idempotent; also runs on drop.
    pub fn teardown(&mut self) -> anyhow::Result<()> {
        for p in &mut self.procs {
            p.kill()?;
        }
        self.net.teardown()
    }

    fn argv(&self, i: usize, initial_cluster: &str, state: &str) -> Vec<String> {
        let (client, peer) = (self.client_url(i), self.peer_url(i));
        let api = format!("http://{}:{API_PORT}", self.net.node_ip(i));
        let mut argv = vec![self.opts.binary.to_string_lossy().into_owned(), "server".into()];
        for (flag, value) in [
            ("--name", name(i)),
            ("--data-dir", self.data_dir(i).to_string_lossy().into_owned()),
            ("--listen-client-urls", client.clone()),
            ("--advertise-client-urls", client),
            ("--listen-peer-urls", peer.clone()),
            ("--initial-advertise-peer-urls", peer),
            ("--initial-cluster", initial_cluster.to_owned()),
            ("--initial-cluster-state", state.to_owned()),
            ("--initial-cluster-token", format!("flotilla-jepsen-{}", self.net.run)),
            ("--listen-api-url", api),
            ("--heartbeat-interval", self.opts.heartbeat_interval_ms.to_string()),
            ("--election-timeout", self.opts.election_timeout_ms.to_string()),
        ] {
            argv.push(flag.into());
            argv.push(value);
        }
        // The harness's clients speak plain HTTP (docs/JEPSEN.md).
        argv.push("--insecure-plaintext".into());
        argv.extend(self.opts.extra_server_args.iter().cloned());
        argv
    }

    fn client_url(&self, i: usize) -> String {
        format!("http://{}:{CLIENT_PORT}", self.net.node_ip(i))
    }

    fn peer_url(&self, i: usize) -> String {
        format!("http://{}:{PEER_PORT}", self.net.node_ip(i))
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.opts.run_dir.join(name(i))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(run = self.net.run, error = %e, "tearing down the cluster");
        }
    }
}

/// Node `i`'s name: `n1`, `n2`, ...
pub fn name(i: usize) -> String {
    format!("n{}", i + 1)
}
