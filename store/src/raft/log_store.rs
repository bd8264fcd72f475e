//! The Raft log and vote, on a RocksDB instance of their own: kept apart from the state
//! machine's database so that a checkpoint of that one is exactly a snapshot.
//!
//! CF `log`: big-endian `u64` index (byte order = index order) → bincode [`Entry`].
//! CF `meta`: `vote`, `committed`, `last_purged`.
//!
//! Invariants:
//! - **Durable before acknowledged.** `append` writes its entries in one synced batch and only
//!   then calls `log_io_completed`; `save_vote`, `truncate` and `purge` sync before returning.
//!   A node must never grant a vote or acknowledge entries that a crash could take back.
//! - **Serialized I/O.** Each call is RocksDB writes issued in call order on one WAL, so a
//!   vote write is never overtaken by a log write, nor the reverse.
//! - **Purge ordering.** `purge` syncs `last_purged` before deleting entries, so after a crash
//!   at any point the log still knows where it starts (`get_log_state` falls back to it).
//! - **No holes.** `truncate` removes a suffix, `purge` a prefix, and `append` refuses a batch
//!   whose indexes are not consecutive. Every entry read back must sit under its own index.
//!
//! `committed` is written without its own fsync: it only saves re-apply work after a restart,
//! and the shared WAL makes it durable with the next synced write anyway.

// openraft's traits fix the error type; the private helpers return it as is.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, DefensiveError, ErrorSubject, ErrorVerb, OptionalSend, StorageIOError};
use openraft::{Violation, Vote};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options};
use rocksdb::{WriteBatch, WriteOptions, DB};
use serde::{de::DeserializeOwned, Serialize};

use crate::determinism::offload;
use crate::error::StoreError;
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};

const CF_LOG: &str = "log";
const CF_META: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// The Raft log store. Cheap to clone; every clone is the same database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl LogStore {
    /// Open (or create) the log database in `dir`.
    pub fn open(dir: &Path) -> Result<LogStore, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [CF_LOG, CF_META].map(|cf| ColumnFamilyDescriptor::new(cf, Options::default()));
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(StoreError::storage)?;
        Ok(LogStore { db: Arc::new(db) })
    }

    /// Writes `fill`'s batch with a synced WAL write. The fsync is [`offload`]ed so it does not
    /// stall an async worker (on two cores, half the runtime).
    async fn write_synced<F>(&self, subject: Subject, verb: ErrorVerb, fill: F) -> Result<()>
    where
        F: FnOnce(&DB, &mut WriteBatch) + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let written = offload(move || {
            let mut batch = WriteBatch::default();
            fill(&db, &mut batch);
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.write_opt(batch, &opts)
        });
        let written = written.await.map_err(|e| io(subject.clone(), verb, &e))?;
        written.map_err(|e| io(subject, verb, &e))
    }

    async fn put_meta_synced<T: Serialize>(&self, key: &'static [u8], value: &T, subject: Subject) -> Result<()> {
        let bytes = encode(value, subject.clone())?;
        self.write_synced(subject, ErrorVerb::Write, move |db, batch| batch.put_cf(cf(db, CF_META), key, bytes)).await
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8], subject: Subject) -> Result<Option<T>> {
        let read = |e: AnyError| io(subject.clone(), ErrorVerb::Read, e);
        match self.db.get_pinned_cf(cf(&self.db, CF_META), key) {
            Err(e) => Err(read(AnyError::new(&e))),
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => bincode::deserialize(&bytes).map(Some).map_err(|e| read(AnyError::new(&e))),
        }
    }
}

type Result<T, E = StorageError> = std::result::Result<T, E>;
type Subject = ErrorSubject<NodeId>;
type RawItem = Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>;

fn io(subject: Subject, verb: ErrorVerb, e: impl Into<AnyError>) -> StorageError {
    StorageIOError::new(subject, verb, e).into()
}

/// Both column families are created by [`LogStore::open`].
fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name).expect("column family is created by LogStore::open")
}

fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn encode<T: Serialize>(value: &T, subject: Subject) -> Result<Vec<u8>> {
    bincode::serialize(value).map_err(|e| io(subject, ErrorVerb::Write, &e))
}

