//! The reference model: a deliberately naive rendering of etcd's rules (section 3 of the store
//! reference). It keeps every change of every key forever; compaction only moves the line
//! below which it refuses reads.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_store::mvcc::{LeaseEntry, EVENT_DELETE, EVENT_PUT};
use flotilla_store::pb::{
    PbCompare, PbDeleteRequest, PbDeleteResponse, PbEvent, PbKeyValue, PbPutRequest, PbPutResponse, PbRangeRequest,
    PbRangeResponse, PbResponseHeader, PbResponseOp, PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest,
    PbTxnRequestOp, PbTxnResponse,
};
use flotilla_store::types::Rejection;
use flotilla_store::{Command, CommandResult};

// etcd enum values (RangeRequest.SortOrder/SortTarget, Compare.CompareResult/CompareTarget).
pub const SORT_NONE: i32 = 0;
pub const SORT_ASCEND: i32 = 1;
pub const SORT_DESCEND: i32 = 2;
pub const BY_KEY: i32 = 0;
pub const BY_VERSION: i32 = 1;
pub const BY_CREATE: i32 = 2;
pub const BY_MOD: i32 = 3;
pub const BY_VALUE: i32 = 4;
pub const EQUAL: i32 = 0;
pub const GREATER: i32 = 1;
pub const LESS: i32 = 2;
pub const NOT_EQUAL: i32 = 3;
pub const ON_VERSION: i32 = 0;
pub const ON_CREATE: i32 = 1;
pub const ON_MOD: i32 = 2;
pub const ON_VALUE: i32 = 3;
pub const ON_LEASE: i32 = 4;
/// etcd's `AlarmType.NOSPACE`.
pub const NOSPACE: i32 = 1;

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
pub struct Model {
    keys: BTreeMap<Vec<u8>, Vec<Change>>,
    /// The current revision.
    pub rev: i64,
    /// The compaction point (0 before the first compaction).
    pub compact: i64,
    pub leases: BTreeMap<i64, LeaseEntry>,
    /// Events of every revision, as apply emits them.
    events: Vec<(i64, Vec<PbEvent>)>,
    /// Raised alarms, as (member, alarm type).
    alarms: BTreeSet<(u64, i32)>,
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

/// Whether a Txn has a put in either branch, at any depth.
fn puts_anywhere(req: &PbTxnRequest) -> bool {
    req.success.iter().chain(&req.failure).any(|op| match op_request(op) {
        PbTxnOpRequest::RequestPut(_) => true,
        PbTxnOpRequest::RequestTxn(t) => puts_anywhere(t),
        _ => false,
    })
}

fn op_request(op: &PbTxnRequestOp) -> &PbTxnOpRequest {
    op.request.as_ref().expect("generated ops always carry a request")
}

impl Model {
    pub fn new() -> Self {
        Self {
            keys: BTreeMap::new(),
            rev: 1,
            compact: 0,
            leases: BTreeMap::new(),
            events: Vec::new(),
            alarms: BTreeSet::new(),
        }
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

    pub fn kvs_at(&self, key: &[u8], end: &[u8], at: i64) -> Vec<PbKeyValue> {
        self.keys.keys().filter(|k| in_range(key, end, k)).filter_map(|k| self.kv_at(k, at)).collect()
    }

    pub fn apply(&mut self, cmd: &Command) -> (CommandResult, Vec<PbEvent>) {
        let mut w = Writes { main: self.rev + 1, events: Vec::new() };
        let full = self.alarms.iter().any(|(_, a)| *a == NOSPACE);
        let result = match cmd {
            // etcd's capped applier: anything that could add data is refused.
            Command::Put(_) | Command::LeaseGrant { .. } if full => Err(Rejection::NoSpace),
            Command::Txn(req) if full && puts_anywhere(req) => Err(Rejection::NoSpace),
            Command::Alarm { activate, member, alarm } => {
                let changed = match activate {
                    true => self.alarms.insert((*member, *alarm)),
                    false => self.alarms.remove(&(*member, *alarm)),
                };
                Ok(CommandResult::Alarm(if changed { vec![(*member, *alarm)] } else { Vec::new() }))
            }
            Command::Put(req) => self.check_put(req).map(|()| CommandResult::Put(self.put(&mut w, req))),
            Command::DeleteRange(req) => Ok(CommandResult::DeleteRange(self.delete_range(&mut w, req))),
            Command::Txn(req) => self.txn(&mut w, req).map(CommandResult::Txn),
            Command::Compact { revision } => self.compaction(*revision),
            // The state machine unpacks batches; the MVCC layer refuses one that reaches it.
            Command::Batch(_) => Err(Rejection::Invalid("nested command batch".into())),
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
            CommandResult::LeaseGrant { id, ttl, .. } => CommandResult::LeaseGrant { id, ttl, revision: self.rev },
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
        let tombstone = Change { rev: w.main, create: 0, version: 0, value: Vec::new(), lease: 0, tombstone: true };
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
                PbTxnOpRequest::RequestDeleteRange(d) => PbTxnOpResponse::ResponseDeleteRange(self.delete_range(w, d)),
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

    pub fn range(&self, req: &PbRangeRequest) -> Result<PbRangeResponse, Rejection> {
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
        let order = if req.sort_order == SORT_NONE && req.sort_target != BY_KEY { SORT_ASCEND } else { req.sort_order };
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
    pub fn history_from(&self, from: i64, compact: i64) -> Vec<(i64, Vec<PbEvent>)> {
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
