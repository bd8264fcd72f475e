//! `flotilla bench-pod-startup`: pod startup latency on the agents of a `flotilla up`
//! cluster, and what the agents cost while the pods run.
//!
//! Kubernetes' pod startup SLI: from the pod's creation to all its containers reported
//! running, observed through a watch (SLO p99 ≤ 5 s, image pulls excluded; there are
//! none here). The run:
//! 1. creates a fresh namespace, lists it and opens a pod watch from that version, so no
//!    event after the list is missed;
//! 2. creates `--pods` pods (`sleep`, the given image, `IfNotPresent`) paced at `--rate`
//!    per second, a few requests in flight, taking each pod's start time just before its
//!    POST;
//! 3. reads the watch until every pod was seen bound (`spec.nodeName`) and Running with
//!    every container running; a pod's latency is that sighting minus its start time;
//! 4. with every pod running, samples the agents' (pids from `cluster.json`) resident
//!    memory and CPU use over `--idle-seconds`, and reports their CPU during the start;
//! 5. deletes the namespace (unless `--keep`).
//!
//! Times are on this process's monotonic clock, taken when the response or event was read.

mod report;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Mutex;

use crate::bench_api::client::Conn;
use crate::bench_scheduler::watch::{list, WatchStream};
use crate::up::ClusterFile;
use report::{AgentUse, Report};

#[derive(Args, Debug)]
pub struct BenchPodStartupArgs {
    /// The `cluster.json` written by `flotilla up` (with `--agents`).
    #[arg(long)]
    cluster_file: PathBuf,
    /// Pods to create.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Pods created per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// The pods' image (must be present on the agents' runtime; see scripts/make-test-image).
    #[arg(long, default_value = "flotilla/busybox:latest")]
    image: String,
    /// Seconds over which the agents' CPU and memory are sampled once every pod runs.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// Longest the whole start may take.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// Leave the namespace and its pods in place.
    #[arg(long)]
    keep: bool,
}

/// Creates in flight at once.
const CREATORS: usize = 4;

/// Per pod: when its create was sent, when it was seen bound, when seen running.
#[derive(Debug, Default, Clone, Copy)]
struct Times {
    created: Option<Instant>,
    bound: Option<Instant>,
    running: Option<Instant>,
}

pub async fn run(args: BenchPodStartupArgs) -> anyhow::Result<()> {
    if args.pods == 0 || args.rate <= 0.0 {
        bail!("--pods and --rate must be positive");
    }
    let cluster = ClusterFile::read_plaintext(&args.cluster_file)?;
    if cluster.agents.is_empty() {
        bail!("the cluster has no agents: start it with `flotilla up --agents N`");
    }
    let url = cluster.replicas.first().context("cluster.json lists no replicas")?.api_url.clone();
    let ns = format!("bench-startup-{}", std::process::id());
    let mut conn = Conn::connect(&url).await?;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    conn.call(Method::POST, "/api/v1/namespaces", Some(&namespace), StatusCode::CREATED).await?;
    let result = measure(&args, &cluster, &url, &ns).await;
    if !args.keep {
        let path = format!("/api/v1/namespaces/{ns}");
        if let Err(e) = conn.call(Method::DELETE, &path, None, StatusCode::OK).await {
            eprintln!("flotilla: could not delete namespace {ns}: {e:#}");
        }
    }
    let report = result?;
    println!("{}", serde_json::to_string(&report)?);
    report.print();
    Ok(())
}

