//! `flotilla up`: a local cluster of replicas as child processes on free loopback ports,
//! with a load balancer in front of their Kubernetes APIs, node agents and a demo workload.
//!
//! Steps, each printed with how long it took ([`progress`]): start the replicas and the
//! balancer; wait until they agree on a leader and every API answers, directly and through
//! the balancer; start the agents; wait for their Nodes to be Ready; apply the demo
//! ([`demo`]; with agents, unless `--no-demo`). `DIR/cluster.json` and `DIR/kubeconfig` are
//! written once the agents' Nodes are Ready (before the demo), and "replicas ready" is
//! printed after the demo, with what to type next ([`next_steps`]). cluster.json lists each
//! process's exact command line, so a test can kill one and restart it with the same argv;
//! run again on the same DIR, `up` resumes the same cluster.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::server::wait_for_signal;

mod access;
mod agents;
mod containerd;
mod demo;
mod next_steps;
mod progress;
mod tls;

use access::LbInfo;
pub use agents::AgentInfo;
use progress::Progress;
pub use tls::TlsInfo;

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
    /// Do not apply the demo (a Deployment `demo` of 3 pods and, with docker or containerd,
    /// a NodePort Service `demo`), which is otherwise applied when there are agents.
    #[arg(long)]
    no_demo: bool,
    /// Plain HTTP everywhere, without certificates or authentication (for local experiments;
    /// said loudly). By default every port is TLS with certificates from a CA made for this
    /// cluster in DIR/pki.
    #[arg(long)]
    insecure_plaintext: bool,
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
    /// The load balancer in front of the replicas' APIs (absent in files of older `up`s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<LbInfo>,
    /// The CA and the admin's certificate; absent for `--insecure-plaintext` clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
}

impl ClusterFile {
    /// The cluster.json at `path`, of a cluster the benchmarks can drive: their clients
    /// speak plain HTTP and gRPC (`scripts/bench-tls.sh` measures TLS with `flotilla bench`).
    pub fn read_plaintext(path: &Path) -> anyhow::Result<Self> {
        let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file: Self = serde_json::from_slice(&raw).with_context(|| format!("parsing {}", path.display()))?;
        if file.tls.is_some() {
            bail!(
                "{} is a TLS cluster; this benchmark's clients speak plain HTTP: start the cluster with \
                 `flotilla up --insecure-plaintext`",
                path.display()
            );
        }
        Ok(file)
    }
}

/// How long the cluster may take to elect a leader and answer on every replica.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long children get to exit after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Pause between readiness probes.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// The processes `up` runs, as planned and then started (pids filled in).
struct Cluster {
    dir: PathBuf,
    replicas: Vec<ReplicaInfo>,
    agents: Vec<AgentInfo>,
    lb: LbInfo,
    tls: Option<TlsInfo>,
    /// Planned now, not resumed from cluster.json.
    fresh: bool,
}

