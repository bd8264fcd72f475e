//! `flotilla bench-handover`: how long after `kill -9` of the leader the controllers act on
//! new work on the new leader.
//!
//! Each round, on the cluster `flotilla up` describes in `cluster.json`:
//! 1. find the Raft leader (every replica's etcd Status agrees, as `bench-failover` does) and
//!    wait until the `kube-system/flotilla-controllers` Lease names it, i.e. its
//!    controllers run;
//! 2. on a surviving replica, list-and-watch the round's pods (label selector) and the
//!    Lease ([`sighting`]), both opened before the kill so nothing is missed;
//! 3. SIGKILL the leader; at once create a ReplicaSet with 1 replica, retrying on the
//!    surviving replicas (a fresh connection per attempt, each abandoned after
//!    [`CREATE_ATTEMPT_TIMEOUT`]) until the API accepts it — an AlreadyExists answer means
//!    an abandoned attempt did commit;
//! 4. record kill → create accepted, kill → Lease holder changed, kill → the ReplicaSet's
//!    first pod seen (the headline: the new leader's replicaset controller acted);
//! 5. restart the killed replica with its recorded argv (pid written back to
//!    `cluster.json`, as `bench-failover` does) and wait until it has caught up.
//!
//! All times are on this process's monotonic clock, taken when the event was read here.

mod sighting;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hyper::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use crate::bench_api::client::Conn;
use crate::bench_api::stats::{ms, round2, Summary};
use crate::failover::{find_leader, restart, wait_rejoined};
use crate::up::{ClusterFile, ReplicaInfo};
use sighting::{Matcher, Sighting};

#[derive(Args, Debug)]
pub struct BenchHandoverArgs {
    /// The `cluster.json` written by `flotilla up`.
    #[arg(long)]
    cluster_file: PathBuf,
    /// Rounds to run (each kills and restarts one leader).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// The target for kill → first pod.
const TARGET: Duration = Duration::from_secs(3);
/// Longest a round may take from the kill to the first pod.
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);
/// One create attempt: a request stuck on the dead leader is abandoned after this.
const CREATE_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Pause after a refused create, so a replica that answers at once is not hammered.
const CREATE_RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Longest the Lease may take to name the leader before a round starts.
const LEASE_SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between reads of the Lease while it settles.
const LEASE_POLL: Duration = Duration::from_millis(100);

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
const LEASE_NAME: &str = "flotilla-controllers";
/// Pod label that tells one round's ReplicaSet from another's.
const ROUND_LABEL: &str = "handover-round";

/// One round's figures.
#[derive(Debug, Serialize)]
struct Round {
    round: usize,
    killed: String,
    new_holder: String,
    create_attempts: usize,
    create_accepted_ms: f64,
    lease_changed_ms: f64,
    first_pod_ms: f64,
    watch_reopens: usize,
}

pub async fn run(args: BenchHandoverArgs) -> anyhow::Result<()> {
    if args.rounds == 0 {
        bail!("--rounds must be positive");
    }
    let mut cluster = ClusterFile::read_plaintext(&args.cluster_file)?;
    if cluster.replicas.len() < 3 || cluster.replicas.iter().any(|r| r.api_url.is_empty()) {
        bail!("handover needs at least 3 replicas, each with an api_url");
    }
    let dir = args.cluster_file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let id = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() % 0x100_0000;
    let ns = format!("bench-handover-{id:x}");
    let ns_body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    Conn::connect(&cluster.replicas[0].api_url)
        .await?
        .call(Method::POST, "/api/v1/namespaces", Some(&ns_body), StatusCode::CREATED)
        .await?;
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let leader = find_leader(&cluster.replicas).await?;
        let mut killed = false;
        let r = one_round(&cluster.replicas, leader, &ns, round, &mut killed).await;
        // A round that failed after the kill still brings the replica back.
        if killed {
            let pid = restart(&cluster.replicas[leader], &dir)?;
            cluster.replicas[leader].pid = pid;
            std::fs::write(&args.cluster_file, serde_json::to_vec_pretty(&cluster)?)?;
            wait_rejoined(&cluster.replicas, leader).await?;
        }
        let r = r.with_context(|| format!("round {round}"))?;
        println!("{}", serde_json::to_string(&r)?);
        rounds.push(r);
    }
    print_summary(&rounds);
    let mut conn = Conn::connect(&cluster.replicas[0].api_url).await?;
    if let Err(e) = conn.call(Method::DELETE, &format!("/api/v1/namespaces/{ns}"), None, StatusCode::OK).await {
        eprintln!("bench-handover: deleting namespace {ns} failed: {e:#}");
    }
    Ok(())
}

