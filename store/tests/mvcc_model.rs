//! Model-based tests of the MVCC state machine.
//!
//! Every command is applied both to the real [`Mvcc`] (over RocksDB, exactly as the Raft state
//! machine drives it: apply into a batch, write the batch, `batch_written`, publish the events)
//! and to [`Model`], a deliberately naive rendering of etcd's rules (section 3 of the store
//! reference). The model keeps every change of every key forever; compaction only moves the
//! line below which it refuses reads. Everything observable must agree:
//!
//! 1. Results: every command's `CommandResult` (headers, prev_kv, deleted counts, `succeeded`,
//!    range responses inside Txns, rejections) and the events `apply` returns.
//! 2. Reads: after each step, a random Range (random span, revision, limit, sort, keys_only,
//!    count_only, min/max mod/create filters) plus the whole key space at the latest revision;
//!    at the end, the whole key space at every revision from the compaction point on.
//! 3. History: `events_since(from, n)` for every `from` (see [`Model::history_from`] for what
//!    compaction leaves behind) and random `n`.
//! 4. Reopen: after the run the store is closed (RocksDB really shut), reopened from disk, and
//!    must show the same state; a few more commands then run against it.
//! 5. Watch: watchers from revision 1 (created before the first command), from a random
//!    revision mid-run and at the end, drained after every step, yield exactly the model's
//!    events for their range; a start below the compaction point yields `Compacted`.
//!
//! Where etcd leaves a choice open the model pins the store's choice: ties in a sorted Range
//! come out in key order (DESCEND is the exact reverse), and inner Txn response headers are not
//! compared (section 3.5: only the top-level header is authoritative).
//!
//! Known store bugs (see the `#[ignore]`d `bug_*` tests at the end) would fail the property
//! test; while [`KNOWN_BUGS_FIXED`] is false, generated commands that hit them are skipped
//! (not applied to either side) and range requests are steered around them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use flotilla_store::mvcc::key_range::KeyRange;
use flotilla_store::mvcc::{LeaseEntry, Mvcc, EVENT_DELETE, EVENT_PUT};
use flotilla_store::pb::{
    PbCompare, PbDeleteRequest, PbDeleteResponse, PbEvent, PbKeyValue, PbPutRequest, PbPutResponse,
    PbRangeRequest, PbRangeResponse, PbResponseHeader, PbResponseOp, PbTargetUnion, PbTxnOpRequest,
    PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use flotilla_store::types::Rejection;
use flotilla_store::watch::{Notice, WatchHub, WatchItem, Watcher};
use flotilla_store::{Command, CommandResult, StoreError};
use futures::FutureExt;
use proptest::prelude::*;
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, DB};

/// Flip to true once the `bug_*` tests pass: the generator then stops avoiding them.
const KNOWN_BUGS_FIXED: bool = true;

/// Small alphabet with prefix relations ("b" covers "ba", "bb"); all ASCII, so a prefix's
/// range end is its last byte plus one.
const KEYS: [&[u8]; 6] = [b"a", b"b", b"ba", b"bb", b"c", b"d"];
/// Includes the empty value, which a VALUE compare must tell apart from a missing key.
const VALUES: [&[u8]; 4] = [b"", b"x", b"y", b"z"];
/// Lease IDs in play; puts name ungranted ones too.
const LEASE_IDS: std::ops::RangeInclusive<i64> = 1..=3;

// etcd enum values (RangeRequest.SortOrder/SortTarget, Compare.CompareResult/CompareTarget).
const SORT_NONE: i32 = 0;
const SORT_ASCEND: i32 = 1;
const SORT_DESCEND: i32 = 2;
const BY_KEY: i32 = 0;
const BY_VERSION: i32 = 1;
const BY_CREATE: i32 = 2;
const BY_MOD: i32 = 3;
const BY_VALUE: i32 = 4;
const EQUAL: i32 = 0;
const GREATER: i32 = 1;
const LESS: i32 = 2;
const NOT_EQUAL: i32 = 3;
const ON_VERSION: i32 = 0;
const ON_CREATE: i32 = 1;
const ON_MOD: i32 = 2;
const ON_VALUE: i32 = 3;
const ON_LEASE: i32 = 4;

// ---------------------------------------------------------------------------------------------
// The store under test, wired as the state machine wires it.

struct Store {
    mvcc: Arc<RwLock<Mvcc>>,
    hub: WatchHub,
}

impl Store {
    fn open(dir: &Path) -> Self {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = Mvcc::column_families().map(|cf| ColumnFamilyDescriptor::new(cf, Options::default()));
        let db = DB::open_cf_descriptors(&opts, dir, cfs).expect("open rocksdb");
        let mvcc = Arc::new(RwLock::new(Mvcc::open(Arc::new(db)).expect("open mvcc")));
        Self { hub: WatchHub::new(mvcc.clone()), mvcc }
    }

    /// Drop every handle so RocksDB really closes (a reopen would fail on its lock otherwise).
    fn close(self) {
        drop(self.hub);
        let mvcc = Arc::try_unwrap(self.mvcc).ok().expect("no watcher outlives the store");
        drop(mvcc);
    }

    fn apply(&self, cmd: &Command) -> (CommandResult, Vec<PbEvent>) {
        let (result, events) = {
            let mut mvcc = self.mvcc.write().expect("lock");
            let mut batch = WriteBatch::default();
            let out = mvcc.apply(cmd, &mut batch).expect("apply fails only on storage errors");
            mvcc.db().write(batch).expect("write batch");
            mvcc.batch_written();
            out
        };
        if let Some(revision) = events.first().and_then(|e| e.kv.as_ref()).map(|kv| kv.mod_revision) {
            self.hub.publish(Notice::Events { revision, events: events.clone() });
        }
        (result, events)
    }

    fn read<T>(&self, f: impl FnOnce(&Mvcc) -> T) -> T {
        f(&self.mvcc.read().expect("lock"))
    }
}

// ---------------------------------------------------------------------------------------------
// The model.

/// One change of one key.
#[derive(Clone, Debug)]
struct Change {
    rev: i64,
    create: i64,
    version: i64,
    value: Vec<u8>,
    lease: i64,
    tombstone: bool,
}

/// The writes of the request being applied: all at revision `main`.
struct Writes {
    main: i64,
    events: Vec<PbEvent>,
}

/// Which branch each Txn on the executed path takes, decided before anything runs.
struct Plan {
    succeeded: bool,
    /// One plan per nested Txn of the taken branch, in order.
    nested: Vec<Plan>,
}

#[derive(Clone, Debug)]
struct Model {
    keys: BTreeMap<Vec<u8>, Vec<Change>>,
    rev: i64,
    compact: i64,
    leases: BTreeMap<i64, LeaseEntry>,
    /// Events of every revision, as apply emits them.
    events: Vec<(i64, Vec<PbEvent>)>,
}

fn in_range(key: &[u8], end: &[u8], k: &[u8]) -> bool {
    match end {
        [] => k == key,
        [0] => k >= key,
        _ => k >= key && k < end,
    }
}

fn header(revision: i64) -> Option<PbResponseHeader> {
    Some(PbResponseHeader { revision, ..Default::default() })
}