impl Cluster {
    fn file(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    if args.replicas == 0 || args.replicas > 7 || args.replicas % 2 == 0 {
        bail!("--replicas must be 1, 3, 5 or 7 (got {})", args.replicas);
    }
    if args.insecure_plaintext {
        eprintln!("{}", crate::plaintext::WARNING);
    }
    let mut cluster = plan(&args).await?;
    let demo = match cluster.agents.first() {
        Some(agent) if !args.no_demo => Some(demo::Kind::for_runtime(agents::runtime_of(agent))),
        _ => None, // opted out, or no agents to run it
    };
    let steps = 2 + if cluster.agents.is_empty() { 0 } else { 2 } + usize::from(demo.is_some());
    let mut progress = Progress::new(steps);
    let mut children = Vec::new();
    let mut attempt = 1;
    let started = loop {
        match start(&mut cluster, demo, &mut children, &mut progress).await {
            Ok(started) => break started,
            // Ports are chosen before the replicas bind them, so another process may take
            // one first; a new cluster then starts over on new ports.
            Err(e) if cluster.fresh && attempt < PORT_ATTEMPTS && port_taken(&e) => {
                progress.failed();
                stop(std::mem::take(&mut children)).await;
                eprintln!("flotilla: a port was taken by another process; starting over on new ports");
                attempt += 1;
                cluster = replan(&args, cluster).await?;
                progress = Progress::new(steps);
            }
            Err(e) => {
                progress.failed();
                stop(children).await;
                return Err(e);
            }
        }
    };
    let (file, kubeconfig) = (cluster.file(), cluster.kubeconfig());
    next_steps::print(&next_steps::Ready {
        replicas: &cluster.replicas,
        agents: &cluster.agents,
        lb: &cluster.lb,
        leader: &started.leader,
        cluster_file: &file,
        kubeconfig: &kubeconfig,
        tls: cluster.tls.as_ref(),
        demo: started.demo.as_ref(),
        took: progress::seconds(progress.total()),
    });
    wait_for_signal().await?;
    println!(
        "flotilla: stopping {} replicas, {} agents and the load balancer",
        cluster.replicas.len(),
        cluster.agents.len()
    );
    stop_restarted(&file, &children);
    stop(children).await;
    Ok(())
}

/// How many times a new cluster may start over because a port it chose was taken.
const PORT_ATTEMPTS: usize = 3;

/// Whether `e` is a replica that exited because it could not listen on its port.
fn port_taken(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("exited") && (text.contains("cannot listen") || text.contains("already in use"))
}

/// A new cluster planned again on new ports, its replicas' data removed (they never got
/// going: nothing of theirs is kept).
async fn replan(args: &UpArgs, c: Cluster) -> anyhow::Result<Cluster> {
    for r in &c.replicas {
        std::fs::remove_dir_all(&r.data_dir)
            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
            .with_context(|| format!("removing {}", r.data_dir.display()))?;
    }
    fresh(args, c.dir, c.tls).await
}

/// The processes of a new cluster, or those `DIR/cluster.json` lists.
async fn plan(args: &UpArgs) -> anyhow::Result<Cluster> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    match std::fs::read(dir.join("cluster.json")) {
        Ok(raw) => {
            let previous: ClusterFile = serde_json::from_slice(&raw).context("reading the existing cluster.json")?;
            let how = if previous.tls.is_some() { "TLS" } else { "plain HTTP, as it was made" };
            println!("flotilla: resuming the cluster in {} ({how})", dir.display());
            let lb = match previous.lb {
                Some(lb) => lb,
                None => access::plan_lb(&previous.replicas, previous.tls.as_ref())?,
            };
            let (replicas, agents, tls) = (previous.replicas, previous.agents, previous.tls);
            Ok(Cluster { dir, replicas, agents, lb, tls, fresh: false })
        }
        Err(_) => {
            let tls = match args.insecure_plaintext {
                true => None,
                false => Some(TlsInfo::create(&dir.join("pki")).context("making the cluster's certificates")?),
            };
            fresh(args, dir, tls).await
        }
    }
}

/// A new cluster in `dir`, on ports chosen now.
async fn fresh(args: &UpArgs, dir: PathBuf, tls: Option<TlsInfo>) -> anyhow::Result<Cluster> {
    let nodes: Vec<String> = (1..=args.agents).map(agents::node_name).collect();
    let replicas = fresh_plan(&dir, args.replicas, args.node_monitor_grace_period, tls.as_ref())?;
    let socket = &args.containerd_address;
    let runtime = agents::resolve(args.agent_runtime, args.agents, socket).await?;
    let agents = agents::plan(&dir, &replicas, &nodes, runtime, socket, tls.as_ref())?;
    let lb = access::plan_lb(&replicas, tls.as_ref())?;
    Ok(Cluster { dir, replicas, agents, lb, tls, fresh: true })
}

/// What [`start`] found out.
struct Started {
    leader: String,
    demo: Option<demo::Outcome>,
}

