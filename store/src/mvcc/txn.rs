//! Txn: compare, then run the success or failure branch as one revision.
//!
//! A Txn is atomic: every check that could refuse an operation of the chosen branch (unknown
//! lease, missing key for `ignore_value`, compacted or future read revision, duplicate keys)
//! runs before the first change, so a refused Txn changes nothing. Operations run in order
//! and later ones see earlier ones' writes; all writes share the request's main revision.

use std::cmp::Ordering;

use rocksdb::WriteBatch;

use super::key_range::KeyRange;
use super::write::Changes;
use super::Mvcc;
use crate::config::MAX_TXN_OPS;
use crate::error::StoreError;
use crate::pb::{
    PbCompare, PbResponseHeader, PbResponseOp, PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse,
    PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
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

/// Refuse a Txn whose branches write one key twice (a put overlapping another put or a
/// delete range of the same branch, nested Txns included) or carry too many operations.
/// A pure check on the request, run before proposing and again at apply.
pub fn check_txn_request(req: &PbTxnRequest) -> Result<(), StoreError> {
    if req.compare.len() > MAX_TXN_OPS || req.success.len() > MAX_TXN_OPS || req.failure.len() > MAX_TXN_OPS {
        return Err(StoreError::InvalidArgument("too many operations in txn request".into()));
    }
    for branch in [&req.success, &req.failure] {
        let (mut puts, mut deletes) = (Vec::new(), Vec::new());
        collect_writes(branch, &mut puts, &mut deletes)?;
        puts.sort();
        if puts.windows(2).any(|w| w[0] == w[1]) {
            return Err(Rejection::DuplicateKey.into());
        }
        if puts.iter().any(|k| deletes.iter().any(|d: &KeyRange| d.contains(k))) {
            return Err(Rejection::DuplicateKey.into());
        }
    }
    Ok(())
}

fn collect_writes(ops: &[PbTxnRequestOp], puts: &mut Vec<Vec<u8>>, deletes: &mut Vec<KeyRange>) -> Result<(), StoreError> {
    for op in ops {
        match &op.request {
            Some(PbTxnOpRequest::RequestPut(p)) => puts.push(p.key.clone()),
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => deletes.push(KeyRange::new(&d.key, &d.range_end)),
            Some(PbTxnOpRequest::RequestTxn(t)) => {
                check_txn_request(t)?;
                // Either nested branch may run, so both count against the outer branch.
                collect_writes(&t.success, puts, deletes)?;
                collect_writes(&t.failure, puts, deletes)?;
            }
            Some(PbTxnOpRequest::RequestRange(_)) => {}
            None => return Err(StoreError::InvalidArgument("txn operation has no request".into())),
        }
    }
    Ok(())
}

impl Mvcc {
    pub(super) fn txn(
        &mut self,
        w: &mut Changes,
        req: &PbTxnRequest,
        batch: &mut WriteBatch,
    ) -> Result<PbTxnResponse, StoreError> {
        check_txn_request(req)?;
        let succeeded = self.compares_hold(&req.compare)?;
        let ops = if succeeded { &req.success } else { &req.failure };
        self.check_ops(ops)?;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match op.request.as_ref().expect("checked by check_txn_request") {
                PbTxnOpRequest::RequestRange(r) => PbTxnOpResponse::ResponseRange(self.range(r)?),
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
                    let mut resp = self.txn(w, t, batch)?;
                    resp.header = self.header_during(w);
                    PbTxnOpResponse::ResponseTxn(resp)
                }
            };
            responses.push(PbResponseOp { response: Some(response) });
        }
        Ok(PbTxnResponse { header: None, succeeded, responses })
    }

    /// The header of an inner response: the revision this request will have if it wrote.
    fn header_during(&self, w: &Changes) -> Option<PbResponseHeader> {
        let revision = if w.events.is_empty() { self.current_rev } else { w.main };
        Some(PbResponseHeader { revision, ..Default::default() })
    }

    /// Everything that could refuse an op of this branch, checked against the current state.
    fn check_ops(&self, ops: &[PbTxnRequestOp]) -> Result<(), StoreError> {
        for op in ops {
            match &op.request {
                Some(PbTxnOpRequest::RequestPut(p)) => self.check_put(p)?,
                Some(PbTxnOpRequest::RequestRange(r)) => {
                    self.check_read_revision(r.revision)?;
                }
                Some(PbTxnOpRequest::RequestTxn(t)) => {
                    let branch = if self.compares_hold(&t.compare)? { &t.success } else { &t.failure };
                    self.check_ops(branch)?;
                }
                Some(PbTxnOpRequest::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
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
    // As etcd: an operand of the wrong kind for the target compares as equal.
    let ord = match (c.target, &c.target_union) {
        (TARGET_VERSION, Some(PbTargetUnion::Version(x))) => kv.version.cmp(x),
        (TARGET_CREATE, Some(PbTargetUnion::CreateRevision(x))) => kv.create_revision.cmp(x),
        (TARGET_MOD, Some(PbTargetUnion::ModRevision(x))) => kv.mod_revision.cmp(x),
        (TARGET_VALUE, Some(PbTargetUnion::Value(x))) => kv.value.as_slice().cmp(x.as_slice()),
        (TARGET_LEASE, Some(PbTargetUnion::Lease(x))) => kv.lease.cmp(x),
        _ => Ordering::Equal,
    };
    match c.result {
        RESULT_EQUAL => ord == Ordering::Equal,
        RESULT_GREATER => ord == Ordering::Greater,
        RESULT_LESS => ord == Ordering::Less,
        RESULT_NOT_EQUAL => ord != Ordering::Equal,
        _ => false,
    }
}
