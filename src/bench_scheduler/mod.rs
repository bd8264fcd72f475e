//! `flotilla bench-scheduler`: end-to-end scheduling throughput of a running `flotilla up`
//! cluster, through the Kubernetes API.
//!
//! A run: create `--nodes` simulated Nodes (plain Node objects, Ready, generous
//! allocatable; no agent runs them) and their `kube-node-lease` Leases; open a watch on a
//! fresh namespace on a follower; create `--pods` small unbound pods there as fast as
//! `--clients` closed-loop connections can (client i on replica i mod n); record when each
//! pod is first seen bound ([`binds`]). The leader's scheduler does the binding. Time zero
//! is the first pod create; throughput is bound pods over the time to the last bind, and
//! over the steady middle 80% of binds ([`throughput`]). A per-second timeline of creates
//! and binds, and the CPU the leader, the followers and the bench used, show whether the
//! API's create rate, the binds, or the watch limit the figure.
//!
//! Invariants: every object carries the run label, so cleanup (unless `--keep`) deletes
//! exactly this run's pods (grace period 0: no agent would ever confirm a graceful delete),
//! namespace, Leases and Nodes; leases are renewed only if the run outlives
//! [`leases::FIRST_RENEWAL_AFTER`].

mod batch;
mod binds;
mod leases;
mod objects;
mod report;
mod throughput;
pub(crate) mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hyper::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::bench_api::client::Conn;
use crate::bench_api::ops::OpReport;
use crate::bench_api::procfs::{cpu_seconds, CpuMeter};
use crate::up::ClusterFile;
use batch::{Plan, Req};
use objects::{node_leases, node_name, pod_name, pods, NAMESPACES, NODES};
use report::{CpuSplit, Report};

#[derive(Args, Debug)]
pub struct BenchSchedulerArgs {
    /// The `cluster.json` written by `flotilla up`.
    #[arg(long)]
    cluster_file: PathBuf,
    /// Simulated nodes to create.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods to create and wait for the scheduler to bind.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent connections creating (and deleting) objects.
    ///
    /// 128 by default: with 32, each create waits ~50-70 ms, which caps creates (and so
    /// binds) near 500/s on this machine, below what the scheduler binds; the figure would
    /// then measure the clients.
    #[arg(long, default_value_t = 128)]
    clients: usize,
    /// Leave the nodes, leases, namespace and pods in place after the run.
    #[arg(long)]
    keep: bool,
    /// Longest to wait, from the first pod create, for every pod to be bound.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// One run's names and targets.
struct Run {
    id: String,
    ns: String,
    urls: Vec<String>,
    nodes: Arc<Vec<String>>,
    clients: usize,
}

pub async fn run(args: BenchSchedulerArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.pods == 0 || args.clients == 0 {
        bail!("--nodes, --pods and --clients must be positive");
    }
    let cluster = ClusterFile::read_plaintext(&args.cluster_file)?;
    if cluster.replicas.is_empty() || cluster.replicas.iter().any(|r| r.api_url.is_empty()) {
        bail!("every replica in {} needs an api_url", args.cluster_file.display());
    }
    let id =
        format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() % 0x100_0000);
    let run = Run {
        ns: format!("bench-sched-{id}"),
        urls: cluster.replicas.iter().map(|r| r.api_url.clone()).collect(),
        nodes: Arc::new((0..args.nodes).map(|i| node_name(&id, i)).collect()),
        clients: args.clients,
        id,
    };
    println!(
        "bench-scheduler: run {}; the {} nodes are plain Node objects (Ready, with Leases this bench renews): \
         no agent exists yet, nothing runs the pods",
        run.id, args.nodes
    );
    let leader = crate::failover::find_leader(&cluster.replicas).await?;
    let result = measure(&run, &cluster, leader, &args).await;
    if args.keep {
        println!(
            "bench-scheduler: --keep: leaving namespace {} and nodes labelled {}={}",
            run.ns,
            objects::RUN_LABEL,
            run.id
        );
    } else {
        cleanup(&run, args.pods).await;
    }
    let report = result?;
    report.print()?;
    Ok(())
}

/// Sets the cluster up, creates the pods and waits for their binds.
async fn measure(run: &Run, cluster: &ClusterFile, leader: usize, args: &BenchSchedulerArgs) -> anyhow::Result<Report> {
    let pids: Vec<u32> = cluster.replicas.iter().map(|r| r.pid).collect();
    let (setup, leases_created) = setup(run, &pids).await?;
    let cancel = CancellationToken::new();
    let renewer = tokio::spawn(leases::renew(
        run.urls.clone(),
        run.nodes.clone(),
        run.id.clone(),
        leases_created,
        cancel.clone(),
    ));

    // The watch goes to a follower, so reading 2 events per pod does not load the leader.
    let watch_url = &cluster.replicas[(leader + 1) % cluster.replicas.len()].api_url;
    let watch = binds::BindWatch::open(watch_url, &run.ns, args.pods).await?;
    let cpu_before = cpu_now(&pids)?;
    let wall = Instant::now();
    let watching = tokio::spawn(watch.run(cancel.clone()));
    eprintln!("bench-scheduler: creating {} pods with {} clients", args.pods, run.clients);
    let ns = run.ns.clone();
    let created = timed(run, &pids, plan("create-pods", run.clients, args.pods), move |i| Req {
        method: Method::POST,
        path: pods(&ns),
        body: Some(objects::pod(i)),
        want: StatusCode::CREATED,
    })
    .await?;
    let deadline = created.started + Duration::from_secs(args.timeout_secs);
    let stop_at = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            tokio::time::sleep_until(deadline.into()).await;
            cancel.cancel();
        }
    });
    let binds = watching.await.context("the bind watcher panicked")??;
    let cpu = CpuSplit::of(&cpu_before, &cpu_now(&pids)?, leader, wall.elapsed());
    stop_at.abort();
    cancel.cancel();
    let renewals = renewer.await.context("the lease renewer panicked")?;
    Ok(Report::new(&cluster.replicas[leader].name, args, setup, created, binds, renewals, cpu))
}