fn branch(req: &PbTxnRequest, succeeded: bool) -> &[PbTxnRequestOp] {
    if succeeded {
        &req.success
    } else {
        &req.failure
    }
}

fn op_request(op: &PbTxnRequestOp) -> &PbTxnOpRequest {
    op.request.as_ref().expect("generated ops always carry a request")
}

impl Model {
    fn new() -> Self {
        Self { keys: BTreeMap::new(), rev: 1, compact: 0, leases: BTreeMap::new(), events: Vec::new() }
    }

    fn kv_at(&self, key: &[u8], at: i64) -> Option<PbKeyValue> {
        let c = self.keys.get(key)?.iter().rev().find(|c| c.rev <= at)?;
        (!c.tombstone).then(|| PbKeyValue {
            key: key.to_vec(),
            create_revision: c.create,
            mod_revision: c.rev,
            version: c.version,
            value: c.value.clone(),
            lease: c.lease,
        })
    }

    /// Latest state, including writes of the request in progress.
    fn live(&self, key: &[u8]) -> Option<PbKeyValue> {
        self.kv_at(key, i64::MAX)
    }

    fn kvs_at(&self, key: &[u8], end: &[u8], at: i64) -> Vec<PbKeyValue> {
        self.keys.keys().filter(|k| in_range(key, end, k)).filter_map(|k| self.kv_at(k, at)).collect()
    }

    fn apply(&mut self, cmd: &Command) -> (CommandResult, Vec<PbEvent>) {
        let mut w = Writes { main: self.rev + 1, events: Vec::new() };
        let result = match cmd {
            Command::Put(req) => self.check_put(req).map(|()| CommandResult::Put(self.put(&mut w, req))),
            Command::DeleteRange(req) => Ok(CommandResult::DeleteRange(self.delete_range(&mut w, req))),
            Command::Txn(req) => self.txn(&mut w, req).map(CommandResult::Txn),
            Command::Compact { revision } => self.compaction(*revision),
            Command::LeaseGrant { id, ttl } => {
                if *id <= 0 || self.leases.contains_key(id) {
                    Err(Rejection::LeaseExists)
                } else {
                    self.leases.insert(*id, LeaseEntry { ttl: *ttl, keys: BTreeSet::new() });
                    Ok(CommandResult::LeaseGrant { id: *id, ttl: *ttl, revision: 0 })
                }
            }
            Command::LeaseRevoke { id } => match self.leases.remove(id) {
                None => Err(Rejection::LeaseNotFound),
                Some(lease) => {
                    for key in &lease.keys {
                        let prev = self.live(key).expect("attached keys are live");
                        self.delete_key(&mut w, &prev);
                    }
                    Ok(CommandResult::LeaseRevoke { revision: 0 })
                }
            },
        };
        let result = match result {
            Err(rejection) => {
                assert!(w.events.is_empty(), "the model checks before it writes");
                return (CommandResult::Rejected(rejection), Vec::new());
            }
            Ok(r) => r,
        };
        if !w.events.is_empty() {
            self.rev = w.main;
            self.events.push((w.main, w.events.clone()));
        }
        let result = match result {
            CommandResult::Put(r) => CommandResult::Put(PbPutResponse { header: header(self.rev), ..r }),
            CommandResult::DeleteRange(r) => {
                CommandResult::DeleteRange(PbDeleteResponse { header: header(self.rev), ..r })
            }
            CommandResult::Txn(r) => CommandResult::Txn(PbTxnResponse { header: header(self.rev), ..r }),
            CommandResult::LeaseGrant { id, ttl, .. } => {
                CommandResult::LeaseGrant { id, ttl, revision: self.rev }
            }
            CommandResult::LeaseRevoke { .. } => CommandResult::LeaseRevoke { revision: self.rev },
            other => other,
        };
        (result, w.events)
    }

    fn compaction(&mut self, revision: i64) -> Result<CommandResult, Rejection> {
        if revision <= self.compact {
            return Err(Rejection::Compacted { compact_revision: self.compact });
        }
        if revision > self.rev {
            return Err(Rejection::FutureRevision);
        }
        self.compact = revision;
        Ok(CommandResult::Compact { revision: self.rev })
    }

    /// etcd's top-level Put order: unknown lease first, then ignore_* on a missing key.
    fn check_put(&self, req: &PbPutRequest) -> Result<(), Rejection> {
        if req.lease != 0 && !self.leases.contains_key(&req.lease) {
            return Err(Rejection::LeaseNotFound);
        }
        if (req.ignore_value || req.ignore_lease) && self.live(&req.key).is_none() {
            return Err(Rejection::KeyNotFound);
        }
        Ok(())
    }