async fn measure(args: &BenchPodStartupArgs, cluster: &ClusterFile, url: &str, ns: &str) -> anyhow::Result<Report> {
    let collection = format!("/api/v1/namespaces/{ns}/pods");
    let (rv, _) = list(url, &collection, "").await?;
    let mut watch = WatchStream::open(url, &collection, "", &rv).await?;
    let times: Arc<Mutex<HashMap<String, Times>>> = Arc::default();
    let agent_pids: Vec<u32> = cluster.agents.iter().map(|a| a.pid).collect();
    let cpu_before = AgentUse::cpu_seconds(&agent_pids)?;
    let started = Instant::now();
    let creator = tokio::spawn(create_pods(
        url.to_string(),
        collection.clone(),
        args.image.clone(),
        args.pods,
        args.rate,
        times.clone(),
    ));
    let deadline = started + Duration::from_secs(args.timeout_seconds);
    let mut running = 0;
    while running < args.pods {
        let next = tokio::time::timeout_at(
            deadline.into(),
            watch.next_lines(|line| {
                if let Ok(event) = serde_json::from_slice::<Value>(line) {
                    running += note(&mut lock(&times), &event, Instant::now());
                }
            }),
        );
        match next.await {
            Err(_) => bail!("only {running} of {} pods were running after {}s", args.pods, args.timeout_seconds),
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => bail!("the pod watch ended; rerun"),
            Ok(Err(e)) => return Err(e),
        }
    }
    creator.await.context("the pod creator panicked")??;
    let start_wall = started.elapsed();
    let cpu_start = AgentUse::cpu_seconds(&agent_pids)? - cpu_before;
    let agents = AgentUse::sample(&agent_pids, Duration::from_secs(args.idle_seconds)).await?;
    let times = lock(&times).clone();
    Ok(Report::new(
        args.pods,
        args.rate,
        &args.image,
        cluster.agents.len(),
        &times_vec(&times),
        start_wall,
        cpu_start,
        agents,
    ))
}

fn lock(times: &Mutex<HashMap<String, Times>>) -> std::sync::MutexGuard<'_, HashMap<String, Times>> {
    times.lock().expect("times lock poisoned")
}

fn times_vec(times: &HashMap<String, Times>) -> Vec<(Duration, Duration)> {
    let each = times.values().filter_map(|t| Some((t.bound? - t.created?, t.running? - t.created?)));
    each.collect()
}

/// Records what `event` shows; 1 when it is the first sighting of its pod running.
fn note(times: &mut HashMap<String, Times>, event: &Value, now: Instant) -> usize {
    let pod = &event["object"];
    let Some(name) = pod.pointer("/metadata/name").and_then(Value::as_str) else { return 0 };
    let t = times.entry(name.to_string()).or_default();
    if t.bound.is_none() && pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
        t.bound = Some(now);
    }
    if t.running.is_none() && is_running(pod) {
        t.running = Some(now);
        return 1;
    }
    0
}

/// Phase Running and every container running.
fn is_running(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array);
    phase && statuses.is_some_and(|s| !s.is_empty() && s.iter().all(|c| c.pointer("/state/running").is_some()))
}

fn pod_body(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench-startup"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "sleep",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]
            }]
        }
    })
}

/// Creates `n` pods paced at `rate`/s with [`CREATORS`] requests in flight.
async fn create_pods(
    url: String,
    collection: String,
    image: String,
    n: usize,
    rate: f64,
    times: Arc<Mutex<HashMap<String, Times>>>,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CREATORS {
        let (url, collection, image, times, next) =
            (url.clone(), collection.clone(), image.clone(), times.clone(), next.clone());
        tasks.spawn(async move {
            let mut conn = Conn::connect(&url).await?;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
                let name = format!("startup-{i:05}");
                lock(&times).entry(name.clone()).or_default().created = Some(Instant::now());
                conn.call(Method::POST, &collection, Some(&pod_body(&name, &image)), StatusCode::CREATED).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a pod creator panicked")??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_needs_the_phase_and_every_container() {
        let pod = |phase: &str, states: Value| json!({"status": {"phase": phase, "containerStatuses": states}});
        assert!(is_running(&pod("Running", json!([{"state": {"running": {}}}]))));
        assert!(!is_running(&pod("Pending", json!([{"state": {"running": {}}}]))));
        assert!(!is_running(&pod("Running", json!([{"state": {"running": {}}}, {"state": {"waiting": {}}}]))));
        assert!(!is_running(&pod("Running", json!([]))));
    }

    #[test]
    fn a_pod_counts_once_and_bound_is_noted() {
        let mut times = HashMap::new();
        let t0 = Instant::now();
        times.insert("p".to_string(), Times { created: Some(t0), ..Times::default() });
        let bound =
            json!({"object": {"metadata": {"name": "p"}, "spec": {"nodeName": "a"}, "status": {"phase": "Pending"}}});
        assert_eq!(note(&mut times, &bound, t0 + Duration::from_millis(5)), 0);
        let mut running = bound.clone();
        running["object"]["status"] = json!({"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]});
        assert_eq!(note(&mut times, &running, t0 + Duration::from_millis(9)), 1);
        assert_eq!(note(&mut times, &running, t0 + Duration::from_millis(20)), 0, "seen once");
        let got = times_vec(&times);
        assert_eq!(got, vec![(Duration::from_millis(5), Duration::from_millis(9))]);
    }
}
