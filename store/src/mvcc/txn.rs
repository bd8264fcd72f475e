//! Txn: compare, then run the success or failure branch as one revision.
//!
//! As in etcd, a Txn runs in two phases. First every compare on the path — the top-level
//! compares and those of nested Txns in the chosen branches — is evaluated against the state
//! *before* the Txn, which fixes the path, and every check that could refuse an operation on
//! that path (unknown lease, missing key for `ignore_value`, compacted or future read
//! revision) runs. Only then does the path execute, so a refused Txn changes nothing and an
//! executing Txn cannot be refused halfway. Operations run in order and later ones see
//! earlier ones' writes; all writes share the request's main revision.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use rocksdb::WriteBatch;

use super::key_range::KeyRange;
use super::write::Changes;
use super::Mvcc;
use crate::config::MAX_TXN_OPS;
use crate::error::StoreError;
use crate::pb::{
    PbCompare, PbResponseHeader, PbResponseOp, PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest,
    PbTxnRequestOp, PbTxnResponse,
};
use crate::types::Rejection;

/// `Compare.CompareResult`.
const RESULT_EQUAL: i32 = 0;
const RESULT_GREATER: i32 = 1;
const RESULT_LESS: i32 = 2;
const RESULT_NOT_EQUAL: i32 = 3;
/// `Compare.CompareTarget`.
const TARGET_VERSION: i32 = 0;
const TARGET_CREATE: i32 = 1;
const TARGET_MOD: i32 = 2;
const TARGET_VALUE: i32 = 3;
const TARGET_LEASE: i32 = 4;

/// Refuse a Txn that carries too many operations, an empty operation, or a branch that
/// writes one key twice (a put overlapping another put or a delete range of the same
/// branch). The two branches of a nested Txn exclude each other, so they may write the same
/// key. A pure check on the request, run before proposing and again at apply.
pub fn check_txn_request(req: &PbTxnRequest) -> Result<(), StoreError> {
    branch_writes(req).map(|_| ())
}

/// The keys a Txn may put and the ranges it may delete, over both of its branches.
fn branch_writes(req: &PbTxnRequest) -> Result<(BTreeSet<Vec<u8>>, Vec<KeyRange>), StoreError> {
    if req.compare.len() > MAX_TXN_OPS || req.success.len() > MAX_TXN_OPS || req.failure.len() > MAX_TXN_OPS {
        return Err(StoreError::InvalidArgument("too many operations in txn request".into()));
    }
    let (mut puts, mut deletes) = writes_of(&req.success)?;
    let (fputs, fdeletes) = writes_of(&req.failure)?;
    puts.extend(fputs);
    deletes.extend(fdeletes);
    Ok((puts, deletes))
}

/// Validate one branch and return what it may write. Each op's writes are checked against
/// the writes of the ops before it; a nested Txn contributes both of its branches, which
/// were validated on their own.
fn writes_of(ops: &[PbTxnRequestOp]) -> Result<(BTreeSet<Vec<u8>>, Vec<KeyRange>), StoreError> {
    let mut puts: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut deletes: Vec<KeyRange> = Vec::new();
    for op in ops {
        let (p, d) = match &op.request {
            Some(PbTxnOpRequest::RequestPut(p)) => (BTreeSet::from([p.key.clone()]), Vec::new()),
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => (BTreeSet::new(), vec![KeyRange::new(&d.key, &d.range_end)]),
            Some(PbTxnOpRequest::RequestTxn(t)) => branch_writes(t)?,
            Some(PbTxnOpRequest::RequestRange(_)) => continue,
            None => return Err(StoreError::InvalidArgument("txn operation has no request".into())),
        };
        let clash = p.iter().any(|k| puts.contains(k) || deletes.iter().any(|r: &KeyRange| r.contains(k)))
            || puts.iter().any(|k| d.iter().any(|r| r.contains(k)));
        if clash {
            return Err(Rejection::DuplicateKey.into());
        }
        puts.extend(p);
        deletes.extend(d);
    }
    Ok((puts, deletes))
}

/// The path a Txn takes, fixed before it executes: which branch each (nested) Txn runs.
struct Path {
    succeeded: bool,
    /// One entry per nested Txn of the chosen branch, in order.
    nested: Vec<Path>,
}

impl Mvcc {
    pub(super) fn txn(
        &mut self,
        w: &mut Changes,
        req: &PbTxnRequest,
        batch: &mut WriteBatch,
    ) -> Result<PbTxnResponse, StoreError> {
        check_txn_request(req)?;
        let path = self.plan(req)?;
        self.run(w, req, &path, batch)
    }