    fn put(&mut self, w: &mut Writes, req: &PbPutRequest) -> PbPutResponse {
        let prev = self.live(&req.key);
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let (create, version) = prev.as_ref().map_or((w.main, 1), |p| (p.create_revision, p.version + 1));
        let change = Change { rev: w.main, create, version, value, lease, tombstone: false };
        self.keys.entry(req.key.clone()).or_default().push(change);
        self.move_lease(&req.key, prev.as_ref().map_or(0, |p| p.lease), lease);
        let kv = self.live(&req.key);
        w.events.push(PbEvent { r#type: EVENT_PUT, kv, prev_kv: prev.clone() });
        PbPutResponse { header: None, prev_kv: prev.filter(|_| req.prev_kv) }
    }

    fn delete_range(&mut self, w: &mut Writes, req: &PbDeleteRequest) -> PbDeleteResponse {
        let doomed = self.kvs_at(&req.key, &req.range_end, i64::MAX);
        for kv in &doomed {
            self.delete_key(w, kv);
        }
        let deleted = doomed.len() as i64;
        PbDeleteResponse { header: None, deleted, prev_kvs: if req.prev_kv { doomed } else { Vec::new() } }
    }

    fn delete_key(&mut self, w: &mut Writes, prev: &PbKeyValue) {
        let tombstone =
            Change { rev: w.main, create: 0, version: 0, value: Vec::new(), lease: 0, tombstone: true };
        self.keys.get_mut(&prev.key).expect("deleting a live key").push(tombstone);
        self.move_lease(&prev.key, prev.lease, 0);
        let kv = PbKeyValue { key: prev.key.clone(), mod_revision: w.main, ..Default::default() };
        w.events.push(PbEvent { r#type: EVENT_DELETE, kv: Some(kv), prev_kv: Some(prev.clone()) });
    }

    fn move_lease(&mut self, key: &[u8], from: i64, to: i64) {
        if let Some(l) = self.leases.get_mut(&from) {
            l.keys.remove(key);
        }
        if let Some(l) = self.leases.get_mut(&to) {
            l.keys.insert(key.to_vec());
        }
    }

    /// etcd (`server/etcdserver/txn/txn.go`): refuse duplicate writes, then evaluate every
    /// compare on the taken path against the state before the Txn, then check every op on that
    /// path against that same state, and only then run the ops, each seeing earlier writes.
    fn txn(&mut self, w: &mut Writes, req: &PbTxnRequest) -> Result<PbTxnResponse, Rejection> {
        if writes_a_key_twice(req) {
            return Err(Rejection::DuplicateKey);
        }
        let plan = self.plan(req);
        self.check_txn(req, &plan)?;
        Ok(self.run_txn(w, req, &plan))
    }

    fn plan(&self, req: &PbTxnRequest) -> Plan {
        let succeeded = req.compare.iter().all(|c| self.compare_holds(c));
        let nested = branch(req, succeeded)
            .iter()
            .filter_map(|op| match op_request(op) {
                PbTxnOpRequest::RequestTxn(t) => Some(self.plan(t)),
                _ => None,
            })
            .collect();
        Plan { succeeded, nested }
    }

    fn check_txn(&self, req: &PbTxnRequest, plan: &Plan) -> Result<(), Rejection> {
        let mut nested = plan.nested.iter();
        for op in branch(req, plan.succeeded) {
            match op_request(op) {
                PbTxnOpRequest::RequestPut(p) => self.check_put(p)?,
                PbTxnOpRequest::RequestRange(r) => {
                    self.read_revision(r.revision)?;
                }
                PbTxnOpRequest::RequestDeleteRange(_) => {}
                PbTxnOpRequest::RequestTxn(t) => self.check_txn(t, nested.next().expect("planned"))?,
            }
        }
        Ok(())
    }

    fn run_txn(&mut self, w: &mut Writes, req: &PbTxnRequest, plan: &Plan) -> PbTxnResponse {
        let mut nested = plan.nested.iter();
        let mut responses = Vec::new();
        for op in branch(req, plan.succeeded) {
            let response = match op_request(op) {
                // Revision 0 reads the latest state, this Txn's writes included.
                PbTxnOpRequest::RequestRange(r) => {
                    let at = if r.revision > 0 { r.revision } else { i64::MAX };
                    PbTxnOpResponse::ResponseRange(self.range_at(r, at))
                }
                PbTxnOpRequest::RequestPut(p) => PbTxnOpResponse::ResponsePut(self.put(w, p)),
                PbTxnOpRequest::RequestDeleteRange(d) => {
                    PbTxnOpResponse::ResponseDeleteRange(self.delete_range(w, d))
                }
                PbTxnOpRequest::RequestTxn(t) => {
                    PbTxnOpResponse::ResponseTxn(self.run_txn(w, t, nested.next().expect("planned")))
                }
            };
            responses.push(PbResponseOp { response: Some(response) });
        }
        PbTxnResponse { header: None, succeeded: plan.succeeded, responses }
    }

    /// Every live key in the range must satisfy the compare; an empty range compares as one
    /// all-zero key, except that a VALUE compare on it is false.
    fn compare_holds(&self, c: &PbCompare) -> bool {
        let kvs = self.kvs_at(&c.key, &c.range_end, self.rev);
        if kvs.is_empty() {
            return c.target != ON_VALUE && compare_one(c, &PbKeyValue::default());
        }
        kvs.iter().all(|kv| compare_one(c, kv))
    }

    fn read_revision(&self, revision: i64) -> Result<i64, Rejection> {
        if revision <= 0 {
            Ok(self.rev)
        } else if revision > self.rev {
            Err(Rejection::FutureRevision)
        } else if revision < self.compact {
            Err(Rejection::Compacted { compact_revision: self.compact })
        } else {
            Ok(revision)
        }
    }

    fn range(&self, req: &PbRangeRequest) -> Result<PbRangeResponse, Rejection> {
        let at = self.read_revision(req.revision)?;
        Ok(PbRangeResponse { header: header(self.rev), ..self.range_at(req, at) })
    }

    /// Count everything in range; then filter, sort, cut at the limit, drop values.
    fn range_at(&self, req: &PbRangeRequest, at: i64) -> PbRangeResponse {
        let mut kvs = self.kvs_at(&req.key, &req.range_end, at);
        let count = kvs.len() as i64;
        if req.count_only {
            return PbRangeResponse { count, ..Default::default() };
        }
        let within = |min: i64, max: i64, x: i64| (min == 0 || x >= min) && (max == 0 || x <= max);
        kvs.retain(|kv| {
            within(req.min_mod_revision, req.max_mod_revision, kv.mod_revision)
                && within(req.min_create_revision, req.max_create_revision, kv.create_revision)
        });
        // etcd: no order with a target other than KEY means ascending.
        let order =
            if req.sort_order == SORT_NONE && req.sort_target != BY_KEY { SORT_ASCEND } else { req.sort_order };
        if order != SORT_NONE {
            kvs.sort_by(|a, b| match req.sort_target {
                BY_VERSION => a.version.cmp(&b.version),
                BY_CREATE => a.create_revision.cmp(&b.create_revision),
                BY_MOD => a.mod_revision.cmp(&b.mod_revision),
                BY_VALUE => a.value.cmp(&b.value),
                _ => a.key.cmp(&b.key),
            });
            if order == SORT_DESCEND {
                kvs.reverse();
            }
        }
        let more = req.limit > 0 && kvs.len() as i64 > req.limit;
        if more {
            kvs.truncate(req.limit as usize);
        }
        if req.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        PbRangeResponse { header: None, kvs, more, count }
    }

    /// What history holds from `from` on once compacted at `compact` (`from >= compact`).
    /// Revisions above the compaction point are intact, prev_kv included: a change's previous
    /// version is the newest one before it, which compaction keeps unless it is a tombstone
    /// (whose prev_kv is empty anyway). At the compaction point itself only puts survive (a
    /// tombstone at the point is dropped with its generation), and their prev_kv is gone (the
    /// older version was dropped).
    fn history_from(&self, from: i64, compact: i64) -> Vec<(i64, Vec<PbEvent>)> {
        assert!(from >= compact, "history below the compaction point is refused");
        self.events
            .iter()
            .filter(|(rev, _)| *rev >= from)
            .filter_map(|(rev, events)| {
                if *rev > compact {
                    return Some((*rev, events.clone()));
                }
                let kept: Vec<PbEvent> = events
                    .iter()
                    .filter(|e| e.r#type == EVENT_PUT)
                    .map(|e| PbEvent { prev_kv: None, ..e.clone() })
                    .collect();
                (!kept.is_empty()).then_some((*rev, kept))
            })
            .collect()
    }
}

fn compare_one(c: &PbCompare, kv: &PbKeyValue) -> bool {
    let ord = match (c.target, c.target_union.as_ref()) {
        (ON_VERSION, Some(PbTargetUnion::Version(x))) => kv.version.cmp(x),
        (ON_CREATE, Some(PbTargetUnion::CreateRevision(x))) => kv.create_revision.cmp(x),
        (ON_MOD, Some(PbTargetUnion::ModRevision(x))) => kv.mod_revision.cmp(x),
        (ON_VALUE, Some(PbTargetUnion::Value(x))) => kv.value.cmp(x),
        (ON_LEASE, Some(PbTargetUnion::Lease(x))) => kv.lease.cmp(x),
        other => unreachable!("the generator pairs targets with operands: {other:?}"),
    };
    match c.result {
        EQUAL => ord.is_eq(),
        GREATER => ord.is_gt(),
        LESS => ord.is_lt(),
        NOT_EQUAL => ord.is_ne(),
        other => unreachable!("unknown compare result {other}"),
    }
}

/// Keys put and ranges deleted along one execution path of a branch.
type PathWrites = (Vec<Vec<u8>>, Vec<(Vec<u8>, Vec<u8>)>);

/// Every execution path through `ops`: a nested Txn runs either its success or its failure ops.
fn write_paths(ops: &[PbTxnRequestOp]) -> Vec<PathWrites> {
    let mut paths: Vec<PathWrites> = vec![(Vec::new(), Vec::new())];
    for op in ops {
        match op_request(op) {
            PbTxnOpRequest::RequestPut(p) => paths.iter_mut().for_each(|(puts, _)| puts.push(p.key.clone())),
            PbTxnOpRequest::RequestDeleteRange(d) => {
                paths.iter_mut().for_each(|(_, dels)| dels.push((d.key.clone(), d.range_end.clone())))
            }
            PbTxnOpRequest::RequestRange(_) => {}
            PbTxnOpRequest::RequestTxn(t) => {
                let alternatives: Vec<PathWrites> =
                    write_paths(&t.success).into_iter().chain(write_paths(&t.failure)).collect();
                let then = |(p, d): &PathWrites, (p2, d2): &PathWrites| ([&p[..], p2].concat(), [&d[..], d2].concat());
                paths = paths.iter().flat_map(|path| alternatives.iter().map(|alt| then(path, alt))).collect();
            }
        }
    }
    paths
}

fn has_duplicate((puts, dels): &PathWrites) -> bool {
    let distinct: BTreeSet<&Vec<u8>> = puts.iter().collect();
    distinct.len() < puts.len() || puts.iter().any(|k| dels.iter().any(|(key, end)| in_range(key, end, k)))
}

/// "duplicate key given in txn request": some execution path of a branch puts a key twice, or
/// puts a key that it also deletes. Exclusive branches of a nested Txn may write the same key
/// (etcd's `checkIntervals`: "either then/else are mutually exclusive"). etcd also lets a put in
/// one nested Txn pass a later sibling's delete of that key, an ordering accident the model
/// (and the store) do not copy.
fn writes_a_key_twice(req: &PbTxnRequest) -> bool {
    [&req.success, &req.failure].into_iter().any(|ops| write_paths(ops).iter().any(has_duplicate))
}

// ---------------------------------------------------------------------------------------------
// Known store bugs: shapes to steer around while KNOWN_BUGS_FIXED is false.

fn hits_known_bug(cmd: &Command) -> bool {
    let Command::Txn(req) = cmd else { return false };
    flattened_duplicate(req) && !writes_a_key_twice(req) || reads_after_write(req)
}

/// The store's duplicate check flattens both branches of nested Txns together (`bug_c_*`).
fn flattened_duplicate(req: &PbTxnRequest) -> bool {
    fn flatten(ops: &[PbTxnRequestOp], out: &mut PathWrites) {
        for op in ops {
            match op_request(op) {
                PbTxnOpRequest::RequestPut(p) => out.0.push(p.key.clone()),
                PbTxnOpRequest::RequestDeleteRange(d) => out.1.push((d.key.clone(), d.range_end.clone())),
                PbTxnOpRequest::RequestRange(_) => {}
                PbTxnOpRequest::RequestTxn(t) => {
                    flatten(&t.success, out);
                    flatten(&t.failure, out);
                }
            }
        }
    }
    [&req.success, &req.failure].into_iter().any(|ops| {
        let mut all = (Vec::new(), Vec::new());
        flatten(ops, &mut all);
        has_duplicate(&all)
    })
}

/// A latest-revision Range (`bug_a_*`) or a nested Txn (`bug_b_*`) after a write of the same
/// Txn, in textual order (a safe over-approximation of execution order).
fn reads_after_write(req: &PbTxnRequest) -> bool {
    fn walk(ops: &[PbTxnRequestOp], wrote: &mut bool) -> bool {
        for op in ops {
            match op_request(op) {
                PbTxnOpRequest::RequestPut(_) | PbTxnOpRequest::RequestDeleteRange(_) => *wrote = true,
                PbTxnOpRequest::RequestRange(r) if *wrote && r.revision <= 0 => return true,
                PbTxnOpRequest::RequestRange(_) => {}
                PbTxnOpRequest::RequestTxn(_) if *wrote => return true,
                PbTxnOpRequest::RequestTxn(t) => {
                    if walk(&t.success, wrote) || walk(&t.failure, wrote) {
                        return true;
                    }
                }
            }
        }
        false
    }
    walk(&req.success, &mut false) || walk(&req.failure, &mut false)
}

// ---------------------------------------------------------------------------------------------
// Generated operations: abstract specs, made concrete against the model's state when they run
// so that revisions land near the interesting ones.

#[derive(Clone, Copy, Debug)]
enum Span {
    Key(usize),
    Prefix(usize),
    Between(usize, usize),
    From(usize),
    All,
}

impl Span {
    fn bounds(self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Span::Key(i) => (KEYS[i].to_vec(), Vec::new()),
            Span::Prefix(i) => {
                let mut end = KEYS[i].to_vec();
                *end.last_mut().expect("keys are not empty") += 1;
                (KEYS[i].to_vec(), end)
            }
            Span::Between(i, j) => (KEYS[i].to_vec(), KEYS[j].to_vec()),
            Span::From(i) => (KEYS[i].to_vec(), vec![0]),
            Span::All => (vec![0], vec![0]),
        }
    }

    fn key_range(self) -> KeyRange {
        let (key, end) = self.bounds();
        KeyRange::new(&key, &end)
    }
}

/// A revision choice: `.0` picks the kind (latest, historical, invalid...), `.1` the number.
#[derive(Clone, Copy, Debug)]
struct Pick(u8, u16);

#[derive(Clone, Debug)]
struct ReadSpec {
    span: Span,
    rev: Pick,
    limit: i64,
    sort_order: i32,
    sort_target: i32,
    keys_only: bool,
    count_only: bool,
    /// min_mod, max_mod, min_create, max_create.
    filters: [Option<u16>; 4],
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ignore {
    No,
    Value,
    Lease,
}

#[derive(Clone, Debug)]
struct PutSpec {
    key: usize,
    value: usize,
    lease: i64,
    prev_kv: bool,
    ignore: Ignore,
}

#[derive(Clone, Debug)]
struct DelSpec {
    span: Span,
    prev_kv: bool,
}

#[derive(Clone, Debug)]
struct CmpSpec {
    span: Span,
    target: i32,
    result: i32,
    operand: u16,
}

#[derive(Clone, Debug)]
struct TxnSpec {
    compare: Vec<CmpSpec>,
    success: Vec<OpSpec>,
    failure: Vec<OpSpec>,
}

#[derive(Clone, Debug)]
enum OpSpec {
    Range(ReadSpec),
    Put(PutSpec),
    Delete(DelSpec),
    Txn(Box<TxnSpec>),
}

#[derive(Clone, Debug)]
enum Step {
    Put(PutSpec),
    Delete(DelSpec),
    Txn(TxnSpec),
    Compact(Pick),
    Grant { id: i64, ttl: i64 },
    Revoke { id: i64 },
}

impl Model {
    fn command(&self, step: &Step) -> Command {
        match step {
            Step::Put(p) => Command::Put(self.put_request(p)),
            Step::Delete(d) => Command::DeleteRange(delete_request(d)),
            Step::Txn(t) => Command::Txn(self.txn_request(t)),
            Step::Compact(p) => Command::Compact { revision: self.compact_pick(*p) },
            Step::Grant { id, ttl } => Command::LeaseGrant { id: *id, ttl: *ttl },
            Step::Revoke { id } => Command::LeaseRevoke { id: *id },
        }
    }

    /// Mostly latest or historical at/after the compaction point; sometimes compacted or future.
    fn read_pick(&self, p: Pick) -> i64 {
        let lo = self.compact.max(1);
        let n = i64::from(p.1);
        match p.0 % 10 {
            0..=3 => 0,
            4..=8 => lo + n % (self.rev - lo + 1),
            _ if self.compact > 1 && n % 2 == 0 => 1 + n % (self.compact - 1),
            _ => self.rev + 1,
        }
    }

    /// Mostly valid; sometimes at/below the compaction point, or in the future.
    fn compact_pick(&self, p: Pick) -> i64 {
        let n = i64::from(p.1);
        match p.0 % 8 {
            0 => self.compact - n % (self.compact + 1),
            1 => self.rev + 1 + n % 3,
            2 => self.rev,
            _ if self.rev > self.compact => self.compact + 1 + n % (self.rev - self.compact),
            _ => self.rev,
        }
    }

    /// A watch start: 0 (future only), below the compaction point, at it, after it, or
    /// beyond the current revision.
    fn watch_pick(&self, p: Pick) -> i64 {
        let lo = self.compact.max(1);
        let n = i64::from(p.1);
        match p.0 % 7 {
            0 => 0,
            1 if self.compact > 1 => 1 + n % (self.compact - 1),
            2 => lo,
            3 => self.rev + 1 + n % 3,
            _ => lo + n % (self.rev - lo + 2),
        }
    }

    fn range_request(&self, s: &ReadSpec) -> PbRangeRequest {
        let (key, range_end) = s.span.bounds();
        let filter = |f: Option<u16>| f.map_or(0, |n| 1 + i64::from(n) % (self.rev + 1));
        let mut sort_order = s.sort_order;
        if !KNOWN_BUGS_FIXED && s.sort_target == BY_VALUE && sort_order == SORT_NONE {
            sort_order = SORT_ASCEND; // bug_d_*
        }
        PbRangeRequest {
            key,
            range_end,
            limit: s.limit,
            revision: self.read_pick(s.rev),
            sort_order,
            sort_target: s.sort_target,
            serializable: false,
            keys_only: s.keys_only,
            count_only: s.count_only,
            min_mod_revision: filter(s.filters[0]),
            max_mod_revision: filter(s.filters[1]),
            min_create_revision: filter(s.filters[2]),
            max_create_revision: filter(s.filters[3]),
        }
    }

    /// etcd's API refuses a lease with ignore_lease and a value with ignore_value; leases are
    /// also left out with ignore_value so that no request is refused for two reasons at once
    /// (etcd orders those checks differently at top level and inside a Txn).
    fn put_request(&self, p: &PutSpec) -> PbPutRequest {
        PbPutRequest {
            key: KEYS[p.key].to_vec(),
            value: if p.ignore == Ignore::Value { Vec::new() } else { VALUES[p.value].to_vec() },
            lease: if p.ignore == Ignore::No { p.lease } else { 0 },
            prev_kv: p.prev_kv,
            ignore_value: p.ignore == Ignore::Value,
            ignore_lease: p.ignore == Ignore::Lease,
        }
    }

    fn compare(&self, c: &CmpSpec) -> PbCompare {
        let (key, range_end) = c.span.bounds();
        let n = i64::from(c.operand);
        // Half the time aim at the first key's actual metadata so EQUAL can hold.
        let actual = self.kvs_at(&key, &range_end, self.rev).into_iter().next().filter(|_| n % 2 == 0);
        let union = match (c.target, actual) {
            (ON_VERSION, Some(kv)) => PbTargetUnion::Version(kv.version),
            (ON_VERSION, None) => PbTargetUnion::Version(n % 4),
            (ON_CREATE, Some(kv)) => PbTargetUnion::CreateRevision(kv.create_revision),
            (ON_CREATE, None) => PbTargetUnion::CreateRevision(n % (self.rev + 2)),
            (ON_MOD, Some(kv)) => PbTargetUnion::ModRevision(kv.mod_revision),
            (ON_MOD, None) => PbTargetUnion::ModRevision(n % (self.rev + 2)),
            (ON_VALUE, _) => PbTargetUnion::Value(VALUES[c.operand as usize % VALUES.len()].to_vec()),
            (_, Some(kv)) => PbTargetUnion::Lease(kv.lease),
            (_, None) => PbTargetUnion::Lease(n % 4),
        };
        PbCompare { result: c.result, target: c.target, key, range_end, target_union: Some(union) }
    }

    fn txn_request(&self, t: &TxnSpec) -> PbTxnRequest {
        let ops = |ops: &[OpSpec]| -> Vec<PbTxnRequestOp> {
            ops.iter()
                .map(|op| {
                    let request = match op {
                        OpSpec::Range(r) => PbTxnOpRequest::RequestRange(self.range_request(r)),
                        OpSpec::Put(p) => PbTxnOpRequest::RequestPut(self.put_request(p)),
                        OpSpec::Delete(d) => PbTxnOpRequest::RequestDeleteRange(delete_request(d)),
                        OpSpec::Txn(t) => PbTxnOpRequest::RequestTxn(self.txn_request(t)),
                    };
                    PbTxnRequestOp { request: Some(request) }
                })
                .collect()
        };
        PbTxnRequest {
            compare: t.compare.iter().map(|c| self.compare(c)).collect(),
            success: ops(&t.success),
            failure: ops(&t.failure),
        }
    }
}

fn delete_request(d: &DelSpec) -> PbDeleteRequest {
    let (key, range_end) = d.span.bounds();
    PbDeleteRequest { key, range_end, prev_kv: d.prev_kv }
}

fn span() -> impl Strategy<Value = Span> {
    let k = 0..KEYS.len();
    prop_oneof![
        4 => k.clone().prop_map(Span::Key),
        2 => k.clone().prop_map(Span::Prefix),
        2 => (k.clone(), k.clone()).prop_map(|(a, b)| Span::Between(a, b)),
        1 => k.prop_map(Span::From),
        1 => Just(Span::All),
    ]
}

fn pick() -> impl Strategy<Value = Pick> {
    (any::<u8>(), any::<u16>()).prop_map(|(kind, n)| Pick(kind, n))
}

fn read_spec() -> impl Strategy<Value = ReadSpec> {
    let filters = prop::array::uniform4(prop::option::weighted(0.15, any::<u16>()));
    let shape = (0i64..4, 0i32..3, 0i32..5, any::<bool>(), prop::bool::weighted(0.15));
    (span(), pick(), shape, filters).prop_map(
        |(span, rev, (limit, sort_order, sort_target, keys_only, count_only), filters)| ReadSpec {
            span,
            rev,
            limit,
            sort_order,
            sort_target,
            keys_only,
            count_only,
            filters,
        },
    )
}

fn put_spec() -> impl Strategy<Value = PutSpec> {
    let lease = prop_oneof![6 => Just(0i64), 1 => LEASE_IDS];
    let ignore = prop_oneof![14 => Just(Ignore::No), 1 => Just(Ignore::Value), 1 => Just(Ignore::Lease)];
    (0..KEYS.len(), 0..VALUES.len(), lease, any::<bool>(), ignore)
        .prop_map(|(key, value, lease, prev_kv, ignore)| PutSpec { key, value, lease, prev_kv, ignore })
}

fn del_spec() -> impl Strategy<Value = DelSpec> {
    (span(), any::<bool>()).prop_map(|(span, prev_kv)| DelSpec { span, prev_kv })
}

fn cmp_spec() -> impl Strategy<Value = CmpSpec> {
    let span = prop_oneof![3 => (0..KEYS.len()).prop_map(Span::Key), 1 => span()];
    (span, 0i32..5, 0i32..4, any::<u16>()).prop_map(|(span, target, result, operand)| CmpSpec {
        span,
        target,
        result,
        operand,
    })
}

/// A Txn whose ops nest further Txns at most `depth` levels down.
fn txn_spec(depth: u32) -> BoxedStrategy<TxnSpec> {
    let leaf = prop_oneof![
        2 => read_spec().prop_map(OpSpec::Range),
        3 => put_spec().prop_map(OpSpec::Put),
        1 => del_spec().prop_map(OpSpec::Delete),
    ];
    let op = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![5 => leaf, 2 => txn_spec(depth - 1).prop_map(|t| OpSpec::Txn(Box::new(t)))].boxed()
    };
    let ops = |n| prop::collection::vec(op.clone(), 0..n);
    (prop::collection::vec(cmp_spec(), 0..3), ops(4), ops(3))
        .prop_map(|(compare, success, failure)| TxnSpec { compare, success, failure })
        .boxed()
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => put_spec().prop_map(Step::Put),
        3 => del_spec().prop_map(Step::Delete),
        6 => txn_spec(2).prop_map(Step::Txn),
        2 => pick().prop_map(Step::Compact),
        2 => (LEASE_IDS, 1i64..100).prop_map(|(id, ttl)| Step::Grant { id, ttl }),
        1 => LEASE_IDS.prop_map(|id| Step::Revoke { id }),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    /// Each step runs a command, then a checked read.
    steps: Vec<(Step, ReadSpec)>,
    /// Commands run after the reopen.
    tail: Vec<(Step, ReadSpec)>,
    watch_from_start: Span,
    /// Created before step `.0` (if the run gets that far).
    watch_mid_run: (usize, Span, Pick),
    watch_at_end: (Span, Pick),
    /// `max_revisions` for the bounded `events_since` checks.
    since_limit: usize,
}

fn case() -> impl Strategy<Value = Case> {
    let steps = prop::collection::vec((step(), read_spec()), 1..60);
    let tail = prop::collection::vec((step(), read_spec()), 0..6);
    // Half the runs never compact, so history and watches stay complete from revision 1.
    (any::<bool>(), steps, tail, span(), (0usize..60, span(), pick()), (span(), pick()), 1usize..4).prop_map(
        |(compacting, mut steps, tail, watch_from_start, watch_mid_run, watch_at_end, since_limit)| {
            if !compacting {
                steps.retain(|(s, _)| !matches!(s, Step::Compact(_)));
            }
            Case { steps, tail, watch_from_start, watch_mid_run, watch_at_end, since_limit }
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Checking.

/// Inner headers are not authoritative (section 3.5); only the top-level one is compared.
fn without_inner_headers(result: CommandResult) -> CommandResult {
    fn strip(responses: &mut [PbResponseOp]) {
        for r in responses {
            match r.response.as_mut() {
                Some(PbTxnOpResponse::ResponseRange(x)) => x.header = None,
                Some(PbTxnOpResponse::ResponsePut(x)) => x.header = None,
                Some(PbTxnOpResponse::ResponseDeleteRange(x)) => x.header = None,
                Some(PbTxnOpResponse::ResponseTxn(t)) => {
                    t.header = None;
                    strip(&mut t.responses);
                }
                None => {}
            }
        }
    }
    match result {
        CommandResult::Txn(mut t) => {
            strip(&mut t.responses);
            CommandResult::Txn(t)
        }
        other => other,
    }
}

fn everything_at(revision: i64) -> PbRangeRequest {
    PbRangeRequest { key: vec![0], range_end: vec![0], revision, ..Default::default() }
}

/// One command on both sides, then the cheap per-step checks and the step's random read.
fn run_step(store: &Store, model: &mut Model, step: &Step, read: &ReadSpec) -> Result<(), TestCaseError> {
    let cmd = model.command(step);
    if KNOWN_BUGS_FIXED || !hits_known_bug(&cmd) {
        let (got, got_events) = store.apply(&cmd);
        let (want, want_events) = model.apply(&cmd);
        prop_assert_eq!(without_inner_headers(got), want, "result of {:?}", cmd);
        prop_assert_eq!(got_events, want_events, "events of {:?}", cmd);
    }
    prop_assert_eq!(store.read(|m| m.current_revision()), model.rev);
    prop_assert_eq!(store.read(|m| m.compact_revision()), model.compact);
    prop_assert_eq!(store.read(|m| m.leases().clone()), model.leases.clone());
    let req = model.range_request(read);
    prop_assert_eq!(store.read(|m| m.range(&req)), model.range(&req).map_err(StoreError::from), "{:?}", req);
    let req = everything_at(0);
    prop_assert_eq!(store.read(|m| m.range(&req)), model.range(&req).map_err(StoreError::from));
    Ok(())
}

/// Everything the store can be asked about: all revisions, all of history, leases.
fn check_state(store: &Store, model: &Model, since_limit: usize) -> Result<(), TestCaseError> {
    let (rev, compact) = (model.rev, model.compact);
    prop_assert_eq!(store.read(|m| m.current_revision()), rev);
    prop_assert_eq!(store.read(|m| m.compact_revision()), compact);
    prop_assert_eq!(store.read(|m| m.leases().clone()), model.leases.clone());
    for at in 1..=rev + 1 {
        let req = everything_at(at);
        let want = model.range(&req).map_err(StoreError::from);
        prop_assert_eq!(store.read(|m| m.range(&req)), want, "at {}", at);
    }
    for from in 0..=rev + 1 {
        let got = store.read(|m| m.events_since(from, usize::MAX));
        if from < compact {
            prop_assert_eq!(got, Err(Rejection::Compacted { compact_revision: compact }));
            continue;
        }
        let want = model.history_from(from, compact);
        prop_assert_eq!(got, Ok(want.clone()), "events_since({})", from);
        let got = store.read(|m| m.events_since(from, since_limit));
        let want = Ok(want.into_iter().take(since_limit).collect());
        prop_assert_eq!(got, want, "events_since({}, {})", from, since_limit);
    }
    Ok(())
}

/// A watcher and what it has yielded so far.
struct Watch {
    watcher: Watcher,
    span: Span,
    /// The revision it starts from (a requested 0 resolved to current + 1).
    start: i64,
    /// The compaction point when it first read history (right after creation).
    compact: i64,
    items: Vec<WatchItem>,
    finished: bool,
}

/// More items than any run can produce: a watcher that keeps yielding is broken.
const MAX_WATCH_ITEMS: usize = 10_000;

impl Watch {
    fn start(store: &Store, model: &Model, span: Span, start: i64) -> Self {
        let watcher = store.hub.watch(span.key_range(), start);
        let start = if start > 0 { start } else { model.rev + 1 };
        let mut w = Self { watcher, span, start, compact: model.compact, items: Vec::new(), finished: false };
        w.drain();
        w
    }

    /// Take whatever is ready now; everything published so far is ready at once (apply and
    /// publish are synchronous here), so no waiting is needed.
    fn drain(&mut self) {
        while !self.finished {
            let Some(Some(item)) = self.watcher.next().now_or_never() else { return };
            assert!(self.items.len() < MAX_WATCH_ITEMS, "watcher {:?} never runs dry", self.span);
            // A compacted watcher is done (it would repeat `Compacted` forever).
            self.finished = matches!(item, WatchItem::Compacted { .. });
            self.items.push(item);
        }
    }

    fn check(&self, model: &Model) -> Result<(), TestCaseError> {
        let want: Vec<WatchItem> = if self.start < self.compact {
            vec![WatchItem::Compacted { compact_revision: self.compact }]
        } else {
            let range = self.span.key_range();
            model
                .history_from(self.start, self.compact)
                .into_iter()
                .filter_map(|(revision, events)| {
                    let events: Vec<PbEvent> = events
                        .into_iter()
                        .filter(|e| range.contains(&e.kv.as_ref().expect("events carry a kv").key))
                        .collect();
                    (!events.is_empty()).then_some(WatchItem::Events { revision, events })
                })
                .collect()
        };
        prop_assert_eq!(&self.items, &want, "watch {:?} from {}", self.span, self.start);
        Ok(())
    }
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let mut watches = vec![Watch::start(&store, &model, case.watch_from_start, 1)];
    for (i, (step, read)) in case.steps.iter().enumerate() {
        if i == case.watch_mid_run.0 {
            let (span, pick) = (case.watch_mid_run.1, case.watch_mid_run.2);
            watches.push(Watch::start(&store, &model, span, model.watch_pick(pick)));
        }
        run_step(&store, &mut model, step, read)?;
        watches.iter_mut().for_each(Watch::drain);
    }
    let (span, pick) = case.watch_at_end;
    watches.push(Watch::start(&store, &model, span, model.watch_pick(pick)));
    for w in &watches {
        w.check(&model)?;
    }
    check_state(&store, &model, case.since_limit)?;

    drop(watches);
    store.close();
    let store = Store::open(dir.path());
    check_state(&store, &model, case.since_limit)?;
    for (step, read) in &case.tail {
        run_step(&store, &mut model, step, read)?;
    }
    check_state(&store, &model, case.since_limit)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        // This test owns no regression file; a failure prints its minimal case instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mvcc_agrees_with_model(case in case()) {
        run_case(&case)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic cases.

fn kv_put(key: &str, value: &str) -> PbPutRequest {
    PbPutRequest { key: key.into(), value: value.into(), ..Default::default() }
}

fn op(request: PbTxnOpRequest) -> PbTxnRequestOp {
    PbTxnRequestOp { request: Some(request) }
}

fn op_put(key: &str, value: &str, lease: i64) -> PbTxnRequestOp {
    op(PbTxnOpRequest::RequestPut(PbPutRequest { lease, ..kv_put(key, value) }))
}

fn op_get(key: &str) -> PbTxnRequestOp {
    op(PbTxnOpRequest::RequestRange(PbRangeRequest { key: key.into(), ..Default::default() }))
}

fn op_txn(t: PbTxnRequest) -> PbTxnRequestOp {
    op(PbTxnOpRequest::RequestTxn(t))
}

fn cmp(key: &str, target: i32, result: i32, operand: PbTargetUnion) -> PbCompare {
    PbCompare { result, target, key: key.into(), range_end: Vec::new(), target_union: Some(operand) }
}

fn txn(compare: Vec<PbCompare>, success: Vec<PbTxnRequestOp>, failure: Vec<PbTxnRequestOp>) -> Command {
    Command::Txn(PbTxnRequest { compare, success, failure })
}

fn txn_response(result: CommandResult) -> PbTxnResponse {
    match result {
        CommandResult::Txn(t) => t,
        other => panic!("expected a Txn response, got {other:?}"),
    }
}

fn get(store: &Store, key: &str) -> Option<PbKeyValue> {
    let req = PbRangeRequest { key: key.into(), ..Default::default() };
    store.read(|m| m.range(&req)).expect("range").kvs.into_iter().next()
}

/// Both sides on the same commands, for the deterministic cases.
fn both(store: &Store, model: &mut Model, cmd: &Command) -> CommandResult {
    let (got, got_events) = store.apply(cmd);
    let (want, want_events) = model.apply(cmd);
    assert_eq!(without_inner_headers(got.clone()), want, "result of {cmd:?}");
    assert_eq!(got_events, want_events, "events of {cmd:?}");
    got
}

/// Observed: a duplicate write is an `Ok` apply whose result is `Rejected(DuplicateKey)` (the
/// same check also runs before proposing); nothing changes. Exclusive top-level branches may
/// each write the key.
#[test]
fn txn_writing_a_key_twice_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    both(&store, &mut model, &Command::Put(kv_put("a", "0")));
    let dup = txn(vec![], vec![op_put("a", "1", 0), op_put("a", "2", 0)], vec![]);
    let mut batch = WriteBatch::default();
    let out = store.mvcc.write().expect("lock").apply(&dup, &mut batch);
    assert_eq!(out, Ok((CommandResult::Rejected(Rejection::DuplicateKey), Vec::new())));
    assert!(batch.is_empty(), "a refused Txn stages nothing");
    both(&store, &mut model, &dup);
    let del = op(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest {
        key: "a".into(),
        range_end: "b".into(),
        prev_kv: false,
    }));
    let put_in_deleted_range = txn(vec![], vec![del, op_put("a", "3", 0)], vec![]);
    let refused = CommandResult::Rejected(Rejection::DuplicateKey);
    assert_eq!(both(&store, &mut model, &put_in_deleted_range), refused);
    let inner = PbTxnRequest { success: vec![op_put("a", "5", 0)], ..Default::default() };
    let nested = txn(vec![], vec![op_put("a", "4", 0), op_txn(inner)], vec![]);
    assert_eq!(both(&store, &mut model, &nested), refused);
    let exclusive = txn(vec![], vec![op_put("a", "6", 0)], vec![op_put("a", "7", 0)]);
    assert!(txn_response(both(&store, &mut model, &exclusive)).succeeded);
    assert_eq!(store.read(|m| m.current_revision()), 3);
    assert_eq!(get(&store, "a").map(|kv| kv.value), Some(b"6".to_vec()));
}

#[test]
fn value_compare_on_a_missing_key_is_false() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let value = |result| cmp("a", ON_VALUE, result, PbTargetUnion::Value(Vec::new()));
    for result in [EQUAL, NOT_EQUAL, GREATER, LESS] {
        let t = txn_response(both(&store, &mut model, &txn(vec![value(result)], vec![], vec![])));
        assert!(!t.succeeded, "VALUE compare {result} on a missing key");
    }
    // Other targets see a missing key as all zeros.
    let absent = cmp("a", ON_CREATE, EQUAL, PbTargetUnion::CreateRevision(0));
    assert!(txn_response(both(&store, &mut model, &txn(vec![absent.clone()], vec![], vec![]))).succeeded);
    let zero_version = cmp("a", ON_VERSION, EQUAL, PbTargetUnion::Version(0));
    assert!(txn_response(both(&store, &mut model, &txn(vec![zero_version], vec![], vec![]))).succeeded);
    // An existing key with an empty value is not a missing key.
    both(&store, &mut model, &Command::Put(kv_put("a", "")));
    assert!(txn_response(both(&store, &mut model, &txn(vec![value(EQUAL)], vec![], vec![]))).succeeded);
    assert!(!txn_response(both(&store, &mut model, &txn(vec![absent], vec![], vec![]))).succeeded);
    // Read-only Txns never bump the revision.
    assert_eq!(store.read(|m| m.current_revision()), 2);
}

#[test]
fn ignore_value_needs_an_existing_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let keep = |key: &str| PbPutRequest { key: key.into(), ignore_value: true, ..Default::default() };
    let refused = CommandResult::Rejected(Rejection::KeyNotFound);
    assert_eq!(both(&store, &mut model, &Command::Put(keep("a"))), refused);
    let keep_lease = PbPutRequest { ignore_lease: true, ..kv_put("a", "v") };
    assert_eq!(both(&store, &mut model, &Command::Put(keep_lease)), refused);
    // Inside a Txn it refuses the whole Txn, earlier ops included.
    let t = txn(vec![], vec![op_put("b", "1", 0), op(PbTxnOpRequest::RequestPut(keep("a")))], vec![]);
    assert_eq!(both(&store, &mut model, &t), refused);
    assert_eq!(get(&store, "b"), None);
    // On a live key the old value stays and the version moves on.
    both(&store, &mut model, &Command::Put(kv_put("a", "old")));
    both(&store, &mut model, &Command::Put(keep("a")));
    let kv = get(&store, "a").expect("a exists");
    assert_eq!((kv.value, kv.version, kv.mod_revision), (b"old".to_vec(), 2, 3));
}

#[test]
fn unknown_lease_refuses_the_whole_txn_and_revoke_deletes_in_one_revision() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let t = txn(vec![], vec![op_put("a", "1", 0), op_put("b", "1", 7)], vec![]);
    assert_eq!(both(&store, &mut model, &t), CommandResult::Rejected(Rejection::LeaseNotFound));
    assert_eq!(store.read(|m| m.current_revision()), 1);
    both(&store, &mut model, &Command::LeaseGrant { id: 7, ttl: 10 });
    both(&store, &mut model, &t);
    both(&store, &mut model, &Command::Put(PbPutRequest { lease: 7, ..kv_put("c", "1") }));
    let (_, events) = store.apply(&Command::LeaseRevoke { id: 7 });
    model.apply(&Command::LeaseRevoke { id: 7 });
    let deleted: Vec<(i32, Vec<u8>, i64)> = events
        .iter()
        .map(|e| e.kv.as_ref().map(|kv| (e.r#type, kv.key.clone(), kv.mod_revision)).expect("kv"))
        .collect();
    assert_eq!(deleted, vec![(EVENT_DELETE, b"b".to_vec(), 4), (EVENT_DELETE, b"c".to_vec(), 4)]);
    assert!(store.read(|m| m.leases().is_empty()));
    assert_eq!(get(&store, "a").map(|kv| kv.mod_revision), Some(2));
}

#[test]
fn watch_below_the_compaction_point_yields_compacted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    for v in ["1", "2", "3"] {
        store.apply(&Command::Put(kv_put("a", v)));
    }
    assert_eq!(store.apply(&Command::Compact { revision: 3 }).0, CommandResult::Compact { revision: 4 });
    let range = KeyRange::new(b"a", b"");
    let mut below = store.hub.watch(range.clone(), 2);
    assert_eq!(below.next().now_or_never(), Some(Some(WatchItem::Compacted { compact_revision: 3 })));
    // From the compaction point itself: what survived, with the replaced version gone.
    let mut at = store.hub.watch(range, 3);
    let Some(Some(WatchItem::Events { revision: 3, events })) = at.next().now_or_never() else {
        panic!("expected the surviving put at revision 3");
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].prev_kv, None);
    assert_eq!(events[0].kv.as_ref().map(|kv| kv.value.clone()), Some(b"2".to_vec()));
}

// ---------------------------------------------------------------------------------------------
// Known store bugs: each test states etcd's behaviour and fails against the current store.

/// A Range inside a Txn does not see the Txn's earlier writes: `Mvcc::range` reads at
/// `current_rev`, which is bumped only after the whole Txn.
#[test]
fn range_in_txn_sees_earlier_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let t = txn_response(store.apply(&txn(vec![], vec![op_put("a", "1", 0), op_get("a")], vec![])).0);
    let Some(PbTxnOpResponse::ResponseRange(r)) = &t.responses[1].response else { panic!("range response") };
    assert_eq!(r.count, 1, "etcd: reads in a Txn see its earlier writes");
}

/// A nested Txn's compares are evaluated twice: by `check_ops` before anything runs and again
/// when the nested Txn executes, after earlier writes. When they disagree, the executed branch
/// was never checked; here its refusal comes after a write and trips the "a refused command
/// must change nothing" assert in `Mvcc::apply`: a panic on every replica applying the entry.
/// etcd evaluates every compare on the path against the state before the Txn.
#[test]
fn nested_compares_use_the_state_before_the_txn() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let nested = PbTxnRequest {
        compare: vec![cmp("b", ON_VERSION, GREATER, PbTargetUnion::Version(0))],
        success: vec![op_put("c", "1", 77)],
        failure: vec![],
    };
    let t = both(&store, &mut model, &txn(vec![], vec![op_put("b", "1", 0), op_txn(nested)], vec![]));
    assert!(txn_response(t).succeeded);
}

/// The duplicate check flattens both branches of a nested Txn, refusing writes that can never
/// both run. etcd allows them ("either then/else are mutually exclusive").
#[test]
fn exclusive_nested_branches_may_write_the_same_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let nested =
        PbTxnRequest { compare: vec![], success: vec![op_put("d", "1", 0)], failure: vec![op_put("d", "2", 0)] };
    let t = both(&store, &mut model, &txn(vec![], vec![op_txn(nested)], vec![]));
    assert!(txn_response(t).succeeded);
}

/// etcd sorts ascending when the order is NONE and the target is not KEY; the store does so
/// for every target but VALUE, which comes back in key order.
#[test]
fn value_target_without_order_sorts_ascending() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    store.apply(&Command::Put(kv_put("a", "z")));
    store.apply(&Command::Put(kv_put("b", "y")));
    let req = PbRangeRequest { sort_target: BY_VALUE, ..everything_at(0) };
    let kvs = store.read(|m| m.range(&req)).expect("range").kvs;
    let values: Vec<Vec<u8>> = kvs.into_iter().map(|kv| kv.value).collect();
    assert_eq!(values, vec![b"y".to_vec(), b"z".to_vec()]);
}
