//! Fault injection: a seeded [`Schedule`] of faults, and [`Nemesis::run`], which injects each
//! one on time against a [`Cluster`], heals it on time, and records both in a [`Timeline`].
//!
//! Kinds (see [`Fault`]): network partitions by nftables inside the node namespaces
//! ([`partition`]), kill -9 + restart and SIGSTOP/SIGCONT of one node, a minority or the
//! leader, a skewed clock (restart under libfaketime), and membership changes (remove, re-add
//! as learner, promote; [`membership`]).
//!
//! Disk faults (losing un-synced writes on kill) are not implemented yet: a kill -9 of the
//! process leaves the page cache intact, so nothing un-synced is lost; losing it needs the
//! data dir on a device the harness can drop writes on (dm-flakey, or a FUSE layer), which
//! is a separate piece of work.
//!
//! Invariants:
//! - one fault at a time, in schedule order; each is healed at its end time, or as soon as
//!   `cancel` fires — every fault injected is healed before `run` returns, and a final sweep
//!   (delete every partition table, resume, restart, real clocks) runs even if a heal failed;
//! - a fault that could not be injected is recorded with its error and skipped, never retried
//!   out of schedule (the timeline must say what really happened);
//! - targets named "the leader" are resolved at injection and the timeline names the node.

mod fault;
pub mod membership;
pub mod partition;
mod schedule;
mod timeline;

use std::future::Future;

use tokio::time::Instant;

pub use fault::{Fault, Kind, Target};
pub use partition::Partition;
pub use schedule::{Schedule, ScheduleOptions, Step};
pub use timeline::{Event, Timeline};

use crate::cluster::{name, Cluster, ProcState};

/// What must be undone to heal the current fault.
#[derive(Debug)]
enum Active {
    Nothing,
    Partition,
    Killed(Vec<usize>),
    Paused(Vec<usize>),
    Clock(usize),
    Removed(usize),
}

/// Runs a schedule against a cluster.
pub struct Nemesis {
    schedule: Schedule,
}

impl Nemesis {
    pub fn new(schedule: Schedule) -> Self {
        Nemesis { schedule }
    }

    /// Inject and heal every step on time (relative to `origin`) until the schedule ends or
    /// `cancel` completes, then heal whatever is left. Errors injecting or healing a fault
    /// are in the timeline; `Err` means the final sweep failed and the cluster may still be
    /// faulty.
    pub async fn run(
        self,
        cluster: &mut Cluster,
        origin: Instant,
        cancel: impl Future<Output = ()>,
    ) -> anyhow::Result<Timeline> {
        tokio::pin!(cancel);
        let mut timeline = Timeline::default();
        for step in &self.schedule.steps {
            if !sleep_until(origin + step.start, &mut cancel).await {
                break;
            }
            let (event, active) = inject(cluster, &step.fault, &mut timeline, origin).await;
            let on_time = sleep_until(origin + step.end, &mut cancel).await;
            if let Err(e) = heal(cluster, active).await {
                tracing::warn!(fault = %step.fault, error = %e, "healing failed");
                timeline.fail(event, &e);
            }
            timeline.end(event, origin.elapsed());
            if !on_time {
                break;
            }
        }
        sweep(cluster).await?;
        Ok(timeline)
    }
}

/// Sleep until `at`; false if `cancel` completed first.
async fn sleep_until(at: Instant, cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(at) => true,
        _ = cancel.as_mut() => false,
    }
}

