//! The openraft state machine: drives [`Mvcc`] with committed entries and keeps snapshots.
//!
//! Invariants:
//! - One apply call = one RocksDB `WriteBatch` holding every MVCC change plus `last_applied`
//!   and the membership, so the persisted state is always exactly "the log up to
//!   `last_applied`" (etcd's consistent index). The batch is not fsynced: after a machine
//!   crash the state may be older, never torn, and Raft re-applies the rest from its synced
//!   log; a persisted snapshot newer than the state is installed at open.
//! - Readers never see a half-applied batch: apply holds the MVCC write lock from the first
//!   entry until the batch is written. Watch notices go out only after that.
//! - Installing a snapshot replaces the whole state or nothing (see [`super::snapshot`]).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use rocksdb::{checkpoint::Checkpoint, ColumnFamilyDescriptor, Options, WriteBatch, DB};
use serde::{Deserialize, Serialize};

use super::snapshot::{self as snap, current_sm_dir, pack_dir, set_current_sm_dir, unpack_to};
use crate::determinism::{offload, rng};
use crate::error::StoreError;
use crate::mvcc::{Mvcc, CF_META};
use crate::types::{Command, CommandResult, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::watch::{Notice, WatchHub};

const META_APPLIED: &[u8] = b"applied";
const SNAPSHOT_FILE: &str = "snapshot.bin";

/// What the state machine has applied: persisted with every batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedState {
    pub last: Option<LogId>,
    pub membership: StoredMembership,
}

/// State shared by the state machine, its snapshot builder, and the node's read paths.
pub struct SmShared {
    pub mvcc: Arc<RwLock<Mvcc>>,
    pub hub: WatchHub,
    pub applied: RwLock<AppliedState>,
    data_dir: PathBuf,
    seq: AtomicU64,
    /// The `last_log_id` of the persisted snapshot. Builds run concurrently with installs
    /// (openraft builds in a separate task), so saving holds this lock and never replaces a
    /// snapshot with an older one.
    saved: std::sync::Mutex<Option<LogId>>,
}

#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<SmShared>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

fn open_db(dir: &Path) -> Result<Arc<DB>, StoreError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = Mvcc::column_families().map(|cf| ColumnFamilyDescriptor::new(cf, Options::default()));
    DB::open_cf_descriptors(&opts, dir, cfs).map(Arc::new).map_err(StoreError::storage)
}

/// The applied state recorded in the (closed) database at `sm_dir`.
pub(crate) fn read_applied_at(sm_dir: &Path) -> Result<AppliedState, StoreError> {
    read_applied(&*open_db(sm_dir)?)
}

/// The applied state, store revision and live key count of the (closed) database at `sm_dir`
/// (loads the whole key index).
pub(crate) fn describe(sm_dir: &Path) -> Result<(AppliedState, i64, usize), StoreError> {
    let db = open_db(sm_dir)?;
    let applied = read_applied(&db)?;
    let mvcc = Mvcc::open(db)?;
    Ok((applied, mvcc.current_revision(), mvcc.live_key_count()))
}

fn read_applied(db: &DB) -> Result<AppliedState, StoreError> {
    let cf = db.cf_handle(CF_META).ok_or_else(|| StoreError::storage("missing cf meta"))?;
    match db.get_cf(cf, META_APPLIED).map_err(StoreError::storage)? {
        None => Ok(AppliedState::default()),
        Some(v) => bincode::deserialize(&v).map_err(StoreError::storage),
    }
}