/// Decodes one stored entry and checks that it sits under its own index.
fn decode_entry(item: RawItem) -> Result<Entry> {
    let (key, value) = item.map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
    let key: [u8; 8] = (*key).try_into().map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
    let index = u64::from_be_bytes(key);
    let entry: Entry = bincode::deserialize(&value).map_err(|e| StorageIOError::read_log_at_index(index, &e))?;
    if entry.log_id.index != index {
        let msg = format!("entry {} stored under index {index}", entry.log_id);
        return Err(StorageIOError::read_log_at_index(index, AnyError::error(msg)).into());
    }
    Ok(entry)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) if i < u64::MAX => i + 1,
            Bound::Excluded(_) => return Ok(Vec::new()),
            Bound::Unbounded => 0,
        };
        let start = log_key(start);
        let mut entries = Vec::new();
        let mode = IteratorMode::From(&start, Direction::Forward);
        for item in self.db.iterator_cf(cf(&self.db, CF_LOG), mode) {
            let entry = decode_entry(item)?;
            // Indexes ascend from the range's start, so the first one outside it ends the range.
            if !range.contains(&entry.log_id.index) {
                break;
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.read_meta(KEY_LAST_PURGED, ErrorSubject::Logs)?;
        let mut newest_first = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End);
        let last_log_id = match newest_first.next() {
            Some(item) => Some(decode_entry(item)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        self.put_meta_synced(KEY_VOTE, vote, ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.read_meta(KEY_VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<()> {
        // Unsynced on purpose (module doc): an fsync per commit would double the hot path's.
        let bytes = encode(&committed, ErrorSubject::Store)?;
        let meta = cf(&self.db, CF_META);
        self.db.put_cf(meta, KEY_COMMITTED, bytes).map_err(|e| io(ErrorSubject::Store, ErrorVerb::Write, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>> {
        let committed: Option<Option<LogId>> = self.read_meta(KEY_COMMITTED, ErrorSubject::Store)?;
        Ok(committed.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        let mut prev: Option<LogId> = None;
        for entry in entries {
            let next = entry.log_id;
            if prev.is_some_and(|p| p.index + 1 != next.index) {
                let violation = Violation::LogsNonConsecutive { prev, next };
                return Err(DefensiveError::new(ErrorSubject::Logs, violation).into());
            }
            encoded.push((log_key(next.index), encode(&entry, ErrorSubject::Log(next))?));
            prev = Some(next);
        }
        self.write_synced(ErrorSubject::Logs, ErrorVerb::Write, move |db, batch| {
            for (key, value) in encoded {
                batch.put_cf(cf(db, CF_LOG), key, value);
            }
        })
        .await?;
        // The batch is in the synced WAL: only now may Raft count these entries as stored.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, since: LogId) -> Result<()> {
        tracing::debug!(%since, "truncating raft log");
        // delete_range's end is exclusive, so u64::MAX itself goes separately.
        self.write_synced(ErrorSubject::Logs, ErrorVerb::Delete, move |db, batch| {
            batch.delete_range_cf(cf(db, CF_LOG), log_key(since.index), log_key(u64::MAX));
            batch.delete_cf(cf(db, CF_LOG), log_key(u64::MAX));
        })
        .await
    }

    async fn purge(&mut self, upto: LogId) -> Result<()> {
        tracing::debug!(%upto, "purging raft log");
        // A crash between these two writes leaves extra entries at or below `last_purged`,
        // never a log that has lost track of where it starts.
        self.put_meta_synced(KEY_LAST_PURGED, &upto, ErrorSubject::Logs).await?;
        self.write_synced(ErrorSubject::Logs, ErrorVerb::Delete, move |db, batch| {
            batch.delete_range_cf(cf(db, CF_LOG), log_key(0), log_key(upto.index));
            batch.delete_cf(cf(db, CF_LOG), log_key(upto.index));
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::types::Command;

    fn id(term: u64, index: u64) -> Option<LogId> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    /// The payload differs per index, so a mixed-up read cannot pass.
    fn entry(term: u64, index: u64) -> Entry {
        let payload = EntryPayload::Normal(Command::Compact { revision: index as i64 });
        Entry { log_id: id(term, index).expect("some"), payload }
    }

    async fn append(store: &mut LogStore, entries: Vec<Entry>) {
        store.blocking_append(entries).await.expect("append");
    }

    async fn opened_with(dir: &Path, range: std::ops::RangeInclusive<u64>) -> LogStore {
        let mut store = LogStore::open(dir).expect("open");
        append(&mut store, range.map(|i| entry(1, i)).collect()).await;
        store
    }

    async fn read(store: &mut LogStore, range: impl RangeBounds<u64> + Clone + Debug + Send) -> Vec<u64> {
        let entries = store.try_get_log_entries(range).await.expect("read");
        entries.iter().map(|e| e.log_id.index).collect()
    }

    /// `(last_purged_log_id, last_log_id)`.
    async fn state(store: &mut LogStore) -> (Option<LogId>, Option<LogId>) {
        let s = store.get_log_state().await.expect("log state");
        (s.last_purged_log_id, s.last_log_id)
    }

    #[tokio::test]
    async fn append_vote_and_committed_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = opened_with(dir.path(), 1..=5).await;
        let want: Vec<Entry> = (1..=5).map(|i| entry(1, i)).collect();
        assert_eq!(store.try_get_log_entries(..).await.expect("read"), want);
        assert_eq!(store.read_vote().await.expect("vote"), None);
        assert_eq!(store.read_committed().await.expect("committed"), None);
        let vote = Vote::new_committed(7, 3);
        store.save_vote(&vote).await.expect("save vote");
        store.save_committed(id(1, 4)).await.expect("save committed");
        drop(store);

        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(store.try_get_log_entries(..).await.expect("read"), want);
        assert_eq!(state(&mut store).await, (None, id(1, 5)));
        assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
        assert_eq!(store.read_committed().await.expect("committed"), id(1, 4));
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = opened_with(dir.path(), 1..=10).await;
        store.truncate(id(1, 8).expect("some")).await.expect("truncate");
        store.purge(id(1, 3).expect("some")).await.expect("purge");
        drop(store);

        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(read(&mut store, ..).await, vec![4, 5, 6, 7]);
        assert_eq!(state(&mut store).await, (id(1, 3), id(1, 7)));
        append(&mut store, vec![entry(2, 8)]).await;
        assert_eq!(state(&mut store).await, (id(1, 3), id(2, 8)));
    }

    #[tokio::test]
    async fn purging_everything_reports_last_purged_as_last_log_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = opened_with(dir.path(), 1..=3).await;
        store.purge(id(1, 3).expect("some")).await.expect("purge");
        assert_eq!(read(&mut store, ..).await, Vec::<u64>::new());
        assert_eq!(state(&mut store).await, (id(1, 3), id(1, 3)));
        drop(store);

        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(state(&mut store).await, (id(1, 3), id(1, 3)));
        append(&mut store, vec![entry(1, 4)]).await;
        assert_eq!(state(&mut store).await, (id(1, 3), id(1, 4)));
    }

    #[tokio::test]
    async fn range_reads_return_exactly_the_requested_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = opened_with(dir.path(), 1..=10).await;
        assert_eq!(read(&mut s, 3..7).await, vec![3, 4, 5, 6]);
        assert_eq!(read(&mut s, 3..=7).await, vec![3, 4, 5, 6, 7]);
        assert_eq!(read(&mut s, ..3).await, vec![1, 2]);
        assert_eq!(read(&mut s, 8..).await, vec![8, 9, 10]);
        assert_eq!(read(&mut s, (Bound::Excluded(2), Bound::Included(4))).await, vec![3, 4]);
        assert_eq!(read(&mut s, 5..5).await, Vec::<u64>::new());
        assert_eq!(read(&mut s, 11..20).await, Vec::<u64>::new());
        assert_eq!(read(&mut s, (Bound::Excluded(u64::MAX), Bound::Unbounded)).await, Vec::<u64>::new());
        let mut reader = s.get_log_reader().await;
        let got = reader.limited_get_log_entries(9, 11).await.expect("read");
        assert_eq!(got, vec![entry(1, 9), entry(1, 10)]);
    }

    #[tokio::test]
    async fn corrupt_misplaced_or_gapped_entries_are_errors_not_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = opened_with(dir.path(), 1..=2).await;
        let db = Arc::clone(&store.db);
        db.put_cf(cf(&db, CF_LOG), log_key(3), b"not bincode").expect("put");
        assert!(store.try_get_log_entries(3..4).await.is_err());
        let misplaced = bincode::serialize(&entry(1, 9)).expect("encode");
        db.put_cf(cf(&db, CF_LOG), log_key(3), misplaced).expect("put");
        assert!(store.try_get_log_entries(3..4).await.is_err());
        assert!(store.get_log_state().await.is_err());
        let gapped = store.blocking_append([entry(1, 4), entry(1, 6)]).await;
        assert!(gapped.is_err());
    }
}
