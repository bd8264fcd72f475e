//! The MVCC key space with etcd's rules, persisted in the state machine's RocksDB.
//!
//! Data flow: the state machine hands each committed [`Command`] to [`Mvcc::apply`] together
//! with the RocksDB `WriteBatch` of the current apply call; `apply` updates the in-memory
//! index at once and stages the on-disk records in the batch. After the batch is written the
//! state machine calls [`Mvcc::batch_written`]; the returned events then go to the watch hub.
//!
//! Invariants (checked by the proptest model in `tests/mvcc_model.rs`):
//! - The store revision grows by exactly one per request that changed at least one key; a
//!   read, a DeleteRange that matched nothing, a read-only Txn, a lease grant, an empty revoke
//!   and a compaction do not bump it.
//! - All changes of one request share `main`; `sub` counts them from 0 in execution order.
//! - Apply is a pure function of the command sequence: no clock, no randomness, no I/O that
//!   can give different answers on different replicas.
//! - A refused request (unknown lease, compacted revision...) changes nothing.
//! - The `kv` column family holds exactly the records the index refers to; compaction
//!   removes both together.
//! - While a NOSPACE alarm is raised, commands that add data are refused ([`alarm`]).

pub mod alarm;
pub mod key_index;
pub mod key_range;
mod range;
pub mod revision;
pub mod txn;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rocksdb::{IteratorMode, WriteBatch, DB};

use crate::error::StoreError;
use crate::pb::{PbEvent, PbKeyValue, PbResponseHeader};
use crate::types::{Command, CommandResult, Rejection};

use key_index::{KeyHistory, Version};
use key_range::KeyRange;
use revision::{Record, Revision};

/// Column family of history records: `Revision::to_key()` -> bincode(`Record`).
pub const CF_KV: &str = "kv";
/// Column family of leases: be(id) -> be(ttl).
pub const CF_LEASE: &str = "lease";
/// Column family of metadata (revisions here; the state machine adds its own keys).
pub const CF_META: &str = "meta";
const META_CURRENT_REV: &[u8] = b"current_rev";
const META_COMPACT_REV: &[u8] = b"compact_rev";

/// etcd's event types.
pub const EVENT_PUT: i32 = 0;
pub const EVENT_DELETE: i32 = 1;

/// A lease as the state machine knows it: its TTL and the keys attached to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseEntry {
    pub ttl: i64,
    pub keys: BTreeSet<Vec<u8>>,
}

/// The MVCC store. Readers share it behind a lock; apply holds the write side per batch.
pub struct Mvcc {
    db: Arc<DB>,
    index: BTreeMap<Vec<u8>, KeyHistory>,
    current_rev: i64,
    compact_rev: i64,
    leases: BTreeMap<i64, LeaseEntry>,
    /// Values staged in the current, not yet written, batch.
    pending: HashMap<Revision, Vec<u8>>,
    alarms: alarm::Alarms,
}

fn read_i64(db: &DB, cf: &str, key: &[u8]) -> Result<Option<i64>, StoreError> {
    let cf = db.cf_handle(cf).ok_or_else(|| StoreError::storage(format!("missing cf {cf}")))?;
    match db.get_cf(cf, key).map_err(StoreError::storage)? {
        None => Ok(None),
        Some(v) => {
            let bytes: [u8; 8] = v.as_slice().try_into().map_err(|_| StoreError::storage("bad i64 in meta"))?;
            Ok(Some(i64::from_be_bytes(bytes)))
        }
    }
}

