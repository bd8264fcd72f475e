//! `flotilla bench-failover`: kill -9 the leader of a running cluster under write load and
//! measure the time from the kill to the first successful write, over several rounds.
//!
//! The cluster is the one `flotilla up` describes in `cluster.json`. Each round: find the
//! leader, run closed-loop writers against the other replicas, SIGKILL the leader, record
//! when the first write *issued after the kill* succeeds, then restart the killed replica
//! with its recorded argv and wait until it has caught up. Restarted replicas' pids are
//! written back to `cluster.json`, so `flotilla up` stops them too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use etcd_client::{Client, ConnectOptions};
use tokio::sync::watch;

use crate::up::{ClusterFile, ReplicaInfo};

#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// The `cluster.json` written by `flotilla up`.
    #[arg(long)]
    cluster_file: PathBuf,
    /// Rounds to run (each kills and restarts one leader).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Concurrent writers per surviving replica.
    #[arg(long, default_value_t = 4)]
    writers: usize,
}

/// Longest a round may wait for a write to succeed after the kill.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a restarted replica may take to answer and catch up.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-request timeout of the writers: a write stuck on the dead leader is abandoned.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between probes while waiting.
const PROBE: Duration = Duration::from_millis(20);

pub async fn run(args: FailoverArgs) -> anyhow::Result<()> {
    if args.rounds == 0 || args.writers == 0 {
        bail!("--rounds and --writers must be positive");
    }
    let mut cluster = ClusterFile::read_plaintext(&args.cluster_file)?;
    if cluster.replicas.len() < 3 {
        bail!("failover needs at least 3 replicas");
    }
    let mut times = Vec::new();
    for round in 1..=args.rounds {
        let leader = find_leader(&cluster.replicas).await?;
        let elapsed = kill_and_time(&cluster.replicas, leader, args.writers).await?;
        println!(
            "round {round}: killed {} (leader); first successful write after {:.0} ms",
            cluster.replicas[leader].name,
            ms(elapsed)
        );
        times.push(elapsed);
        let pid = restart(&cluster.replicas[leader], args.cluster_file.parent().unwrap_or(std::path::Path::new(".")))?;
        cluster.replicas[leader].pid = pid;
        std::fs::write(&args.cluster_file, serde_json::to_vec_pretty(&cluster)?)?;
        wait_rejoined(&cluster.replicas, leader).await?;
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "failover over {} rounds: median {:.0} ms, min {:.0} ms, max {:.0} ms",
        times.len(),
        ms(median),
        ms(times[0]),
        ms(*times.last().expect("at least one round"))
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn client(url: &str) -> anyhow::Result<Client> {
    let opts = ConnectOptions::new().with_connect_timeout(Duration::from_secs(1)).with_timeout(WRITE_TIMEOUT);
    Ok(Client::connect([url], Some(opts)).await?)
}

/// Index of the replica every live replica names as leader.
pub(crate) async fn find_leader(replicas: &[ReplicaInfo]) -> anyhow::Result<usize> {
    let deadline = Instant::now() + REJOIN_TIMEOUT;
    loop {
        let mut ids = Vec::new();
        let mut leaders = Vec::new();
        for r in replicas {
            if let Ok(mut c) = client(&r.client_url).await {
                if let Ok(s) = c.status().await {
                    ids.push(s.header().map_or(0, |h| h.member_id()));
                    leaders.push(s.leader());
                    continue;
                }
            }
            ids.push(0);
            leaders.push(0);
        }
        let agreed = leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]);
        if let (true, Some(i)) = (agreed, ids.iter().position(|id| *id == leaders[0])) {
            return Ok(i);
        }
        if Instant::now() > deadline {
            bail!("no agreed leader within {REJOIN_TIMEOUT:?}");
        }
        tokio::time::sleep(PROBE).await;
    }
}

/// SIGKILL the leader under load; time until a write issued after the kill succeeds.
async fn kill_and_time(replicas: &[ReplicaInfo], leader: usize, writers: usize) -> anyhow::Result<Duration> {
    let (killed_tx, killed_rx) = watch::channel(None::<Instant>);
    let (done_tx, mut done_rx) = watch::channel(None::<Instant>);
    let done_tx = Arc::new(done_tx);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, r) in replicas.iter().enumerate().filter(|(i, _)| *i != leader) {
        for w in 0..writers {
            let mut c = client(&r.client_url).await?;
            let (killed, done) = (killed_rx.clone(), done_tx.clone());
            tasks.spawn(async move {
                for n in 0u64.. {
                    let issued = Instant::now();
                    let ok = c.put(format!("failover/{i}/{w}"), n.to_string(), None).await.is_ok();
                    let after_kill = killed.borrow().is_some_and(|k| issued >= k);
                    if ok && after_kill {
                        done.send_if_modified(|d| {
                            d.is_none() && {
                                *d = Some(Instant::now());
                                true
                            }
                        });
                        return;
                    }
                }
            });
        }
    }
    // Let the writers reach a steady state before the kill.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    // SAFETY: kill(2) on a pid from cluster.json; no memory effects.
    if unsafe { libc::kill(replicas[leader].pid as libc::pid_t, libc::SIGKILL) } != 0 {
        bail!("cannot kill pid {} of {}", replicas[leader].pid, replicas[leader].name);
    }
    killed_tx.send_replace(Some(killed_at));
    let first = tokio::time::timeout(ROUND_TIMEOUT, done_rx.wait_for(|d| d.is_some())).await;
    tasks.abort_all();
    let first = first.context("no write succeeded after the kill")??.expect("waited for Some");
    Ok(first.duration_since(killed_at))
}

pub(crate) fn restart(r: &ReplicaInfo, dir: &std::path::Path) -> anyhow::Result<u32> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{}.log", r.name)))?;
    let child = std::process::Command::new(&r.argv[0])
        .args(&r.argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("restarting {}", r.name))?;
    Ok(child.id())
}

/// Wait until the restarted replica answers and has applied what the leader had.
pub(crate) async fn wait_rejoined(replicas: &[ReplicaInfo], restarted: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + REJOIN_TIMEOUT;
    loop {
        let leader = find_leader(replicas).await?;
        let target = status_applied(&replicas[leader].client_url).await;
        let have = status_applied(&replicas[restarted].client_url).await;
        if let (Some(t), Some(h)) = (target, have) {
            if h >= t {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{} did not catch up within {REJOIN_TIMEOUT:?}", replicas[restarted].name);
        }
        tokio::time::sleep(PROBE).await;
    }
}

async fn status_applied(url: &str) -> Option<u64> {
    let mut c = client(url).await.ok()?;
    c.status().await.ok().map(|s| s.raft_applied_index())
}