/// Every step up to the demo; started processes are pushed to `children` as they start,
/// so the caller stops them when a later step fails.
async fn start(
    c: &mut Cluster,
    demo: Option<demo::Kind>,
    children: &mut Vec<Child>,
    progress: &mut Progress,
) -> anyhow::Result<Started> {
    let names: Vec<&str> = c.replicas.iter().map(|r| r.name.as_str()).collect();
    let replicas = plural(c.replicas.len(), "replica");
    progress.step(&format!("starting {replicas} ({}) and a load balancer", names.join(", ")));
    for r in c.replicas.iter_mut() {
        let child = spawn_logged(&r.argv, &[], &c.dir.join(format!("{}.log", r.name)), &r.name).await?;
        r.pid = child.id().context("replica exited at once")?;
        children.push(child);
    }
    children.push(start_lb(c).await?);
    progress.done("");

    progress.step("electing a leader");
    let client = c.tls.as_ref().map(TlsInfo::client).transpose()?;
    let leader = wait_ready(&c.replicas, &c.lb, c.tls.as_ref(), client.as_ref(), children).await?;
    progress.done(&format!("{leader} leads"));

    if !c.agents.is_empty() {
        // Resumed agents have their certificates; a token deleted since stays deleted.
        if let (Some(tls), Some(client), true) = (&c.tls, &client, c.fresh) {
            agents::create_join_token(&c.lb.url, client, &tls.join_token).await?;
        }
        let env = c.tls.as_ref().map(TlsInfo::agent_env).unwrap_or_default();
        let runtime = agents::runtime_of(&c.agents[0]).to_string();
        progress.step(&format!("starting {} ({runtime} runtime)", plural(c.agents.len(), "agent")));
        for a in c.agents.iter_mut() {
            let child = spawn_logged(&a.argv, &env, &c.dir.join(format!("{}.log", a.name)), &a.name).await?;
            a.pid = child.id().context("agent exited at once")?;
            children.push(child);
        }
        progress.done("");
        progress.step(&format!("waiting for {} to be Ready", plural(c.agents.len(), "node")));
        agents::wait_nodes_ready(&c.lb.url, client.as_ref(), &c.agents).await?;
        progress.done("");
    }

    let file = ClusterFile {
        replicas: c.replicas.clone(),
        agents: c.agents.clone(),
        lb: Some(c.lb.clone()),
        tls: c.tls.clone(),
    };
    let tmp = c.dir.join("cluster.json.tmp");
    // Readable by its owner only: with TLS it holds the agents' join token.
    crate::pki::write_private(&tmp, &serde_json::to_string_pretty(&file)?)?;
    std::fs::rename(&tmp, c.file())?;
    access::write_kubeconfig(&c.kubeconfig(), &c.lb, &c.replicas, c.tls.as_ref())?;

    let outcome = match demo {
        Some(kind) => {
            progress.step(&format!("applying the demo: {}", kind.describe()));
            // The cluster works without its demo: a failure is reported, not fatal.
            match demo::apply(&c.lb.url, client.as_ref(), kind, services_possible()).await {
                Ok(outcome) => {
                    progress.done(&outcome.summary());
                    Some(outcome)
                }
                Err(e) => {
                    progress.done(&format!("not applied: {e:#}"));
                    None
                }
            }
        }
        None => None,
    };
    Ok(Started { leader, demo: outcome })
}

/// `1 agent`, `2 agents`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Whether the agents `up` starts can program Services: they must be root with `nft`
/// installed (as the agent decides for itself).
fn services_possible() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root && std::process::Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success())
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

