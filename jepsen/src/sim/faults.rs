//! The simulation's nemesis: a schedule drawn from the seed, then each fault injected and
//! healed on the virtual clock.
//!
//! Faults come one at a time, separated by quiet spells: isolate a node or the leader, split
//! the cluster in two, crash a node or the leader (restarted at heal), or make the whole
//! network lossy and slow. "The leader" is whichever replica believes it leads when the fault
//! starts.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::PoisonError;
use std::time::Duration;

use openraft::ServerState;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

use super::clients::Nodes;
use super::cluster::SimCluster;

/// A fault of the schedule (node numbers are indexes into the cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Isolate(usize),
    IsolateLeader,
    /// Cut the cluster between this side and the rest.
    Split(BTreeSet<usize>),
    Crash(usize),
    CrashLeader,
    /// Lose this percentage of messages and delay each by this much more.
    Lossy {
        loss_pct: u32,
        delay_ms: u64,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Isolate(i) => write!(f, "isolate n{}", i + 1),
            Fault::IsolateLeader => f.write_str("isolate the leader"),
            Fault::Split(side) => {
                let names: Vec<String> = side.iter().map(|i| format!("n{}", i + 1)).collect();
                write!(f, "split {{{}}} from the rest", names.join(","))
            }
            Fault::Crash(i) => write!(f, "crash n{}", i + 1),
            Fault::CrashLeader => f.write_str("crash the leader"),
            Fault::Lossy { loss_pct, delay_ms } => write!(f, "lose {loss_pct}% of messages, +{delay_ms} ms each"),
        }
    }
}

/// One fault of the schedule: when it starts (since the run began) and how long it lasts.
#[derive(Debug, Clone)]
pub struct Planned {
    pub at: Duration,
    pub lasts: Duration,
    pub fault: Fault,
}

/// What happened: the fault as resolved ("crash n2" for "crash the leader"), and when.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FaultRecord {
    pub what: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// The schedule for `nodes` replicas over `time`: quiet 0.5–2 s, then a fault of 1–4 s.
pub fn plan(seed: u64, nodes: usize, time: Duration) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut at = Duration::ZERO;
    let mut schedule = Vec::new();
    loop {
        at += Duration::from_millis(rng.gen_range(500..2000));
        let lasts = Duration::from_millis(rng.gen_range(1000..4000));
        if at + lasts > time {
            return schedule;
        }
        let fault = match rng.gen_range(0..6) {
            0 => Fault::Isolate(rng.gen_range(0..nodes)),
            1 => Fault::IsolateLeader,
            2 => {
                let mut all: Vec<usize> = (0..nodes).collect();
                all.shuffle(&mut rng);
                Fault::Split(all[..nodes / 2].iter().copied().collect())
            }
            3 => Fault::Crash(rng.gen_range(0..nodes)),
            4 => Fault::CrashLeader,
            _ => Fault::Lossy { loss_pct: rng.gen_range(10..50), delay_ms: rng.gen_range(0..100) },
        };
        schedule.push(Planned { at, lasts, fault });
        at += lasts;
    }
}

/// The replica that believes it leads, if any.
fn leader(cluster: &SimCluster) -> Option<usize> {
    (0..cluster.len())
        .find(|&i| cluster.node(i).is_some_and(|n| n.raft().metrics().borrow().state == ServerState::Leader))
}

/// What must be undone at heal.
enum Active {
    Partition,
    Crashed(usize),
    Lossy,
    /// The fault had no target (no leader at the time).
    Nothing,
}

/// Play `schedule` from `start`; every fault is healed before this returns.
pub async fn play(
    cluster: &mut SimCluster,
    nodes: &Nodes,
    schedule: &[Planned],
    start: Instant,
) -> anyhow::Result<Vec<FaultRecord>> {
    let mut records = Vec::new();
    for planned in schedule {
        tokio::time::sleep_until(start + planned.at).await;
        let began = start.elapsed();
        let (what, active) = inject(cluster, &planned.fault).await;
        publish(cluster, nodes);
        tokio::time::sleep_until(start + planned.at + planned.lasts).await;
        heal(cluster, active).await?;
        publish(cluster, nodes);
        records.push(FaultRecord {
            what,
            start_ms: began.as_millis() as u64,
            end_ms: start.elapsed().as_millis() as u64,
        });
    }
    Ok(records)
}

async fn inject(cluster: &mut SimCluster, fault: &Fault) -> (String, Active) {
    let isolate = |cluster: &SimCluster, i: usize| {
        cluster.net.partition(&BTreeSet::from([cluster.replicas[i].id]));
        (format!("isolate n{}", i + 1), Active::Partition)
    };
    match fault {
        Fault::Isolate(i) => isolate(cluster, *i),
        Fault::IsolateLeader => match leader(cluster) {
            Some(i) => isolate(cluster, i),
            None => ("isolate the leader (none)".into(), Active::Nothing),
        },
        Fault::Split(side) => {
            cluster.net.partition(&side.iter().map(|&i| cluster.replicas[i].id).collect());
            (fault.to_string(), Active::Partition)
        }
        Fault::Crash(i) => {
            cluster.crash(*i).await;
            (fault.to_string(), Active::Crashed(*i))
        }
        Fault::CrashLeader => match leader(cluster) {
            Some(i) => {
                cluster.crash(i).await;
                (format!("crash n{} (leader)", i + 1), Active::Crashed(i))
            }
            None => ("crash the leader (none)".into(), Active::Nothing),
        },
        Fault::Lossy { loss_pct, delay_ms } => {
            cluster.net.degrade(f64::from(*loss_pct) / 100.0, Duration::from_millis(*delay_ms));
            (fault.to_string(), Active::Lossy)
        }
    }
}

async fn heal(cluster: &mut SimCluster, active: Active) -> anyhow::Result<()> {
    match active {
        Active::Partition => cluster.net.heal(),
        Active::Lossy => cluster.net.calm(),
        Active::Crashed(i) => cluster.restart(i).await?,
        Active::Nothing => {}
    }
    Ok(())
}

/// Let the clients see which replicas are up now.
pub fn publish(cluster: &SimCluster, nodes: &Nodes) {
    let up = (0..cluster.len()).map(|i| cluster.node(i)).collect();
    *nodes.lock().unwrap_or_else(PoisonError::into_inner) = up;
}