/// The number in an `sm-N` directory name.
fn sm_number(dir: &Path) -> u64 {
    dir.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("sm-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl StateMachine {
    /// Open (or create) the state machine under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::storage)?;
        let sm_dir = match current_sm_dir(data_dir)? {
            Some(d) => d,
            None => {
                let d = data_dir.join("sm-1");
                set_current_sm_dir(data_dir, &d)?;
                d
            }
        };
        remove_strays(data_dir, &sm_dir, true)?;
        let db = open_db(&sm_dir)?;
        let applied = read_applied(&db)?;
        let mvcc = Arc::new(RwLock::new(Mvcc::open(db)?));
        let shared = Arc::new(SmShared {
            hub: WatchHub::new(mvcc.clone()),
            mvcc,
            applied: RwLock::new(applied),
            data_dir: data_dir.to_path_buf(),
            seq: AtomicU64::new(sm_number(&sm_dir)),
            saved: std::sync::Mutex::new(load_snapshot(data_dir)?.and_then(|(meta, _)| meta.last_log_id)),
        });
        let sm = Self { shared };
        sm.restore_newer_snapshot()?;
        Ok(sm)
    }

    pub fn shared(&self) -> &Arc<SmShared> {
        &self.shared
    }

    /// After a machine crash the unsynced state may be older than the last persisted
    /// snapshot, whose logs may be purged: install that snapshot.
    fn restore_newer_snapshot(&self) -> Result<(), StoreError> {
        let Some((meta, data)) = load_snapshot(&self.shared.data_dir)? else { return Ok(()) };
        let applied = self.shared.applied.read().expect("lock poisoned").last;
        if meta.last_log_id > applied {
            tracing::warn!(?applied, snapshot = ?meta.last_log_id, "state is behind the last snapshot; restoring it");
            self.replace_state(&data)?;
        }
        Ok(())
    }

    /// Swap in the state contained in a snapshot archive.
    fn replace_state(&self, archive: &[u8]) -> Result<(), StoreError> {
        let n = self.shared.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let new_dir = self.shared.data_dir.join(format!("sm-{n}"));
        if new_dir.exists() {
            std::fs::remove_dir_all(&new_dir).map_err(StoreError::storage)?;
        }
        unpack_to(archive, &new_dir)?;
        let db = open_db(&new_dir)?;
        let applied = read_applied(&db)?;
        let mvcc = Mvcc::open(db)?;
        set_current_sm_dir(&self.shared.data_dir, &new_dir)?;
        let old = {
            let mut guard = self.shared.mvcc.write().expect("lock poisoned");
            *self.shared.applied.write().expect("lock poisoned") = applied;
            std::mem::replace(&mut *guard, mvcc)
        };
        drop(old);
        // Not `tmp/`: a snapshot build may be checkpointing there right now.
        remove_strays(&self.shared.data_dir, &new_dir, false)?;
        self.shared.hub.publish(Notice::Reset);
        Ok(())
    }
}

/// Offline, with no replica running on `data_dir`: make the state machine's persisted state
/// claim `last` and `membership` (its data untouched), and persist a snapshot of exactly that,
/// so a replica that joins later can be sent it. Returns the store revision of the data.
/// Used to restore a backup into a new cluster ([`crate::recovery`]).
pub(crate) fn rebase(data_dir: &Path, last: LogId, membership: StoredMembership) -> Result<i64, StoreError> {
    let sm_dir = current_sm_dir(data_dir)?.ok_or_else(|| StoreError::storage("no state machine to rebase"))?;
    let applied = AppliedState { last: Some(last), membership: membership.clone() };
    let revision = {
        let db = open_db(&sm_dir)?;
        let cf = db.cf_handle(CF_META).ok_or_else(|| StoreError::storage("missing cf meta"))?;
        db.put_cf(cf, META_APPLIED, bincode::serialize(&applied).map_err(StoreError::storage)?)
            .map_err(StoreError::storage)?;
        db.flush().map_err(StoreError::storage)?;
        Mvcc::open(db)?.current_revision()
    };
    // The database is closed: its files are the state to snapshot.
    let archive = pack_dir(&sm_dir)?;
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: membership,
        snapshot_id: format!("rebased-{}", last.index),
    };
    write_snapshot(data_dir, &meta, &archive)?;
    Ok(revision)
}

/// Remove every `sm-*` directory but `keep`, and (`with_tmp`) the scratch directory.
fn remove_strays(data_dir: &Path, keep: &Path, with_tmp: bool) -> Result<(), StoreError> {
    for e in std::fs::read_dir(data_dir).map_err(StoreError::storage)? {
        let path = e.map_err(StoreError::storage)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if (name.starts_with("sm-") && path != keep) || (with_tmp && name == "tmp") {
            std::fs::remove_dir_all(&path).map_err(StoreError::storage)?;
        }
    }
    Ok(())
}

/// The persisted snapshot: `u64 meta length, bincode(meta), archive`.
fn load_snapshot(data_dir: &Path) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
    let Some(raw) = snap::read_optional(&data_dir.join(SNAPSHOT_FILE))? else { return Ok(None) };
    let len = raw.get(..8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")) as usize);
    let len = len.filter(|l| 8 + l <= raw.len()).ok_or_else(|| StoreError::storage("corrupt snapshot file"))?;
    let meta = bincode::deserialize(&raw[8..8 + len]).map_err(StoreError::storage)?;
    Ok(Some((meta, raw[8 + len..].to_vec())))
}

impl SmShared {
    /// Persist a snapshot unless a newer one is already persisted; returns whether it saved.
    fn save_snapshot(&self, meta: &SnapshotMeta, archive: &[u8]) -> Result<bool, StoreError> {
        let mut saved = self.saved.lock().expect("snapshot lock poisoned");
        if saved.is_some() && meta.last_log_id < *saved {
            return Ok(false);
        }
        write_snapshot(&self.data_dir, meta, archive)?;
        *saved = meta.last_log_id;
        Ok(true)
    }
}