fn fresh_plan(dir: &Path, n: usize, node_grace: u64, tls: Option<&TlsInfo>) -> anyhow::Result<Vec<ReplicaInfo>> {
    // Hold every listener until all ports are chosen so no two replicas get the same one.
    let listeners: Vec<std::net::TcpListener> =
        (0..3 * n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
    drop(listeners);
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let names: Vec<String> = (1..=n).map(|i| format!("r{i}")).collect();
    let scheme = tls::scheme(tls);
    let peer_urls: Vec<String> = (0..n).map(|i| format!("{scheme}://127.0.0.1:{}", ports[2 * i + 1])).collect();
    let initial: Vec<String> = names.iter().zip(&peer_urls).map(|(n, u)| format!("{n}={u}")).collect();
    Ok((0..n)
        .map(|i| {
            let client_url = format!("{scheme}://127.0.0.1:{}", ports[2 * i]);
            let api_url = format!("{scheme}://127.0.0.1:{}", ports[2 * n + i]);
            let data_dir = dir.join(&names[i]);
            let mut argv = vec![
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
            argv.extend(tls.map(TlsInfo::replica_flags).unwrap_or_else(|| vec!["--insecure-plaintext".into()]));
            let peer_url = peer_urls[i].clone();
            ReplicaInfo { name: names[i].clone(), pid: 0, argv, client_url, peer_url, api_url, data_dir }
        })
        .collect())
}

/// Start `argv` with `env` added to its environment, stdout and stderr appended to `log`.
async fn spawn_logged(argv: &[String], env: &[(String, String)], log: &Path, name: &str) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {name}"))
}

/// How many ports the balancer may try: its port is chosen before it binds, so another
/// process on the machine may take it first.
const LB_ATTEMPTS: usize = 5;

/// Start the balancer, on a new port whenever it cannot listen on the planned one; returns
/// it once it accepts connections.
async fn start_lb(c: &mut Cluster) -> anyhow::Result<Child> {
    for attempt in 1..=LB_ATTEMPTS {
        let mut child = spawn_logged(&c.lb.argv, &[], &c.dir.join("lb.log"), "the load balancer").await?;
        let (addr, _) = crate::urls::socket_addr_tls(&c.lb.url)?;
        loop {
            if let Some(status) = child.try_wait()? {
                if attempt == LB_ATTEMPTS {
                    bail!("the load balancer exited ({status}); see its log in {}", c.dir.display());
                }
                tracing::debug!(%status, %addr, "the load balancer could not start; trying another port");
                c.lb = access::plan_lb(&c.replicas, c.tls.as_ref())?;
                break;
            }
            // Something accepts on the port; still running a moment later, the balancer has
            // bound it (it binds first thing), not lost it to whoever answered.
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if child.try_wait()?.is_none() {
                    c.lb.pid = child.id().context("load balancer exited at once")?;
                    return Ok(child);
                }
                continue;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    unreachable!("the last attempt returns or fails")
}

/// Wait until every replica answers Status, all name the same leader, the membership
/// lists every replica's client URL, and every API answers, directly and through the
/// balancer (with `tls`, as the admin: `api_tls` for the APIs); returns the leader's name.
async fn wait_ready(
    plan: &[ReplicaInfo],
    lb: &LbInfo,
    tls: Option<&TlsInfo>,
    api_tls: Option<&crate::dial::ClientTls>,
    children: &mut [Child],
) -> anyhow::Result<String> {
    let etcd_tls = tls.map(TlsInfo::etcd_options).transpose()?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        // `children` holds the replicas, in order, then the balancer.
        let names = plan.iter().map(|r| (r.name.as_str(), r.name.as_str())).chain([("the load balancer", "lb")]);
        for (c, (name, file)) in children.iter_mut().zip(names) {
            if let Some(status) = c.try_wait()? {
                let log = Path::new(&logs_dir(plan)).join(format!("{file}.log"));
                bail!("{name} exited ({status}); the end of {}:\n{}", log.display(), log_tail(&log, 5));
            }
        }
        if let Some(leader) = agreed_leader(plan, etcd_tls.as_ref()).await {
            if apis_ready(plan, lb, api_tls).await {
                return Ok(leader);
            }
        }
        if Instant::now() > deadline {
            bail!("the cluster did not elect a leader within {READY_TIMEOUT:?}; see the logs in {}", logs_dir(plan));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// The last `n` lines of the log at `path` (what a process that exited said last).
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The directory the logs are in (next to the replicas' data dirs).
fn logs_dir(plan: &[ReplicaInfo]) -> String {
    plan.first().and_then(|r| r.data_dir.parent()).map_or_else(String::new, |d| d.display().to_string())
}

async fn agreed_leader(plan: &[ReplicaInfo], tls: Option<&etcd_client::TlsOptions>) -> Option<String> {
    let mut leader = None;
    let mut id_to_name = std::collections::HashMap::new();
    for r in plan {
        let mut opts = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        if let Some(tls) = tls {
            opts = opts.with_tls(tls.clone());
        }
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

/// Every replica's Kubernetes API answers, and the system namespaces exist (the last one
/// the API server creates is `kube-node-lease`); so does the balancer.
async fn apis_ready(plan: &[ReplicaInfo], lb: &LbInfo, tls: Option<&crate::dial::ClientTls>) -> bool {
    let urls = plan.iter().map(|r| r.api_url.as_str()).filter(|u| !u.is_empty()).chain([lb.url.as_str()]);
    for url in urls {
        let Ok(target) = crate::dial::Target::new(url, tls) else { return false };
        let probe = crate::lb::http_status(&target, "/api/v1/namespaces/kube-node-lease");
        let ok =
            tokio::time::timeout(Duration::from_secs(2), probe).await.is_ok_and(|s| s.is_ok_and(|code| code == 200));
        if !ok {
            return false;
        }
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_replica_that_could_not_listen_starts_the_cluster_over() {
        let taken = anyhow::anyhow!("r1 exited (exit status: 1); the end of r1.log:\nError: cannot listen on https://127.0.0.1:40001\n\nCaused by:\n    Address already in use (os error 98)");
        assert!(port_taken(&taken));
        let other = anyhow::anyhow!(
            "r1 exited (exit status: 1); the end of r1.log:\nError: --initial-cluster must list this member"
        );
        assert!(!port_taken(&other));
        assert!(!port_taken(&anyhow::anyhow!("the cluster did not elect a leader within 60s")));
    }

    #[test]
    fn a_log_tail_is_its_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("r1.log");
        std::fs::write(&log, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&log, 2), "c\nd");
        assert_eq!(log_tail(&dir.path().join("none.log"), 2), "");
    }
}