/// One round; sets `killed` once the leader has been sent SIGKILL.
async fn one_round(
    replicas: &[ReplicaInfo],
    leader: usize,
    ns: &str,
    round: usize,
    killed_leader: &mut bool,
) -> anyhow::Result<Round> {
    let killed = &replicas[leader];
    wait_lease_holder(&killed.api_url, &killed.name).await?;
    let survivors: Vec<String> =
        replicas.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, r)| r.api_url.clone()).collect();
    let pods_query = format!("labelSelector={ROUND_LABEL}%3D{round}");
    let mut pods =
        Sighting::open(survivors.clone(), format!("/api/v1/namespaces/{ns}/pods"), pods_query, any()).await?;
    let old = killed.name.clone();
    let moved: Matcher = Box::new(move |o| {
        o.pointer("/metadata/name").and_then(Value::as_str) == Some(LEASE_NAME)
            && holder(o).is_some_and(|h| !h.is_empty() && h != old)
    });
    let mut lease = Sighting::open(survivors.clone(), LEASES.into(), String::new(), moved).await?;

    let killed_at = Instant::now();
    // SAFETY: kill(2) on a pid from cluster.json; no memory effects.
    if unsafe { libc::kill(killed.pid as libc::pid_t, libc::SIGKILL) } != 0 {
        bail!("cannot kill pid {} of {}", killed.pid, killed.name);
    }
    *killed_leader = true;
    let deadline = killed_at + ROUND_TIMEOUT;
    let pod_seen = tokio::spawn(async move { pods.wait(deadline).await.map(|at| (at, pods.reopens)) });
    let lease_seen = tokio::spawn(async move { lease.wait(deadline).await.map(|at| (at, lease.reopens)) });
    let (accepted, attempts) = create_replicaset(&survivors, ns, round, deadline).await?;
    let (first_pod, pod_reopens) = pod_seen.await.context("the pod watcher panicked")??;
    let (lease_changed, lease_reopens) = lease_seen.await.context("the lease watcher panicked")??;
    let new_holder = current_holder(&survivors).await.unwrap_or_default();
    let since = |t: Instant| round2(ms(t.saturating_duration_since(killed_at)));
    Ok(Round {
        round,
        killed: killed.name.clone(),
        new_holder,
        create_attempts: attempts,
        create_accepted_ms: since(accepted),
        lease_changed_ms: since(lease_changed),
        first_pod_ms: since(first_pod),
        watch_reopens: pod_reopens + lease_reopens,
    })
}

/// Matches anything (the label selector already picks the round's pods).
fn any() -> Matcher {
    Box::new(|_| true)
}

fn holder(lease: &Value) -> Option<&str> {
    lease.pointer("/spec/holderIdentity").and_then(Value::as_str)
}

/// The Lease's holder as one of `urls` reports it.
async fn current_holder(urls: &[String]) -> Option<String> {
    for url in urls {
        let Ok(mut conn) = Conn::connect(url).await else { continue };
        let path = format!("{LEASES}/{LEASE_NAME}");
        if let Ok(l) = conn.call_json(Method::GET, &path, None, StatusCode::OK).await {
            return holder(&l).map(String::from);
        }
    }
    None
}

/// Waits until the controllers Lease names `name`.
async fn wait_lease_holder(url: &str, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + LEASE_SETTLE_TIMEOUT;
    loop {
        if current_holder(&[url.to_string()]).await.as_deref() == Some(name) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the {LEASE_NAME} Lease did not name {name} within {LEASE_SETTLE_TIMEOUT:?}");
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

fn replicaset(round: usize) -> Value {
    let labels = json!({ROUND_LABEL: round.to_string()});
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": format!("handover-{round}"), "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
            }
        }
    })
}