fn write_snapshot(data_dir: &Path, meta: &SnapshotMeta, archive: &[u8]) -> Result<(), StoreError> {
    let m = bincode::serialize(meta).map_err(StoreError::storage)?;
    let mut raw = Vec::with_capacity(8 + m.len() + archive.len());
    raw.extend_from_slice(&(m.len() as u64).to_be_bytes());
    raw.extend_from_slice(&m);
    raw.extend_from_slice(archive);
    snap::write_atomic(&data_dir.join(SNAPSHOT_FILE), &raw)
}

impl SmShared {
    /// Checkpoint the live database and pack it; returns the applied state it holds.
    /// Blocking: disk I/O proportional to the state's size.
    pub fn checkpoint(&self) -> Result<(AppliedState, Vec<u8>), StoreError> {
        let n = self.seq.load(Ordering::SeqCst);
        let tmp = self.data_dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(StoreError::storage)?;
        let dir = tmp.join(format!("checkpoint-{n}-{}", rand::Rng::gen::<u32>(&mut rng())));
        let applied = {
            // The read lock keeps apply out, so `applied` matches the checkpoint.
            let mvcc = self.mvcc.read().expect("lock poisoned");
            Checkpoint::new(mvcc.db()).and_then(|c| c.create_checkpoint(&dir)).map_err(StoreError::storage)?;
            self.applied.read().expect("lock poisoned").clone()
        };
        let archive = pack_dir(&dir);
        std::fs::remove_dir_all(&dir).map_err(StoreError::storage)?;
        Ok((applied, archive?))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let shared = self.shared.clone();
        let started = std::time::Instant::now();
        let (applied, archive) = offload(move || shared.checkpoint()).await.map_err(snap_err)?.map_err(snap_err)?;
        let metrics = flotilla_metrics::store();
        metrics.snapshots.inc();
        metrics.snapshot_seconds.observe(started.elapsed().as_secs_f64());
        let snapshot_id = match applied.last {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, rand::Rng::gen::<u32>(&mut rng())),
            None => format!("0-0-{}", rand::Rng::gen::<u32>(&mut rng())),
        };
        let meta = SnapshotMeta { last_log_id: applied.last, last_membership: applied.membership, snapshot_id };
        if self.shared.save_snapshot(&meta, &archive).map_err(snap_err)? {
            tracing::info!(last = ?meta.last_log_id, bytes = archive.len(), "snapshot built");
        } else {
            tracing::info!(last = ?meta.last_log_id, "snapshot built but a newer one was installed meanwhile; not kept");
        }
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(archive)) })
    }
}

