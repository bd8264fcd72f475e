//! The store size guard (etcd's `--quota-backend-bytes`), alarms and defragmentation.
//!
//! Data flow: a write that [adds data](crate::mvcc::alarm::adds_data) first checks this
//! replica's database size against the quota. Past it, the replica raises its NOSPACE alarm
//! through Raft (once; a [`Command::Alarm`]) and refuses the write with `NoSpace`, as etcd's
//! `quotaKVServer`. From the alarm's log index on, every replica's apply refuses such writes
//! too ([`crate::mvcc::alarm`]), whatever its own size, until an operator disarms it: the way
//! out is to delete and compact, defragment every member, then `etcdctl alarm disarm`.
//!
//! Invariants:
//! - The size is etcd's backend size: the bytes of the live state-machine database's files
//!   (SSTs, write-ahead log, manifest), not RocksDB's info logs, the Raft log or snapshots.
//!   Deleting or compacting does not shrink it; [`StoreNode::defragment`] does.
//! - The size a write is checked against is at most [`SIZE_REFRESH`] old (a directory walk
//!   per write would cost more than the write), so concurrent writes may overshoot the quota
//!   by what they add in that time, as etcd's may by what is in flight.
//! - Alarm changes and the refusal of writes are replicated state; the size check is this
//!   replica's own, as each etcd member checks its own backend.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rocksdb::{BottommostLevelCompaction, CompactOptions};
use tokio::time::Instant;

use super::StoreNode;
use crate::determinism::offload;
use crate::error::StoreError;
use crate::mvcc::alarm::{adds_data, ALARM_NOSPACE};
use crate::mvcc::Mvcc;
use crate::types::{Command, CommandResult, NodeId, Rejection};

/// How old a sampled database size may be when a write is checked against the quota.
pub const SIZE_REFRESH: Duration = Duration::from_millis(100);

/// The last sampled size of this replica's state-machine database.
#[derive(Default)]
pub(super) struct SizeSampler {
    last: Mutex<Option<(Instant, u64)>>,
}

impl SizeSampler {
    /// The size of the database in `dir`, sampled at most [`SIZE_REFRESH`] ago.
    fn size(&self, dir: &Path) -> u64 {
        let mut last = self.last.lock().expect("size sampler lock poisoned");
        match *last {
            Some((at, size)) if at.elapsed() < SIZE_REFRESH => size,
            _ => {
                let size = db_size(dir);
                *last = Some((Instant::now(), size));
                size
            }
        }
    }

    /// Sample now (after a defragmentation changed the size).
    fn refresh(&self, dir: &Path) -> u64 {
        let size = db_size(dir);
        *self.last.lock().expect("size sampler lock poisoned") = Some((Instant::now(), size));
        size
    }
}

/// The bytes of a RocksDB database's files, without its info logs (`LOG`, `LOG.old.*`).
pub fn db_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with("LOG"))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

impl StoreNode {
    /// The live state-machine database's directory (it changes when a snapshot is installed).
    fn sm_dir(&self) -> PathBuf {
        self.sm.mvcc.read().expect("lock poisoned").db().path().to_path_buf()
    }

    /// This replica's state-machine database size in bytes (what `endpoint status` reports as
    /// dbSize and the quota is checked against).
    pub fn db_size(&self) -> u64 {
        self.size.size(&self.sm_dir())
    }

    /// Refuse `cmd` (of `cost` bytes) if it adds data and would take this replica past its
    /// quota, raising this replica's NOSPACE alarm first.
    pub(super) async fn check_quota(&self, cmd: &Command, cost: usize) -> Result<(), StoreError> {
        let Some(quota) = self.cfg.quota_bytes() else { return Ok(()) };
        if !adds_data(cmd) {
            return Ok(());
        }
        let size = self.db_size();
        if size.saturating_add(cost as u64) <= quota {
            return Ok(());
        }
        if !self.sm.mvcc.read().expect("lock poisoned").alarms().is_raised(self.id, ALARM_NOSPACE) {
            tracing::warn!(size, quota, "database size exceeds --quota-backend-bytes; raising the NOSPACE alarm");
            // Boxed: `write` is what called us.
            if let Err(e) = Box::pin(self.alarm_change(true, self.id, ALARM_NOSPACE)).await {
                tracing::warn!(error = %e, "raising the NOSPACE alarm failed; the next write retries");
            }
        }
        Err(Rejection::NoSpace.into())
    }

    /// Raise (`activate`) or clear an alarm of `member` through Raft; returns what changed.
    pub async fn alarm_change(
        &self,
        activate: bool,
        member: NodeId,
        alarm: i32,
    ) -> Result<Vec<(NodeId, i32)>, StoreError> {
        match self.write(Command::Alarm { activate, member, alarm }).await? {
            CommandResult::Alarm(changed) => {
                if !changed.is_empty() {
                    let alarm = crate::mvcc::alarm::alarm_name(alarm);
                    tracing::info!(activate, member = format_args!("{member:x}"), alarm, "alarm changed");
                }
                Ok(changed)
            }
            other => Err(super::unexpected(other)),
        }
    }

    /// The raised alarms of type `alarm` (all for `ALARM_NONE`), read linearizably.
    pub async fn alarm_list(&self, alarm: i32) -> Result<Vec<(NodeId, i32)>, StoreError> {
        self.read_barrier().await?;
        Ok(self.local_alarms(alarm))
    }

    /// The raised alarms as this replica has applied them (serializable).
    pub fn local_alarms(&self, alarm: i32) -> Vec<(NodeId, i32)> {
        self.sm.mvcc.read().expect("lock poisoned").alarms().list(alarm)
    }

    /// Reclaim the space of deleted and compacted records in this replica's database (etcd's
    /// Defragment): flush every column family and compact its whole range, rewriting the
    /// bottommost level too. Returns the database size afterwards.
    pub async fn defragment(&self) -> Result<u64, StoreError> {
        let db = self.sm.mvcc.read().expect("lock poisoned").db().clone();
        let dir = db.path().to_path_buf();
        let before = db_size(&dir);
        let started = std::time::Instant::now();
        offload(move || {
            let mut opts = CompactOptions::default();
            opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
            for name in Mvcc::column_families() {
                let cf = db.cf_handle(name).ok_or_else(|| StoreError::storage(format!("missing cf {name}")))?;
                db.flush_cf(cf).map_err(StoreError::storage)?;
                db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &opts);
            }
            Ok::<_, StoreError>(())
        })
        .await??;
        let after = self.size.refresh(&dir);
        tracing::info!(before, after, ms = started.elapsed().as_millis() as u64, "database defragmented");
        Ok(after)
    }
}
