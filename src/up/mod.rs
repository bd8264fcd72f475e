//! `flotilla up`: a local cluster of replicas as child processes on free loopback ports.
//!
//! `DIR/cluster.json` is written only once every replica answers and they agree on a
//! leader. It lists each replica's exact command line, so a test can kill one replica and
//! restart it with the same argv; run again on the same DIR, `up` resumes the same cluster.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::server::wait_for_signal;

mod agents;
mod containerd;
pub use agents::AgentInfo;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Directory for the replicas' data, logs and cluster.json.
    #[arg(long)]
    dir: PathBuf,
    /// Number of replicas (an odd number from 1 to 7).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Node agents to start (`flotilla agent`, one process each, nodes `agent-1`…).
    #[arg(long, default_value_t = 0)]
    agents: usize,
    /// The agents' container runtime: `docker`, `containerd`, `process` (host processes, no
    /// isolation), `fake` (pods reported Running, nothing executes), or `auto`: docker when
    /// a Docker daemon answers, else process.
    #[arg(long, value_enum, default_value = "auto")]
    agent_runtime: agents::RuntimeChoice,
    /// Seconds without a heartbeat before a node is NotReady (`flotilla server
    /// --node-monitor-grace-period`; upstream's 40 s is shortened for a laptop).
    #[arg(long, default_value_t = 20)]
    node_monitor_grace_period: u64,
    /// With `--agent-runtime containerd`: the daemon's socket; when none answers there, a
    /// private containerd is started with its files next to the socket.
    #[arg(long, default_value = "/var/tmp/flotilla-containerd/containerd.sock")]
    containerd_address: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicaInfo {
    pub name: String,
    pub pid: u32,
    pub argv: Vec<String>,
    pub client_url: String,
    pub peer_url: String,
    /// Base URL of this replica's Kubernetes API.
    #[serde(default)]
    pub api_url: String,
    pub data_dir: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterFile {
    pub replicas: Vec<ReplicaInfo>,
    #[serde(default)]
    pub agents: Vec<AgentInfo>,
}

/// How long the cluster may take to elect a leader and answer on every replica.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long children get to exit after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Pause between readiness probes.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(200);

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    if args.replicas == 0 || args.replicas > 7 || args.replicas % 2 == 0 {
        bail!("--replicas must be 1, 3, 5 or 7 (got {})", args.replicas);
    }
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let cluster_file = dir.join("cluster.json");
    let (mut plan, mut agents) = match std::fs::read(&cluster_file) {
        Ok(raw) => {
            let previous: ClusterFile = serde_json::from_slice(&raw).context("reading the existing cluster.json")?;
            println!("flotilla: resuming the cluster in {}", dir.display());
            (previous.replicas, previous.agents)
        }
        Err(_) => {
            let plan = fresh_plan(&dir, args.replicas, args.node_monitor_grace_period)?;
            let socket = &args.containerd_address;
            let runtime = agents::resolve(args.agent_runtime, args.agents, socket).await?;
            let agents = agents::plan(&dir, &plan, args.agents, runtime, socket)?;
            (plan, agents)
        }
    };
    let mut children = Vec::new();
    for r in plan.iter_mut() {
        let child = spawn(r, &dir).await?;
        r.pid = child.id().context("child exited at once")?;
        children.push(child);
    }
    let ready = wait_ready(&plan, &mut children).await;
    if let Err(e) = ready {
        stop(children).await;
        return Err(e);
    }
    let leader = ready?;
    for a in agents.iter_mut() {
        let child = spawn_logged(&a.argv, &dir.join(format!("{}.log", a.name)), &a.name).await?;
        a.pid = child.id().context("agent exited at once")?;
        children.push(child);
    }
    if !agents.is_empty() {
        println!("flotilla: waiting for {} agents to register their nodes", agents.len());
        if let Err(e) = agents::wait_nodes(&plan, &agents).await {
            stop(children).await;
            return Err(e);
        }
    }
    let json = serde_json::to_vec_pretty(&ClusterFile { replicas: plan.clone(), agents: agents.clone() })?;
    let tmp = dir.join("cluster.json.tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, &cluster_file)?;
    let kubeconfig = dir.join("kubeconfig");
    write_kubeconfig(&kubeconfig, &plan)?;
    print_next_steps(&plan, &agents, &leader, &cluster_file, &kubeconfig);
    wait_for_signal().await?;
    println!("flotilla: stopping {} replicas and {} agents", plan.len(), agents.len());
    stop_restarted(&cluster_file, &children);
    stop(children).await;
    Ok(())
}

/// SIGTERM replicas that were restarted by someone else (`bench-failover` writes their new
/// pids to cluster.json); our own children are stopped by [`stop`].
fn stop_restarted(cluster_file: &Path, children: &[Child]) {
    let Ok(raw) = std::fs::read(cluster_file) else { return };
    let Ok(file) = serde_json::from_slice::<ClusterFile>(&raw) else { return };
    let ours: Vec<u32> = children.iter().filter_map(Child::id).collect();
    for r in file.replicas.iter().filter(|r| r.pid != 0 && !ours.contains(&r.pid)) {
        // SAFETY: kill(2) with a pid from our cluster file and a valid signal.
        unsafe { libc::kill(r.pid as libc::pid_t, libc::SIGTERM) };
    }
}

fn fresh_plan(dir: &Path, n: usize, node_grace: u64) -> anyhow::Result<Vec<ReplicaInfo>> {
    // Hold every listener until all ports are chosen so no two replicas get the same one.
    let listeners: Vec<std::net::TcpListener> =
        (0..3 * n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
    drop(listeners);
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let names: Vec<String> = (1..=n).map(|i| format!("r{i}")).collect();
    let peer_urls: Vec<String> = (0..n).map(|i| format!("http://127.0.0.1:{}", ports[2 * i + 1])).collect();
    let initial: Vec<String> = names.iter().zip(&peer_urls).map(|(n, u)| format!("{n}={u}")).collect();
    Ok((0..n)
        .map(|i| {
            let client_url = format!("http://127.0.0.1:{}", ports[2 * i]);
            let api_url = format!("http://127.0.0.1:{}", ports[2 * n + i]);
            let data_dir = dir.join(&names[i]);
            let argv = vec![
                exe.clone(),
                "server".into(),
                "--name".into(),
                names[i].clone(),
                "--data-dir".into(),
                data_dir.to_string_lossy().into_owned(),
                "--listen-client-urls".into(),
                client_url.clone(),
                "--advertise-client-urls".into(),
                client_url.clone(),
                "--listen-peer-urls".into(),
                peer_urls[i].clone(),
                "--initial-advertise-peer-urls".into(),
                peer_urls[i].clone(),
                "--initial-cluster".into(),
                initial.join(","),
                "--initial-cluster-token".into(),
                format!("flotilla-up-{}", std::process::id()),
                "--listen-api-url".into(),
                api_url.clone(),
                "--node-monitor-grace-period".into(),
                node_grace.to_string(),
            ];
            let peer_url = peer_urls[i].clone();
            ReplicaInfo { name: names[i].clone(), pid: 0, argv, client_url, peer_url, api_url, data_dir }
        })
        .collect())
}

async fn spawn(r: &ReplicaInfo, dir: &Path) -> anyhow::Result<Child> {
    spawn_logged(&r.argv, &dir.join(format!("{}.log", r.name)), &r.name).await
}

/// Start `argv` with stdout and stderr appended to `log`.
async fn spawn_logged(argv: &[String], log: &Path, name: &str) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {name}"))
}

/// Wait until every replica answers Status, all name the same leader, and the membership
/// lists every replica's client URL; returns the leader's name.
async fn wait_ready(plan: &[ReplicaInfo], children: &mut [Child]) -> anyhow::Result<String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        for (r, c) in plan.iter().zip(children.iter_mut()) {
            if let Some(status) = c.try_wait()? {
                bail!("replica {} exited ({status}); see {}.log", r.name, r.data_dir.with_extension("log").display());
            }
        }
        if let Some(leader) = agreed_leader(plan).await {
            if apis_ready(plan).await {
                return Ok(leader);
            }
        }
        if Instant::now() > deadline {
            bail!("the cluster did not elect a leader within {READY_TIMEOUT:?}; see the replicas' logs");
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

async fn agreed_leader(plan: &[ReplicaInfo]) -> Option<String> {
    let mut leader = None;
    let mut id_to_name = std::collections::HashMap::new();
    for r in plan {
        let opts = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        let mut c = etcd_client::Client::connect([r.client_url.as_str()], Some(opts)).await.ok()?;
        let s = c.status().await.ok()?;
        let this = s.header()?.member_id();
        id_to_name.insert(this, r.name.clone());
        if s.leader() == 0 || leader.is_some_and(|l| l != s.leader()) {
            return None;
        }
        leader = Some(s.leader());
        // Ready also means every member has published its client URLs, so that
        // `endpoint status --cluster` finds them all.
        let members = c.member_list().await.ok()?;
        if members.members().len() != plan.len() || members.members().iter().any(|m| m.client_urls().is_empty()) {
            return None;
        }
    }
    id_to_name.get(&leader?).cloned()
}

/// A kubeconfig for the cluster's first replica (any replica serves the whole API).
fn write_kubeconfig(path: &Path, plan: &[ReplicaInfo]) -> anyhow::Result<()> {
    let Some(first) = plan.iter().find(|r| !r.api_url.is_empty()) else { return Ok(()) };
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: flotilla\n  cluster:\n    server: {}\n\
         contexts:\n- name: flotilla\n  context:\n    cluster: flotilla\n    user: flotilla\n\
         current-context: flotilla\nusers:\n- name: flotilla\n  user: {{}}\n",
        first.api_url
    );
    std::fs::write(path, config).with_context(|| format!("writing {}", path.display()))
}

/// Every replica's Kubernetes API answers, and the system namespaces exist (the last one
/// the API server creates is `kube-node-lease`).
async fn apis_ready(plan: &[ReplicaInfo]) -> bool {
    for r in plan.iter().filter(|r| !r.api_url.is_empty()) {
        let ok =
            tokio::time::timeout(Duration::from_secs(2), http_status(&r.api_url, "/api/v1/namespaces/kube-node-lease"))
                .await
                .is_ok_and(|s| s.is_ok_and(|code| code == 200));
        if !ok {
            return false;
        }
    }
    true
}

/// The status code of a plain-HTTP GET (enough for a readiness probe; no client library).
pub(crate) async fn http_status(base: &str, path: &str) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = crate::urls::socket_addr(base)?;
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).await?;
    let line = std::str::from_utf8(&head)?;
    line.get(9..12).and_then(|c| c.parse().ok()).context("malformed HTTP status line")
}