/// Apply one command, collecting the watch notice of the revision it made (if any).
#[allow(clippy::result_large_err)] // openraft's storage error type, returned as openraft wants it
fn apply_one(
    mvcc: &mut Mvcc,
    cmd: &Command,
    batch: &mut WriteBatch,
    notices: &mut Vec<Notice>,
) -> Result<CommandResult, StorageError> {
    let (result, events) = mvcc.apply(cmd, batch).map_err(sm_err)?;
    if let Some(revision) = events.first().and_then(|e| e.kv.as_ref()).map(|kv| kv.mod_revision) {
        notices.push(Notice::Events { revision, events });
    }
    Ok(result)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let a = self.shared.applied.read().expect("lock poisoned").clone();
        Ok((a.last, a.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut results = Vec::new();
        let mut notices = Vec::new();
        {
            let mut mvcc = self.shared.mvcc.write().expect("lock poisoned");
            let mut applied = self.shared.applied.read().expect("lock poisoned").clone();
            let mut batch = WriteBatch::default();
            for entry in entries {
                applied.last = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => results.push(CommandResult::None),
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        results.push(CommandResult::None);
                    }
                    EntryPayload::Normal(Command::Batch(cmds)) => {
                        let mut batch_results = Vec::with_capacity(cmds.len());
                        for cmd in &cmds {
                            batch_results.push(apply_one(&mut mvcc, cmd, &mut batch, &mut notices)?);
                        }
                        results.push(CommandResult::Batch(batch_results));
                    }
                    EntryPayload::Normal(cmd) => results.push(apply_one(&mut mvcc, &cmd, &mut batch, &mut notices)?),
                }
            }
            let cf = mvcc.db().cf_handle(CF_META).expect("column families are created at open");
            batch.put_cf(cf, META_APPLIED, bincode::serialize(&applied).map_err(sm_err)?);
            mvcc.db().write(batch).map_err(sm_err)?;
            mvcc.batch_written();
            *self.shared.applied.write().expect("lock poisoned") = applied;
        }
        for n in notices {
            self.shared.hub.publish(n);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let archive = snapshot.into_inner();
        let this = self.clone();
        let a = archive.clone();
        offload(move || this.replace_state(&a)).await.map_err(snap_err)?.map_err(snap_err)?;
        self.shared.save_snapshot(meta, &archive).map_err(snap_err)?;
        tracing::info!(last = ?meta.last_log_id, bytes = archive.len(), "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let loaded = load_snapshot(&self.shared.data_dir).map_err(snap_err)?;
        Ok(loaded.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    use super::*;
    use crate::pb::PbPutRequest;
    use crate::types::Rejection;
    use crate::watch::WatchItem;

    fn put(key: &str, lease: i64) -> Command {
        Command::Put(PbPutRequest { key: key.into(), value: b"v".to_vec(), lease, ..Default::default() })
    }

    /// A crash in the middle of installing a snapshot leaves a half-written `sm-N` directory
    /// that the pointer file does not name: reopening keeps the previous state and removes it.
    #[tokio::test]
    async fn a_half_installed_snapshot_does_not_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let log_id = LogId::new(CommittedLeaderId::new(1, 1), 1);
        sm.apply([Entry::<TypeConfig> { log_id, payload: EntryPayload::Normal(put("kept", 0)) }]).await.unwrap();
        drop(sm);
        let stray = dir.path().join("sm-2");
        std::fs::create_dir(&stray).unwrap();
        std::fs::write(stray.join("CURRENT"), b"garbage from an interrupted unpack").unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        assert!(!stray.exists(), "the stray directory is removed");
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id));
        let req = crate::pb::PbRangeRequest { key: b"kept".to_vec(), ..Default::default() };
        let got = sm.shared().mvcc.read().unwrap().range(&req).unwrap();
        assert_eq!(got.kvs.len(), 1);
    }

    /// A watcher that does not read while more revisions are applied than the hub buffers
    /// lags; it then catches up from history and still sees every revision, in order.
    #[tokio::test]
    async fn a_lagging_watcher_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let range = crate::mvcc::key_range::KeyRange::new(b"k", b"l");
        let mut watcher = sm.shared().hub.watch(range, 0);
        let writes = crate::watch::HUB_CAPACITY as u64 + 500;
        let entry = |i: u64| Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
            payload: EntryPayload::Normal(put(&format!("k{}", i % 7), 0)),
        };
        sm.apply([entry(1)]).await.unwrap();
        assert!(matches!(watcher.next().await, Some(WatchItem::Events { revision: 2, .. })));
        // Nothing more yet: the watcher is now live on the broadcast channel.
        assert!(futures::FutureExt::now_or_never(watcher.next()).is_none());
        for i in 2..=writes {
            sm.apply([entry(i)]).await.unwrap();
        }
        for want in 3..=writes as i64 + 1 {
            match watcher.next().await {
                Some(WatchItem::Events { revision, events }) => {
                    assert_eq!((revision, events.len()), (want, 1), "revisions arrive in order, none skipped")
                }
                other => panic!("expected revision {want}, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_batch_applies_like_consecutive_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let range = crate::mvcc::key_range::KeyRange::new(b"a", b"\0");
        let mut watcher = sm.shared().hub.watch(range, 0);
        let batch = Command::Batch(vec![put("a", 0), put("b", 7), put("c", 0)]);
        let log_id = LogId::new(CommittedLeaderId::new(1, 1), 1);
        let entry = Entry::<TypeConfig> { log_id, payload: EntryPayload::Normal(batch) };
        let results = sm.apply([entry]).await.unwrap();
        let CommandResult::Batch(r) = &results[0] else { panic!("batch result, got {results:?}") };
        assert!(matches!(&r[0], CommandResult::Put(p) if p.header.unwrap().revision == 2));
        assert_eq!(r[1], CommandResult::Rejected(Rejection::LeaseNotFound));
        assert!(matches!(&r[2], CommandResult::Put(p) if p.header.unwrap().revision == 3));
        // Each write is its own revision for watchers too.
        for (want_rev, want_key) in [(2, b"a"), (3, b"c")] {
            let Some(WatchItem::Events { revision, events }) = watcher.next().await else { panic!("events") };
            assert_eq!((revision, events[0].kv.as_ref().unwrap().key.as_slice()), (want_rev, &want_key[..]));
        }
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id));
    }
}
