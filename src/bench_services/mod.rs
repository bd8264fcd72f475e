//! `flotilla bench-services`: how fast an endpoint change reaches the service rules of
//! every agent when the cluster has many Services, and what a sync costs.
//!
//! Against a `flotilla up --agents N --agent-runtime docker` cluster (whose agents program
//! nftables), as root on the cluster's host. The run:
//! 1. creates a namespace with `--services` selectorless Services (one TCP port `http`,
//!    80) and their Endpoints, `--endpoints` made-up addresses each (10.200.0.0/16, port
//!    8080): the proxy only needs addresses, not pods;
//! 2. waits until every agent's table maps every one of them (the `service-ips` map
//!    elements naming the namespace): the initial sync, timed from the last create;
//! 3. `--changes` times, one after another: replaces one address of a random Service's
//!    Endpoints with a fresh one (10.201.0.0/16) and polls each agent's chain of that
//!    Service port (`nft list chain`) until it DNATs to the new address. A change's latency
//!    on an agent is that sighting minus the moment just before the PUT; "every node" is the
//!    largest over the agents (the figure);
//! 4. reports p50/p99/max per agent and for every node, the CPU the agents used per change
//!    (their own plus the `nft` runs they waited for), and their memory;
//! 5. deletes the namespace (unless `--keep`).
//!
//! The polling runs `nft` on the same cores as the agents, so its resolution is one
//! `nft list chain` (a few tens of ms at this size), and it adds to the load it measures.

mod probe;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use rand::Rng;
use serde_json::{json, Value};

use crate::bench_api::client::Conn;
use crate::up::ClusterFile;
use probe::Table;
use report::Report;

#[derive(Args, Debug)]
pub struct BenchServicesArgs {
    /// The `cluster.json` written by `flotilla up` (with docker or containerd agents).
    #[arg(long)]
    cluster_file: PathBuf,
    /// Services to create.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Endpoint addresses per Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Endpoint changes to time.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Longest the initial sync, or one change, may take.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// Leave the namespace and its Services in place.
    #[arg(long)]
    keep: bool,
}

/// Creates in flight at once.
const CREATORS: usize = 8;
/// Pause between two looks at the agents' tables.
const POLL: Duration = Duration::from_millis(5);

pub async fn run(args: BenchServicesArgs) -> anyhow::Result<()> {
    if args.services == 0 || args.endpoints == 0 || args.services * args.endpoints > 60_000 {
        bail!("--services and --endpoints must be positive, with at most 60000 addresses in all");
    }
    let cluster = ClusterFile::read_plaintext(&args.cluster_file)?;
    let tables = agent_tables(&cluster)?;
    let url = cluster.replicas.first().context("cluster.json lists no replicas")?.api_url.clone();
    let ns = format!("bench-svc-{}", std::process::id());
    let mut conn = Conn::connect(&url).await?;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    conn.call(Method::POST, "/api/v1/namespaces", Some(&namespace), StatusCode::CREATED).await?;
    let result = measure(&args, &cluster, &tables, &url, &ns).await;
    if !args.keep {
        if let Err(e) = conn.call(Method::DELETE, &format!("/api/v1/namespaces/{ns}"), None, StatusCode::OK).await {
            eprintln!("flotilla: could not delete namespace {ns}: {e:#}");
        }
    }
    let report = result?;
    println!("{}", serde_json::to_string(&report)?);
    report.print();
    Ok(())
}

/// Each agent's service table, from its name and data directory.
fn agent_tables(cluster: &ClusterFile) -> anyhow::Result<Vec<Table>> {
    if cluster.agents.is_empty() {
        bail!("the cluster has no agents: start it with `flotilla up --agents N --agent-runtime docker`");
    }
    cluster
        .agents
        .iter()
        .map(|a| {
            let at = a.argv.iter().position(|x| x == "--data-dir").context("an agent's argv has no --data-dir")?;
            let name = flotilla_agent::services::runner::agent_table(&a.name, Path::new(&a.argv[at + 1]))?;
            Ok(Table { agent: a.name.clone(), name })
        })
        .collect()
}