/// Creates the namespace, the nodes and their leases; returns the reports of the node and
/// lease creates and when the lease creates started.
async fn setup(run: &Run, pids: &[u32]) -> anyhow::Result<([OpReport; 2], Instant)> {
    create_namespace(&run.urls[0], &run.ns, &run.id).await?;
    eprintln!("bench-scheduler: creating {} nodes and their leases", run.nodes.len());
    let (names, id) = (run.nodes.clone(), run.id.clone());
    let nodes = timed(run, pids, plan("create-nodes", run.clients, names.len()), move |i| Req {
        method: Method::POST,
        path: NODES.into(),
        body: Some(objects::node(&names[i], &id)),
        want: StatusCode::CREATED,
    })
    .await?;
    let (names, id) = (run.nodes.clone(), run.id.clone());
    let leases = timed(run, pids, plan("create-leases", run.clients, names.len()), move |i| Req {
        method: Method::POST,
        path: node_leases(),
        body: Some(objects::lease(&names[i], &id)),
        want: StatusCode::CREATED,
    })
    .await?;
    Ok(([nodes.report, leases.report], leases.started))
}

/// [`batch::run`] with the cores the replicas and the bench used filled in.
async fn timed<F>(run: &Run, pids: &[u32], plan: Plan, make: F) -> anyhow::Result<batch::Done>
where
    F: Fn(usize) -> Req + Send + Sync + 'static,
{
    let meter = CpuMeter::start(pids.to_vec())?;
    let mut done = batch::run(&run.urls, plan, make).await?;
    done.report.cpu = meter.stop()?;
    Ok(done)
}

fn plan(measure: &'static str, clients: usize, count: usize) -> Plan {
    Plan { measure, clients, count, pace: None, stop: None }
}

/// CPU seconds of each replica (in `pids` order), then of this process, then of the machine.
fn cpu_now(pids: &[u32]) -> anyhow::Result<Vec<f64>> {
    let mut v: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect::<anyhow::Result<_>>()?;
    v.push(cpu_seconds(std::process::id())?);
    v.push(report::machine_busy_seconds()?);
    Ok(v)
}

async fn create_namespace(url: &str, ns: &str, run: &str) -> anyhow::Result<()> {
    let mut conn = Conn::connect(url).await?;
    conn.call(Method::POST, NAMESPACES, Some(&objects::namespace(ns, run)), StatusCode::CREATED).await?;
    Ok(())
}

/// Deletes the run's pods (grace period 0), namespace, leases and nodes; reports, never fails.
async fn cleanup(run: &Run, pod_count: usize) {
    eprintln!("bench-scheduler: cleaning up (pods, namespace {}, leases, nodes)", run.ns);
    let ns = run.ns.clone();
    let deleted = batch::run(&run.urls, plan("delete-pods", run.clients, pod_count), move |i| Req {
        method: Method::DELETE,
        path: format!("{}/{}?gracePeriodSeconds=0", pods(&ns), pod_name(i)),
        body: None,
        want: StatusCode::OK,
    })
    .await;
    let ns_deleted = match Conn::connect(&run.urls[0]).await {
        Ok(mut c) => c.call(Method::DELETE, &format!("{NAMESPACES}/{}", run.ns), None, StatusCode::OK).await.map(drop),
        Err(e) => Err(e),
    };
    let names = run.nodes.clone();
    let leases = batch::run(&run.urls, plan("delete-leases", run.clients, names.len()), move |i| Req {
        method: Method::DELETE,
        path: format!("{}/{}", node_leases(), names[i]),
        body: None,
        want: StatusCode::OK,
    })
    .await;
    let names = run.nodes.clone();
    let nodes = batch::run(&run.urls, plan("delete-nodes", run.clients, names.len()), move |i| Req {
        method: Method::DELETE,
        path: format!("{NODES}/{}", names[i]),
        body: None,
        want: StatusCode::OK,
    })
    .await;
    for (what, done) in [("pods", deleted), ("leases", leases), ("nodes", nodes)] {
        match done {
            Ok(d) if d.report.errors == 0 => eprintln!("bench-scheduler: deleted {} {what}", d.report.ok),
            Ok(d) => eprintln!(
                "bench-scheduler: deleted {} {what}, {} deletes failed (first: {})",
                d.report.ok,
                d.report.errors,
                d.report.first_error.unwrap_or_default()
            ),
            Err(e) => eprintln!("bench-scheduler: deleting {what} failed: {e:#}"),
        }
    }
    if let Err(e) = ns_deleted {
        eprintln!("bench-scheduler: deleting namespace {} failed: {e:#}", run.ns);
    }
}