    /// Phase one: evaluate compares against the current state and check the chosen ops.
    fn plan(&self, req: &PbTxnRequest) -> Result<Path, StoreError> {
        let succeeded = self.compares_hold(&req.compare)?;
        let mut nested = Vec::new();
        for op in if succeeded { &req.success } else { &req.failure } {
            match &op.request {
                Some(PbTxnOpRequest::RequestPut(p)) => self.check_put(p)?,
                Some(PbTxnOpRequest::RequestRange(r)) if r.revision > 0 => {
                    self.check_read_revision(r.revision)?;
                }
                Some(PbTxnOpRequest::RequestTxn(t)) => nested.push(self.plan(t)?),
                _ => {}
            }
        }
        Ok(Path { succeeded, nested })
    }

    /// Phase two: execute the planned path. Nothing here refuses; errors are storage errors.
    fn run(
        &mut self,
        w: &mut Changes,
        req: &PbTxnRequest,
        path: &Path,
        batch: &mut WriteBatch,
    ) -> Result<PbTxnResponse, StoreError> {
        let ops = if path.succeeded { &req.success } else { &req.failure };
        let mut nested = path.nested.iter();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match op.request.as_ref().expect("checked by check_txn_request") {
                PbTxnOpRequest::RequestRange(r) => {
                    let latest = self.latest_during(w);
                    let mut resp = self.range_with_latest(r, latest)?;
                    resp.header = self.header_during(w);
                    PbTxnOpResponse::ResponseRange(resp)
                }
                PbTxnOpRequest::RequestPut(p) => {
                    let mut resp = self.put(w, p, batch)?;
                    resp.header = self.header_during(w);
                    PbTxnOpResponse::ResponsePut(resp)
                }
                PbTxnOpRequest::RequestDeleteRange(d) => {
                    let mut resp = self.delete_range(w, d, batch)?;
                    resp.header = self.header_during(w);
                    PbTxnOpResponse::ResponseDeleteRange(resp)
                }
                PbTxnOpRequest::RequestTxn(t) => {
                    let p = nested.next().expect("plan has one path per nested txn");
                    let mut resp = self.run(w, t, p, batch)?;
                    resp.header = self.header_during(w);
                    PbTxnOpResponse::ResponseTxn(resp)
                }
            };
            responses.push(PbResponseOp { response: Some(response) });
        }
        Ok(PbTxnResponse { header: None, succeeded: path.succeeded, responses })
    }

    /// The revision reads inside a Txn see as latest: its own, once it has written.
    fn latest_during(&self, w: &Changes) -> i64 {
        if w.events.is_empty() {
            self.current_rev
        } else {
            w.main
        }
    }

    /// The header of an inner response.
    fn header_during(&self, w: &Changes) -> Option<PbResponseHeader> {
        Some(PbResponseHeader { revision: self.latest_during(w), ..Default::default() })
    }

    fn compares_hold(&self, compares: &[PbCompare]) -> Result<bool, StoreError> {
        for c in compares {
            if !self.compare_holds(c)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One compare; with a range, every live key in it must satisfy it. A missing key
    /// compares as all-zero metadata, except that a VALUE compare on it is false.
    fn compare_holds(&self, c: &PbCompare) -> Result<bool, StoreError> {
        let keys = self.live_keys(&KeyRange::new(&c.key, &c.range_end));
        if keys.is_empty() {
            return Ok(c.target != TARGET_VALUE && compare_one(c, &Default::default()));
        }
        for key in keys {
            let v = *self.latest(&key).expect("live_keys returns live keys");
            let kv = self.key_value(&key, &v, c.target == TARGET_VALUE)?;
            if !compare_one(c, &kv) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn compare_one(c: &PbCompare, kv: &crate::pb::PbKeyValue) -> bool {
    // An operand of the wrong kind for the target (or none) compares as zero, as in etcd.
    let int = |want: fn(&PbTargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(want).unwrap_or(0);
    let ord = match c.target {
        TARGET_VERSION => kv.version.cmp(&int(|u| if let PbTargetUnion::Version(x) = u { Some(*x) } else { None })),
        TARGET_CREATE => {
            kv.create_revision.cmp(&int(|u| if let PbTargetUnion::CreateRevision(x) = u { Some(*x) } else { None }))
        }
        TARGET_MOD => {
            kv.mod_revision.cmp(&int(|u| if let PbTargetUnion::ModRevision(x) = u { Some(*x) } else { None }))
        }
        TARGET_LEASE => kv.lease.cmp(&int(|u| if let PbTargetUnion::Lease(x) = u { Some(*x) } else { None })),
        TARGET_VALUE => match &c.target_union {
            Some(PbTargetUnion::Value(x)) => kv.value.as_slice().cmp(x.as_slice()),
            _ => kv.value.as_slice().cmp(&[]),
        },
        _ => return false,
    };
    match c.result {
        RESULT_EQUAL => ord == Ordering::Equal,
        RESULT_GREATER => ord == Ordering::Greater,
        RESULT_LESS => ord == Ordering::Less,
        RESULT_NOT_EQUAL => ord != Ordering::Equal,
        _ => false,
    }
}