async fn measure(
    args: &BenchServicesArgs,
    cluster: &ClusterFile,
    tables: &[Table],
    url: &str,
    ns: &str,
) -> anyhow::Result<Report> {
    let timeout = Duration::from_secs(args.timeout_seconds);
    let created = Instant::now();
    let mut services = create_services(url, ns, args.services, args.endpoints).await?;
    let create_time = created.elapsed();
    let last_create = Instant::now();
    for t in tables {
        t.wait_for_services(ns, args.services, last_create + timeout).await?;
    }
    let initial_sync = last_create.elapsed();
    let pids: Vec<u32> = cluster.agents.iter().map(|a| a.pid).collect();
    let cpu_before = report::agent_cpu(&pids)?;
    let mut conn = Conn::connect(url).await?;
    let mut per_agent: Vec<Vec<Duration>> = vec![Vec::new(); tables.len()];
    let mut every_node = Vec::new();
    let changes_started = Instant::now();
    for change in 0..args.changes {
        let i = rand::thread_rng().gen_range(0..services.len());
        let svc = &mut services[i];
        let fresh = address(0xC9_0000 + change as u32);
        let slot = rand::thread_rng().gen_range(0..svc.addresses.len());
        svc.addresses[slot] = fresh.clone();
        let started = Instant::now();
        put_endpoints(&mut conn, ns, svc).await?;
        let mut worst = Duration::ZERO;
        let seen = probe::wait_all(tables, &svc.cluster_ip, &fresh, started, started + timeout, POLL).await?;
        for (k, at) in seen.into_iter().enumerate() {
            per_agent[k].push(at);
            worst = worst.max(at);
        }
        every_node.push(worst);
    }
    let change_wall = changes_started.elapsed();
    let cpu = report::agent_cpu(&pids)? - cpu_before;
    let rss = report::agent_rss(&pids)?;
    Ok(Report::new(args, tables, create_time, initial_sync, &mut per_agent, &mut every_node, change_wall, cpu, rss))
}

/// A Service the bench made: its name, clusterIP and current endpoint addresses.
struct BenchService {
    name: String,
    cluster_ip: String,
    addresses: Vec<String>,
}

/// The `n`th made-up address, counting from 10.0.0.0 (so 0xC8_0000 is 10.200.0.0).
fn address(n: u32) -> String {
    std::net::Ipv4Addr::from(0x0A00_0000 + n).to_string()
}

async fn create_services(url: &str, ns: &str, n: usize, per: usize) -> anyhow::Result<Vec<BenchService>> {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CREATORS {
        let (url, ns) = (url.to_string(), ns.to_string());
        tasks.spawn(async move {
            let mut conn = Conn::connect(&url).await?;
            let mut made = Vec::new();
            for i in (worker..n).step_by(CREATORS) {
                let name = format!("s-{i:05}");
                let svc = json!({"metadata": {"name": name}, "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
                let path = format!("/api/v1/namespaces/{ns}/services");
                let created = conn.call_json(Method::POST, &path, Some(&svc), StatusCode::CREATED).await?;
                let cluster_ip = created["spec"]["clusterIP"].as_str().context("no clusterIP")?.to_string();
                let addresses = (0..per).map(|e| address(0xC8_0000 + (i * per + e) as u32)).collect();
                let mut made_one = BenchService { name, cluster_ip, addresses };
                put_endpoints(&mut conn, &ns, &mut made_one).await?;
                made.push(made_one);
            }
            anyhow::Ok(made)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.context("a creator panicked")??);
    }
    Ok(all)
}

/// Write `svc`'s Endpoints (created by the first PUT).
async fn put_endpoints(conn: &mut Conn, ns: &str, svc: &mut BenchService) -> anyhow::Result<()> {
    let addresses: Vec<Value> = svc.addresses.iter().map(|ip| json!({"ip": ip})).collect();
    let eps = json!({
        "metadata": {"name": svc.name, "namespace": ns},
        "subsets": [{"addresses": addresses, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}],
    });
    let path = format!("/api/v1/namespaces/{ns}/endpoints/{}", svc.name);
    let resp = conn.send(Method::PUT, &path, Some(&eps)).await?;
    let status = resp.status();
    if status != StatusCode::OK && status != StatusCode::CREATED {
        bail!("PUT {path}: HTTP {status}");
    }
    resp.into_body().collect().await?;
    Ok(())
}