fn print_next_steps(plan: &[ReplicaInfo], agents: &[AgentInfo], leader: &str, file: &Path, kubeconfig: &Path) {
    let endpoints: Vec<&str> = plan.iter().map(|r| r.client_url.as_str()).collect();
    let endpoints = endpoints.join(",");
    println!("flotilla: {} replicas ready, leader {leader}; cluster described in {}", plan.len(), file.display());
    println!();
    println!("Try it with etcdctl (Debian package etcd-client):");
    println!("  export ETCDCTL_API=3 ENDPOINTS={endpoints}");
    println!("  etcdctl --endpoints=$ENDPOINTS put greeting hello");
    println!("  etcdctl --endpoints=$ENDPOINTS get greeting");
    println!("  etcdctl --endpoints=$ENDPOINTS endpoint status --cluster -w table");
    println!("  etcdctl --endpoints=$ENDPOINTS member list -w table");
    println!();
    println!("Or with kubectl (every replica serves the Kubernetes API):");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get namespaces");
    agents::print_next_steps(agents);
    println!();
    println!("Press Ctrl-C to stop the cluster; run the same command again to resume it.");
}

async fn stop(children: Vec<Child>) {
    for c in &children {
        if let Some(pid) = c.id() {
            // SAFETY: kill(2) with a pid we spawned and a valid signal has no memory effects.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
    }
    for mut c in children {
        if tokio::time::timeout(STOP_GRACE, c.wait()).await.is_err() {
            let _ = c.kill().await;
        }
    }
}