/// Creates the round's ReplicaSet on the survivors in turn until one accepts it; returns
/// when it was accepted and how many attempts that took.
async fn create_replicaset(
    urls: &[String],
    ns: &str,
    round: usize,
    deadline: Instant,
) -> anyhow::Result<(Instant, usize)> {
    let (path, body) = (format!("/apis/apps/v1/namespaces/{ns}/replicasets"), replicaset(round));
    let mut last_error = String::new();
    for attempt in 0.. {
        if Instant::now() > deadline {
            bail!("no replica accepted the ReplicaSet after {attempt} attempts; last: {last_error}");
        }
        let url = &urls[attempt % urls.len()];
        let one = async {
            let mut conn = Conn::connect(url).await?;
            let resp = conn.send(Method::POST, &path, Some(&body)).await?;
            anyhow::Ok(resp.status())
        };
        match tokio::time::timeout(CREATE_ATTEMPT_TIMEOUT, one).await {
            Ok(Ok(StatusCode::CREATED | StatusCode::CONFLICT)) => return Ok((Instant::now(), attempt + 1)),
            Ok(Ok(status)) => last_error = format!("{url}: HTTP {status}"),
            Ok(Err(e)) => last_error = format!("{url}: {e:#}"),
            Err(_) => last_error = format!("{url}: no answer within {CREATE_ATTEMPT_TIMEOUT:?}"),
        }
        tokio::time::sleep(CREATE_RETRY_PAUSE).await;
    }
    unreachable!("the attempt counter is unbounded")
}

/// Min, median (nearest rank) and max in ms.
fn spread(samples: &mut [Duration]) -> (f64, f64, f64) {
    let s = Summary::of(samples);
    let min = samples.first().map_or(0.0, |d| ms(*d));
    (round2(min), round2(s.p50_ms), round2(s.max_ms))
}

/// One per-round figure, in ms.
type Column = fn(&Round) -> f64;

/// The figures the summary spreads over the rounds.
const COLUMNS: [(&str, Column); 3] = [
    ("kill -> create accepted", |r| r.create_accepted_ms),
    ("kill -> lease moved", |r| r.lease_changed_ms),
    ("kill -> first pod", |r| r.first_pod_ms),
];

fn print_summary(rounds: &[Round]) {
    let col = |f: Column| -> Vec<Duration> { rounds.iter().map(|r| Duration::from_secs_f64(f(r) / 1000.0)).collect() };
    println!();
    println!("{:<24} {:>9} {:>9} {:>9}", format!("over {} rounds", rounds.len()), "min ms", "median ms", "max ms");
    for (name, f) in COLUMNS {
        let (min, median, max) = spread(&mut col(f));
        println!("{name:<24} {min:>9.0} {median:>9.0} {max:>9.0}");
    }
    let (_, median, max) = spread(&mut col(|r| r.first_pod_ms));
    let met = if max < ms(TARGET) {
        "met in every round"
    } else if median < ms(TARGET) {
        "met at the median"
    } else {
        "not met"
    };
    println!("target kill -> first pod < {} s: {met} (median {median:.0} ms, max {max:.0} ms)", TARGET.as_secs());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_min_median_max() {
        let mut v: Vec<Duration> = [900, 1200, 800, 3100, 1000].iter().map(|m| Duration::from_millis(*m)).collect();
        assert_eq!(spread(&mut v), (800.0, 1000.0, 3100.0));
        assert_eq!(spread(&mut []), (0.0, 0.0, 0.0));
    }

    #[test]
    fn replicaset_selects_its_own_template() {
        let rs = replicaset(3);
        assert_eq!(rs["spec"]["selector"]["matchLabels"], rs["spec"]["template"]["metadata"]["labels"]);
        assert_eq!(rs["spec"]["template"]["metadata"]["labels"][ROUND_LABEL], "3");
        assert_eq!(rs["metadata"]["name"], "handover-3");
    }
}