/// Inject `fault`, recording it; returns the event index and what to undo.
async fn inject(cluster: &mut Cluster, fault: &Fault, timeline: &mut Timeline, origin: Instant) -> (usize, Active) {
    let leader = match fault {
        Fault::Partition(Partition::IsolateLeader) | Fault::Kill(Target::Leader) | Fault::Pause(Target::Leader) => {
            Some(leader_or_first(cluster).await)
        }
        _ => None,
    };
    let nodes = affected(fault, cluster.len(), leader);
    let names = nodes.iter().map(|&i| name(i)).collect();
    let event = timeline.begin(fault.kind(), fault.to_string(), names, origin.elapsed());
    tracing::info!(%fault, ?nodes, "inject");
    let result = match fault {
        Fault::Partition(p) => {
            let cut = partition::grudge(p, cluster.len(), leader.unwrap_or(0));
            partition::apply(cluster, &cut).map(|()| Active::Partition)
        }
        Fault::Kill(_) => nodes.iter().try_for_each(|&i| cluster.kill(i)).map(|()| Active::Killed(nodes.clone())),
        Fault::Pause(_) => nodes.iter().try_for_each(|&i| cluster.pause(i)).map(|()| Active::Paused(nodes.clone())),
        Fault::Clock { node, offset_s } => {
            cluster.set_clock(*node, Some(&format!("{offset_s:+}"))).map(|()| Active::Clock(*node))
        }
        Fault::Member(i) => membership::remove(cluster, *i).await.map(|()| Active::Removed(*i)),
    };
    match result {
        Ok(active) => (event, active),
        Err(e) => {
            tracing::warn!(%fault, error = %e, "injecting failed");
            timeline.fail(event, &e);
            // Undo whatever part did happen (a partial partition, some nodes killed).
            (event, partial(fault, nodes))
        }
    }
}

/// What to undo after a failed injection: everything it may have touched.
fn partial(fault: &Fault, nodes: Vec<usize>) -> Active {
    match fault {
        Fault::Partition(_) => Active::Partition,
        Fault::Kill(_) => Active::Killed(nodes),
        Fault::Pause(_) => Active::Paused(nodes),
        Fault::Clock { node, .. } => Active::Clock(*node),
        Fault::Member(_) => Active::Nothing,
    }
}

/// The nodes a fault acts on, with the leader resolved.
fn affected(fault: &Fault, n: usize, leader: Option<usize>) -> Vec<usize> {
    let target = |t: &Target| match t {
        Target::One(i) => vec![*i],
        Target::Minority(v) => v.clone(),
        Target::Leader => vec![leader.expect("resolved for leader targets")],
    };
    match fault {
        Fault::Partition(p) => {
            let cut = partition::grudge(p, n, leader.unwrap_or(0));
            (0..n).filter(|&i| !cut[i].is_empty()).collect()
        }
        Fault::Kill(t) | Fault::Pause(t) => target(t),
        Fault::Clock { node, .. } | Fault::Member(node) => vec![*node],
    }
}

/// The leader, or node 0 when none can be found (e.g. mid-election): the fault then still
/// happens, and the timeline names the node it hit.
async fn leader_or_first(cluster: &Cluster) -> usize {
    cluster.leader().await.unwrap_or(0)
}

async fn heal(cluster: &mut Cluster, active: Active) -> anyhow::Result<()> {
    tracing::info!(?active, "heal");
    match active {
        Active::Nothing => Ok(()),
        Active::Partition => partition::heal(cluster),
        Active::Killed(nodes) => nodes.iter().try_for_each(|&i| cluster.restart(i)),
        Active::Paused(nodes) => nodes.iter().try_for_each(|&i| resume_if_paused(cluster, i)),
        Active::Clock(i) => cluster.set_clock(i, None),
        Active::Removed(i) => membership::re_add(cluster, i).await,
    }
}

fn resume_if_paused(cluster: &mut Cluster, i: usize) -> anyhow::Result<()> {
    match cluster.node(i).state {
        ProcState::Paused => cluster.resume(i),
        _ => Ok(()),
    }
}

/// Leave the cluster fault-free whatever happened: no partition table, nobody paused or
/// stopped, real clocks. Tries everything; returns the first error.
async fn sweep(cluster: &mut Cluster) -> anyhow::Result<()> {
    let mut first = partition::heal(cluster).err();
    for i in 0..cluster.len() {
        let r = match cluster.node(i).state {
            ProcState::Paused => cluster.resume(i),
            ProcState::Stopped => cluster.restart(i),
            ProcState::Running => Ok(()),
        };
        let r = r.and_then(|()| if cluster.clock_skewed(i) { cluster.set_clock(i, None) } else { Ok(()) });
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}
