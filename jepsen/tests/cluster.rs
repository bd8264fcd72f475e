//! The cluster under test and the nemeses, for real: network namespaces, nftables, signals,
//! libfaketime, etcd membership. Needs root, and the `flotilla` binary
//! (`cargo build --bin flotilla`, or `$FLOTILLA_BIN`); `ensure_tools` installs `nftables` and
//! `faketime` when missing.

#[path = "cluster/helpers.rs"]
mod helpers;

use std::time::Duration;

use anyhow::Context;
use flotilla_jepsen::cluster::{self, ProcState};
use flotilla_jepsen::nemesis::{partition, Fault, Kind, Nemesis, Partition, Schedule, ScheduleOptions, Step, Target};
use helpers::*;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_reads_and_writes_and_teardown_removes_everything() -> anyhow::Result<()> {
    let (mut cluster, _dir) = start(3).await?;
    let run = cluster.run();
    let pids: Vec<u32> = (0..3).map(|i| cluster.node(i).pid.expect("started")).collect();
    for (i, url) in cluster.endpoints().iter().enumerate() {
        put(url, &format!("k{i}"), &format!("v{i}")).await.with_context(|| format!("put through {url}"))?;
    }
    for i in 0..3 {
        all_read(&cluster, &format!("k{i}"), &format!("v{i}")).await?;
    }
    assert!(command_output(&["ip", "netns", "list"]).contains(&format!("fj-{run}-n3")));
    cluster.teardown()?;
    let netns = command_output(&["ip", "netns", "list"]);
    assert!(!netns.contains(&format!("fj-{run}-")), "namespaces left: {netns}");
    assert!(!command_output(&["ip", "-o", "link"]).contains(&format!("fj{run}host")), "root link left");
    pids.iter().for_each(|&pid| assert!(process_gone(pid), "process {pid} left"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_loses_writes_to_the_majority_and_heals() -> anyhow::Result<()> {
    let (cluster, _dir) = start(3).await?;
    let old = cluster.leader().await.context("a leader")?;
    let cut = partition::grudge(&Partition::IsolateLeader, 3, old);
    partition::apply(&cluster, &cut)?;
    let new = eventually("a new leader", HEAL_TIMEOUT, || async {
        cluster.leader().await.filter(|&l| l != old).context("old leader still the highest term")
    })
    .await?;
    let urls = cluster.endpoints();
    eventually("a write through the majority", HEAL_TIMEOUT, || put(&urls[new], "p", "during")).await?;
    assert!(put(&urls[old], "p", "isolated").await.is_err(), "the isolated node accepted a write");
    assert!(get(&urls[old], "p").await.is_err(), "the isolated node served a linearizable read");
    partition::heal(&cluster)?;
    cluster.wait_healthy(HEAL_TIMEOUT).await?;
    eventually("every node reads the majority's write", HEAL_TIMEOUT, || all_read(&cluster, "p", "during")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_restarts_on_its_data_and_rejoins() -> anyhow::Result<()> {
    let (mut cluster, _dir) = start(3).await?;
    let leader = cluster.leader().await.context("a leader")?;
    let victim = (leader + 1) % 3;
    let old_pid = cluster.node(victim).pid.context("running")?;
    cluster.kill(victim)?;
    assert!(process_gone(old_pid) && cluster.node(victim).state == ProcState::Stopped);
    put(&cluster.endpoints()[leader], "k", "while-down").await?;
    cluster.restart(victim)?;
    assert_ne!(cluster.node(victim).pid, Some(old_pid));
    cluster.wait_healthy(HEAL_TIMEOUT).await?;
    eventually("the restarted node catches up", HEAL_TIMEOUT, || all_read(&cluster, "k", "while-down")).await?;
    assert!(cluster.crashed().is_empty(), "a node crashed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_is_replaced_and_catches_up_after_resume() -> anyhow::Result<()> {
    let (mut cluster, _dir) = start(3).await?;
    let old = cluster.leader().await.context("a leader")?;
    cluster.pause(old)?;
    let stat = format!("/proc/{}/stat", cluster.node(old).pid.expect("running"));
    eventually("the leader is stopped", CALL_TIMEOUT, || async {
        let s = std::fs::read_to_string(&stat)?;
        s.rsplit_once(')').filter(|(_, r)| r.trim_start().starts_with('T')).map(drop).context("not stopped yet")
    })
    .await?;
    let new = eventually("a new leader", HEAL_TIMEOUT, || async {
        cluster.leader().await.filter(|&l| l != old).context("no other leader yet")
    })
    .await?;
    let url = &cluster.endpoints()[new];
    eventually("a write while paused", HEAL_TIMEOUT, || put(url, "k", "paused")).await?;
    cluster.resume(old)?;
    cluster.wait_healthy(HEAL_TIMEOUT).await?;
    eventually("the resumed node catches up", HEAL_TIMEOUT, || all_read(&cluster, "k", "paused")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_clock_node_runs_ahead_and_rejoins() -> anyhow::Result<()> {
    let (mut cluster, dir) = start(3).await?;
    cluster.set_clock(1, Some("+3600"))?;
    cluster.wait_healthy(HEAL_TIMEOUT).await?;
    put(&cluster.endpoints()[1], "k", "skewed").await?;
    all_read(&cluster, "k", "skewed").await?;
    let skew = last_log_time(&dir.0.join("n2.log"))? - now_epoch_s();
    assert!((3500..3700).contains(&skew), "n2's log runs {skew}s ahead, not about an hour");
    cluster.set_clock(1, None)?;
    cluster.wait_healthy(HEAL_TIMEOUT).await?;
    let skew = last_log_time(&dir.0.join("n2.log"))? - now_epoch_s();
    assert!(skew.abs() < 60, "n2 still runs {skew}s off after the heal");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_comes_back_as_learner_and_is_promoted() -> anyhow::Result<()> {
    use flotilla_jepsen::nemesis::membership;
    let (mut cluster, dir) = start(3).await?;
    membership::remove(&mut cluster, 2).await?;
    let mut c = client(&cluster.endpoints()[0]).await?;
    assert_eq!(c.member_list().await?.members().len(), 2);
    put(&cluster.endpoints()[0], "k", "two-members").await?;
    membership::re_add(&mut cluster, 2).await?;
    let members = c.member_list().await?;
    assert_eq!(members.members().len(), 3);
    assert!(members.members().iter().all(|m| !m.is_learner()), "{members:?}");
    // It started over from an empty data dir (flotilla derives member IDs from the peer URL,
    // so the ID itself is the same as before).
    let log = strip_ansi(&std::fs::read_to_string(dir.0.join("n3.log"))?);
    assert_eq!(log.matches("pristine=true").count(), 2, "n3 did not start fresh twice");
    cluster.wait_healthy(HEAL_TIMEOUT).await?;
    eventually("the new member catches up", HEAL_TIMEOUT, || all_read(&cluster, "k", "two-members")).await
}

/// Five nodes: a majorities ring and a bridge both leave a node that can reach a majority,
/// so writes still succeed somewhere; healed, everyone agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_keep_writing_through_a_majorities_ring_and_a_bridge() -> anyhow::Result<()> {
    let (cluster, _dir) = start(5).await?;
    let urls = cluster.endpoints();
    for (k, p) in
        [Partition::MajoritiesRing(vec![3, 0, 4, 1, 2]), Partition::Bridge(vec![4, 0, 1, 2, 3])].iter().enumerate()
    {
        let cut = partition::grudge(p, 5, 0);
        partition::apply(&cluster, &cut)?;
        let seen = reachability(&cluster);
        for (a, b) in (0..5).flat_map(|a| (0..5).map(move |b| (a, b))) {
            assert_eq!(seen[a][b], !cut[a].contains(&b), "{p:?}: n{} -> n{}", a + 1, b + 1);
        }
        let value = format!("v{k}");
        eventually("a write under the partition", HEAL_TIMEOUT, || async {
            for url in &urls {
                if put(url, "k", &value).await.is_ok() {
                    return Ok(());
                }
            }
            anyhow::bail!("no node accepted the write")
        })
        .await?;
        partition::heal(&cluster)?;
        cluster.wait_healthy(HEAL_TIMEOUT).await?;
        eventually("all five agree", HEAL_TIMEOUT, || all_read(&cluster, "k", &value)).await?;
    }
    Ok(())
}

#[test]
fn schedules_are_deterministic_per_seed_and_differ_across_seeds() {
    let opts = |seed| ScheduleOptions::new(seed, Kind::ALL.to_vec(), 5, Duration::from_secs(300));
    let a = Schedule::generate(&opts(42)).unwrap();
    assert_eq!(a, Schedule::generate(&opts(42)).unwrap());
    assert_eq!(a.to_string(), Schedule::generate(&opts(42)).unwrap().to_string());
    assert_ne!(a, Schedule::generate(&opts(43)).unwrap());
    println!("{a}");
    assert!(a.to_string().lines().count() > a.steps.len(), "one line per step plus a header");
}

/// Every kind once, on a short clock, while a writer runs: all healed, timeline complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_runs_every_kind_on_time_and_leaves_the_cluster_healthy() -> anyhow::Result<()> {
    let (mut cluster, dir) = start(3).await?;
    let faults = [
        Fault::Partition(Partition::IsolateLeader),
        Fault::Kill(Target::Leader),
        Fault::Pause(Target::Minority(vec![1])),
        Fault::Clock { node: 0, offset_s: -120 },
        Fault::Member(2),
    ];
    let steps = faults.iter().enumerate().map(|(k, f)| {
        let start = Duration::from_millis(500 + 3500 * k as u64);
        Step { start, end: start + Duration::from_millis(2500), fault: f.clone() }
    });
    let schedule = Schedule { seed: 0, steps: steps.collect() };
    let urls = cluster.endpoints();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(async move {
        let mut acked = 0u32;
        while !*stop_rx.borrow_and_update() {
            for url in &urls {
                if put(url, "load", &acked.to_string()).await.is_ok() {
                    acked += 1;
                }
            }
        }
        acked
    });
    let origin = Instant::now();
    let timeline = Nemesis::new(schedule.clone()).run(&mut cluster, origin, std::future::pending()).await?;
    stop_tx.send(true)?;
    let acked = writer.await?;
    timeline.write_jsonl(&dir.0.join("nemesis.jsonl"))?;
    assert_eq!(timeline.events.len(), faults.len());
    for (e, step) in timeline.events.iter().zip(&schedule.steps) {
        assert_eq!(e.error, None, "{e:?}");
        let end = e.end_ms.with_context(|| format!("{e:?} never healed"))?;
        assert!(e.start_ms >= step.start.as_millis() as u64 && end >= step.end.as_millis() as u64, "{e:?}");
        assert!(!e.nodes.is_empty(), "{e:?}");
    }
    assert!(acked > 0, "no write succeeded under the nemesis");
    cluster.wait_healthy(HEAL_TIMEOUT).await?;
    put(&cluster.endpoints()[2], "after", "ok").await?;
    eventually("all nodes agree after the run", HEAL_TIMEOUT, || all_read(&cluster, "after", "ok")).await?;
    assert!((0..3).all(|i| !cluster.clock_skewed(i)) && cluster.crashed().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_heals_the_fault_in_progress() -> anyhow::Result<()> {
    let (mut cluster, _dir) = start(3).await?;
    let long = Duration::from_secs(600);
    let step = Step { start: Duration::ZERO, end: long, fault: Fault::Partition(Partition::IsolateOne(0)) };
    let schedule = Schedule { seed: 0, steps: vec![step] };
    let origin = Instant::now();
    let ns = cluster.node(0).netns;
    let cancel = async {
        // Cancel once the fault is visibly in place.
        while !command_output(&["ip", "netns", "exec", &ns, "nft", "list", "tables"]).contains(partition::TABLE) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let timeline = Nemesis::new(schedule).run(&mut cluster, origin, cancel).await?;
    assert!(timeline.events[0].end_ms.is_some_and(|ms| ms < 60_000), "{timeline:?}");
    assert!(!command_output(&["ip", "netns", "exec", &ns, "nft", "list", "tables"]).contains(partition::TABLE));
    cluster.wait_healthy(HEAL_TIMEOUT).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_runs_of_a_dead_harness_are_cleaned_up() -> anyhow::Result<()> {
    let (cluster, _dir) = start(3).await?;
    let run = cluster.run();
    let pid = cluster.node(0).pid.context("running")?;
    // Pretend the owner died: hand the claim to a pid that has exited, then leak the cluster.
    let mut dead = std::process::Command::new("true").spawn()?;
    dead.wait()?;
    std::fs::write(format!("/run/flotilla-jepsen/{run}"), dead.id().to_string())?;
    std::mem::forget(cluster);
    let removed = cluster::cleanup_stale()?;
    assert!(removed.contains(&run), "{removed:?}");
    assert!(process_gone(pid), "node process survived");
    // Parallel tests may claim the freed run number at once and create its names again;
    // the leaked ones must be gone unless a live owner holds the number now.
    let reclaimed = std::fs::read_to_string(format!("/run/flotilla-jepsen/{run}"))
        .ok()
        .and_then(|owner| owner.trim().parse::<u32>().ok())
        .is_some_and(|owner| owner != dead.id());
    if !reclaimed {
        assert!(!command_output(&["ip", "netns", "list"]).contains(&format!("fj-{run}-")));
        assert!(!command_output(&["ip", "-o", "link"]).contains(&format!("fj{run}host")));
    }
    Ok(())
}