impl Mvcc {
    /// Load the store from `db` (which must have the three column families), rebuilding the
    /// in-memory index and lease attachments from the records.
    pub fn open(db: Arc<DB>) -> Result<Self, StoreError> {
        let current_rev = read_i64(&db, CF_META, META_CURRENT_REV)?.unwrap_or(1);
        let compact_rev = read_i64(&db, CF_META, META_COMPACT_REV)?.unwrap_or(0);
        let mut index: BTreeMap<Vec<u8>, KeyHistory> = BTreeMap::new();
        let kv = db.cf_handle(CF_KV).ok_or_else(|| StoreError::storage("missing cf kv"))?;
        for item in db.iterator_cf(kv, IteratorMode::Start) {
            let (k, v) = item.map_err(StoreError::storage)?;
            let rev = Revision::from_key(&k).ok_or_else(|| StoreError::storage("bad kv key"))?;
            let rec: Record = bincode::deserialize(&v).map_err(StoreError::storage)?;
            index.entry(rec.key.clone()).or_default().push(Version {
                rev,
                create_revision: rec.create_revision,
                version: rec.version,
                lease: rec.lease,
                tombstone: rec.tombstone,
            });
        }
        let mut leases = BTreeMap::new();
        let cf = db.cf_handle(CF_LEASE).ok_or_else(|| StoreError::storage("missing cf lease"))?;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(StoreError::storage)?;
            let id = i64::from_be_bytes(k.as_ref().try_into().map_err(|_| StoreError::storage("bad lease key"))?);
            let ttl = i64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::storage("bad lease ttl"))?);
            leases.insert(id, LeaseEntry { ttl, keys: BTreeSet::new() });
        }
        for (key, h) in &index {
            if let Some(v) = h.latest().filter(|v| v.lease != 0) {
                if let Some(l) = leases.get_mut(&v.lease) {
                    l.keys.insert(key.clone());
                }
            }
        }
        let alarms = alarm::Alarms::load(&db, CF_META)?;
        Ok(Self { db, index, current_rev, compact_rev, leases, pending: HashMap::new(), alarms })
    }

    /// The column families this store needs in its database.
    pub fn column_families() -> [&'static str; 3] {
        [CF_KV, CF_LEASE, CF_META]
    }

    pub fn current_revision(&self) -> i64 {
        self.current_rev
    }

    pub fn compact_revision(&self) -> i64 {
        self.compact_rev
    }

    /// How many keys exist at the current revision.
    pub fn live_key_count(&self) -> usize {
        self.index.values().filter(|h| h.latest().is_some_and(|v| !v.tombstone)).count()
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// The raised alarms, as of the last applied command.
    pub fn alarms(&self) -> &alarm::Alarms {
        &self.alarms
    }

    /// A response header carrying the current revision (the API layer adds the rest).
    pub fn header(&self) -> Option<PbResponseHeader> {
        Some(PbResponseHeader { revision: self.current_rev, ..Default::default() })
    }

    /// Apply one command, staging its records in `batch`. Returns the result and the events
    /// (all of one revision) for watchers.
    ///
    /// An `Err` is a storage failure: the state machine must stop, as the index may be ahead
    /// of the disk. A deterministic refusal is `Ok(CommandResult::Rejected)`.
    pub fn apply(
        &mut self,
        cmd: &Command,
        batch: &mut WriteBatch,
    ) -> Result<(CommandResult, Vec<PbEvent>), StoreError> {
        let mut w = write::Changes::new(self.current_rev + 1);
        let result = match self.apply_inner(cmd, &mut w, batch) {
            Ok(r) => r,
            Err(e @ (StoreError::Rejected(_) | StoreError::InvalidArgument(_))) => {
                assert!(w.events.is_empty(), "a refused command must change nothing");
                let rejection = match e {
                    StoreError::Rejected(r) => r,
                    other => Rejection::Invalid(other.to_string()),
                };
                return Ok((CommandResult::Rejected(rejection), Vec::new()));
            }
            Err(e) => return Err(e),
        };
        if !w.events.is_empty() {
            self.current_rev = w.main;
            batch.put_cf(self.cf(CF_META), META_CURRENT_REV, self.current_rev.to_be_bytes());
        }
        Ok((self.with_header(result), w.events))
    }

    fn apply_inner(
        &mut self,
        cmd: &Command,
        w: &mut write::Changes,
        batch: &mut WriteBatch,
    ) -> Result<CommandResult, StoreError> {
        if self.alarms.no_space() && alarm::adds_data(cmd) {
            return Err(Rejection::NoSpace.into());
        }
        Ok(match cmd {
            Command::Put(req) => {
                self.check_put(req)?;
                CommandResult::Put(self.put(w, req, batch)?)
            }
            Command::DeleteRange(req) => CommandResult::DeleteRange(self.delete_range(w, req, batch)?),
            Command::Txn(req) => CommandResult::Txn(self.txn(w, req, batch)?),
            Command::Compact { revision } => {
                self.compact(*revision, batch)?;
                CommandResult::Compact { revision: self.current_rev }
            }
            Command::LeaseGrant { id, ttl } => {
                if self.leases.contains_key(id) || *id <= 0 {
                    return Err(Rejection::LeaseExists.into());
                }
                self.leases.insert(*id, LeaseEntry { ttl: *ttl, keys: BTreeSet::new() });
                batch.put_cf(self.cf(CF_LEASE), id.to_be_bytes(), ttl.to_be_bytes());
                CommandResult::LeaseGrant { id: *id, ttl: *ttl, revision: 0 }
            }
            Command::Batch(_) => {
                // The state machine unpacks batches; one reaching here is malformed (nested).
                return Err(StoreError::InvalidArgument("nested command batch".into()));
            }
            Command::Alarm { activate, member, alarm } => {
                let meta = self.db.cf_handle(CF_META).expect("column families are created at open");
                CommandResult::Alarm(self.alarms.apply(*activate, *member, *alarm, batch, meta)?)
            }
            Command::LeaseRevoke { id } => {
                let lease = self.leases.remove(id).ok_or(Rejection::LeaseNotFound)?;
                for key in &lease.keys {
                    self.delete_key(w, key, false, batch)?;
                }
                batch.delete_cf(self.cf(CF_LEASE), id.to_be_bytes());
                CommandResult::LeaseRevoke { revision: 0 }
            }
        })
    }

    /// Fill in the revision of results that carry one, once the request's changes are counted.
    fn with_header(&self, result: CommandResult) -> CommandResult {
        let rev = self.current_rev;
        match result {
            CommandResult::Put(mut r) => {
                r.header = self.header();
                CommandResult::Put(r)
            }
            CommandResult::DeleteRange(mut r) => {
                r.header = self.header();
                CommandResult::DeleteRange(r)
            }
            CommandResult::Txn(mut r) => {
                r.header = self.header();
                CommandResult::Txn(r)
            }
            CommandResult::LeaseGrant { id, ttl, .. } => CommandResult::LeaseGrant { id, ttl, revision: rev },
            CommandResult::LeaseRevoke { .. } => CommandResult::LeaseRevoke { revision: rev },
            other => other,
        }
    }

    /// The batch of the current apply call is durable in RocksDB: drop the staged values.
    pub fn batch_written(&mut self) {
        self.pending.clear();
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column families are created at open")
    }

    /// The value stored at `rev` (staged or on disk).
    fn value_at(&self, rev: Revision) -> Result<Vec<u8>, StoreError> {
        if let Some(v) = self.pending.get(&rev) {
            return Ok(v.clone());
        }
        let raw = self
            .db
            .get_cf(self.cf(CF_KV), rev.to_key())
            .map_err(StoreError::storage)?
            .ok_or_else(|| StoreError::storage(format!("record {rev:?} missing")))?;
        let rec: Record = bincode::deserialize(&raw).map_err(StoreError::storage)?;
        Ok(rec.value)
    }

    /// The full key-value of a version; the value is read only when `with_value`.
    fn key_value(&self, key: &[u8], v: &Version, with_value: bool) -> Result<PbKeyValue, StoreError> {
        let value = if with_value { self.value_at(v.rev)? } else { Vec::new() };
        Ok(PbKeyValue {
            key: key.to_vec(),
            create_revision: v.create_revision,
            mod_revision: v.rev.main,
            version: v.version,
            value,
            lease: v.lease,
        })
    }

    /// The live latest version of a key.
    fn latest(&self, key: &[u8]) -> Option<&Version> {
        self.index.get(key).and_then(KeyHistory::latest)
    }

    /// Leases and the keys attached to them.
    pub fn leases(&self) -> &BTreeMap<i64, LeaseEntry> {
        &self.leases
    }

    /// Keys in `range` that are live at the latest revision.
    fn live_keys(&self, range: &KeyRange) -> Vec<Vec<u8>> {
        let Some(bounds) = range.bounds() else { return Vec::new() };
        self.index.range::<[u8], _>(bounds).filter(|(_, h)| h.latest().is_some()).map(|(k, _)| k.clone()).collect()
    }

    /// Compact history at `rev`.
    fn compact(&mut self, rev: i64, batch: &mut WriteBatch) -> Result<(), Rejection> {
        if rev <= self.compact_rev {
            return Err(Rejection::Compacted { compact_revision: self.compact_rev });
        }
        if rev > self.current_rev {
            return Err(Rejection::FutureRevision);
        }
        let kv = self.db.cf_handle(CF_KV).expect("column families are created at open");
        let mut emptied = Vec::new();
        for (key, h) in self.index.iter_mut() {
            for r in h.compact(rev) {
                batch.delete_cf(kv, r.to_key());
            }
            if h.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.index.remove(&key);
        }
        self.compact_rev = rev;
        batch.put_cf(self.cf(CF_META), META_COMPACT_REV, rev.to_be_bytes());
        Ok(())
    }

    /// Refuse reads below the compaction point or above the current revision.
    fn check_read_revision(&self, rev: i64) -> Result<i64, Rejection> {
        if rev <= 0 {
            return Ok(self.current_rev);
        }
        if rev > self.current_rev {
            return Err(Rejection::FutureRevision);
        }
        if rev < self.compact_rev {
            return Err(Rejection::Compacted { compact_revision: self.compact_rev });
        }
        Ok(rev)
    }

    /// History from `from` (inclusive) on, grouped per revision, at most `max_revisions`
    /// revisions. Used by watchers that start in the past or fell behind. Fails with
    /// `Rejected(Compacted)` below the compaction point, or with a storage error.
    pub fn events_since(&self, from: i64, max_revisions: usize) -> Result<Vec<(i64, Vec<PbEvent>)>, StoreError> {
        if from < self.compact_rev {
            return Err(Rejection::Compacted { compact_revision: self.compact_rev }.into());
        }
        let mut out: Vec<(i64, Vec<PbEvent>)> = Vec::new();
        let start = Revision::new(from.max(0), 0).to_key();
        let iter = self.db.iterator_cf(self.cf(CF_KV), IteratorMode::From(&start, rocksdb::Direction::Forward));
        for item in iter {
            // A history that cannot be read must not look like an exhausted one: a watcher
            // would then skip the unreadable events.
            let (k, v) = item.map_err(StoreError::storage)?;
            let rev = Revision::from_key(&k).ok_or_else(|| StoreError::storage("bad kv key"))?;
            let rec: Record = bincode::deserialize(&v).map_err(StoreError::storage)?;
            if rev.main > self.current_rev {
                break;
            }
            if out.last().map(|(r, _)| *r) != Some(rev.main) {
                if out.len() == max_revisions {
                    break;
                }
                out.push((rev.main, Vec::new()));
            }
            let ev = self.event_of(rev, rec);
            out.last_mut().expect("pushed above").1.push(ev);
        }
        Ok(out)
    }

    /// The watch event a stored record stands for, with the version it replaced as prev_kv.
    fn event_of(&self, rev: Revision, rec: Record) -> PbEvent {
        let prev_kv =
            self.index.get(&rec.key).and_then(|h| h.before(rev)).and_then(|v| self.key_value(&rec.key, v, true).ok());
        if rec.tombstone {
            PbEvent {
                r#type: EVENT_DELETE,
                kv: Some(PbKeyValue { key: rec.key, mod_revision: rev.main, ..Default::default() }),
                prev_kv,
            }
        } else {
            PbEvent {
                r#type: EVENT_PUT,
                kv: Some(PbKeyValue {
                    key: rec.key,
                    create_revision: rec.create_revision,
                    mod_revision: rev.main,
                    version: rec.version,
                    value: rec.value,
                    lease: rec.lease,
                }),
                prev_kv,
            }
        }
    }
}
