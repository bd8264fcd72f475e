//! Programming the node from snapshots: the rules, the conntrack entries they leave stale,
//! and the tables of agents that died.
//!
//! Invariants:
//! - This agent is recorded as its table's owner before it first touches the table, so a
//!   sweep elsewhere never mistakes a live table for an orphan (see [`proxy::owners`]).
//! - Rules change only when the rendered table changes, atomically: the first apply of a
//!   process replaces the whole table, later ones only what differs from the script in
//!   place. A failed apply is retried (with back-off) as a full one, until one succeeds or
//!   a newer snapshot replaces it.
//! - Conntrack cleanup follows a successful apply only (before it, the old rules still
//!   send new flows to the old endpoints) and compares with the last applied snapshot;
//!   the first apply of a process compares with an empty one, which clears every UDP
//!   Service flow once, so flows pinned while the agent was down are re-balanced.
//! - Orphaned tables are swept at start and every [`SWEEP_INTERVAL`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch as latest;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::model::Snapshot;
use super::proxy::owners::{Owners, Process};
use super::proxy::{self, conntrack, ProxyOptions};

/// First and longest pause between failed applies.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// How often the tables of dead agents are looked for.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// What is in place.
#[derive(Default)]
struct Applied {
    script: Option<String>,
    snapshot: Arc<Snapshot>,
    /// There is no `conntrack` tool; said so once.
    no_conntrack: bool,
}

/// Apply each new snapshot's rules until `cancel` fires.
pub async fn program(
    mut snapshots: latest::Receiver<Arc<Snapshot>>,
    opts: ProxyOptions,
    owners: Owners,
    cancel: CancellationToken,
) {
    match Process::me() {
        Ok(me) => {
            if let Err(e) = owners.claim(&opts.table, me) {
                tracing::warn!(table = opts.table, error = %e, "cannot record this agent as its table's owner");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot tell this process's start time"),
    }
    let mut applied = Applied::default();
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sweep.tick() => {
                sweep_orphans(&owners, &opts.table).await;
                continue;
            }
            changed = snapshots.changed() => if changed.is_err() { return },
        }
        let mut delay = RETRY_MIN;
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            match apply(&snapshot, &opts, &mut applied).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(table = opts.table, error = %e, "cannot apply the service rules; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// Program `snapshot` unless its rules are in place, then clear the conntrack entries the
/// change left stale.
async fn apply(snapshot: &Arc<Snapshot>, opts: &ProxyOptions, applied: &mut Applied) -> Result<(), String> {
    let script = proxy::render(snapshot, opts);
    if applied.script.as_deref() != Some(script.as_str()) {
        let started = Instant::now();
        // After a failure the table is not known exactly: the next apply is a full one.
        let result = match applied.script.take() {
            Some(old) => proxy::apply_change(&old, &script).await,
            None => proxy::apply(&script).await.map(|()| false),
        };
        let incremental = result.map_err(|e| e.to_string())?;
        let (services, took) = (snapshot.services.len(), started.elapsed());
        tracing::debug!(services, incremental, ?took, "service rules applied");
        applied.script = Some(script);
    }
    let flushes = conntrack::stale(&applied.snapshot, snapshot);
    applied.snapshot = snapshot.clone();
    if flushes.is_empty() || applied.no_conntrack {
        return Ok(());
    }
    if let Err(e) = conntrack::delete(&flushes).await {
        tracing::warn!(error = %e, "cannot delete stale UDP conntrack entries; such flows recover when they idle out");
        applied.no_conntrack = e.kind() == std::io::ErrorKind::NotFound;
    }
    Ok(())
}

async fn sweep_orphans(owners: &Owners, own: &str) {
    match owners.sweep(own).await {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(tables = ?removed, "removed the service tables of agents that are gone");
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "cannot sweep the service tables of dead agents"),
    }
}
