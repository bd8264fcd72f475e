//! Objects in the store: keys, JSON values, and the compare-and-swap writes everything above
//! is built from.
//!
//! Layout: `/registry/<plural>/<namespace>/<name>` for namespaced resources and
//! `/registry/<plural>/<name>` for cluster-scoped ones; the value is the object as JSON
//! *without* `metadata.resourceVersion`, which is always the key's mod revision and is filled
//! in on every read. So a stored object can never disagree with its own version.
//!
//! Invariants:
//! - Every write is one store Txn guarded by a compare: create requires the key to be absent
//!   (and, for namespaced objects, the namespace key to exist); update and delete require the
//!   mod revision the caller read. A lost race is reported, never overwritten.
//! - Reads are linearizable (read-index through the leader) unless the caller asks for a
//!   specific past revision.

use std::sync::Arc;

use flotilla_store::mvcc::key_range::{prefix_end, KeyRange};
use flotilla_store::pb::{
    PbCompare, PbDeleteRequest, PbKeyValue, PbPutRequest, PbRangeRequest, PbTargetUnion, PbTxnOpRequest,
    PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp,
};
use flotilla_store::watch::Watcher;
use flotilla_store::StoreNode;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::resources::Resource;

/// Root of every Kubernetes object key.
pub const REGISTRY_PREFIX: &str = "/registry/";

/// `Compare.CompareResult` / `Compare.CompareTarget` numbers from etcd's rpc.proto.
const EQUAL: i32 = 0;
const GREATER: i32 = 1;
const TARGET_CREATE: i32 = 1;
const TARGET_MOD: i32 = 2;

/// An object read from the store, with its version filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub key: Vec<u8>,
    pub object: Value,
    pub mod_revision: i64,
}

/// Why a guarded write did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Lost {
    /// Create: the key exists already.
    Exists,
    /// Create: the guard key (the namespace) is missing.
    GuardMissing,
    /// Update/delete: the key changed or is gone; here is what is there now.
    Changed(Option<Stored>),
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Stored>,
    /// The store revision the page was read at.
    pub revision: i64,
    /// More keys follow the last one returned.
    pub more: bool,
}

#[derive(Clone)]
pub struct Storage {
    node: Arc<StoreNode>,
}

impl Storage {
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node }
    }

    pub fn node(&self) -> &Arc<StoreNode> {
        &self.node
    }

    /// The key of one object.
    pub fn key(res: &Resource, namespace: Option<&str>, name: &str) -> Vec<u8> {
        match namespace.filter(|_| res.namespaced) {
            Some(ns) => format!("{REGISTRY_PREFIX}{}/{ns}/{name}", res.plural).into_bytes(),
            None => format!("{REGISTRY_PREFIX}{}/{name}", res.plural).into_bytes(),
        }
    }

    /// The prefix of every object of `res` (in `namespace`, when given).
    pub fn prefix(res: &Resource, namespace: Option<&str>) -> Vec<u8> {
        match namespace.filter(|_| res.namespaced) {
            Some(ns) => format!("{REGISTRY_PREFIX}{}/{ns}/", res.plural).into_bytes(),
            None => format!("{REGISTRY_PREFIX}{}/", res.plural).into_bytes(),
        }
    }

    pub async fn get(&self, key: &[u8]) -> ApiResult<Option<Stored>> {
        let resp = self.node.range(PbRangeRequest { key: key.to_vec(), ..Default::default() }).await?;
        resp.kvs.into_iter().next().map(decode).transpose()
    }

    /// Up to `limit` objects (0: all) under `prefix` with keys after `start_after`, read at
    /// `revision` (0: now, linearizably).
    pub async fn list(&self, prefix: &[u8], start_after: Option<&[u8]>, limit: i64, revision: i64) -> ApiResult<Page> {
        let key = match start_after {
            Some(k) => [k, b"\0"].concat(),
            None => prefix.to_vec(),
        };
        let req = PbRangeRequest { key, range_end: prefix_end(prefix), limit, revision, ..Default::default() };
        let resp = self.node.range(req).await?;
        let revision = resp.header.as_ref().map_or(0, |h| h.revision);
        let items = resp.kvs.into_iter().map(decode).collect::<ApiResult<Vec<_>>>()?;
        Ok(Page { items, revision, more: resp.more })
    }

    /// Create `object` at `key` if absent (and if `guard`, when given, exists).
    pub async fn create(&self, key: &[u8], object: &Value, guard: Option<&[u8]>) -> ApiResult<Result<Stored, Lost>> {
        let value = encode(object)?;
        let mut compare = vec![compare_create(key, EQUAL, 0)];
        let mut failure = vec![range_op(key)];
        if let Some(g) = guard {
            compare.push(compare_create(g, GREATER, 0));
            failure.push(range_op(g));
        }
        let txn = PbTxnRequest { compare, success: vec![put_op(key, value)], failure };
        let resp = self.node.txn(txn).await?;
        if resp.succeeded {
            return Ok(Ok(self.written(key, object, &resp.header)));
        }
        let mut ranges = resp.responses.into_iter().map(range_kvs);
        let exists = ranges.next().is_some_and(|kvs| !kvs.is_empty());
        Ok(Err(if exists { Lost::Exists } else { Lost::GuardMissing }))
    }

    /// Replace the object at `key` if its mod revision is still `expected`.
    pub async fn update(&self, key: &[u8], object: &Value, expected: i64) -> ApiResult<Result<Stored, Lost>> {
        let value = encode(object)?;
        let txn = PbTxnRequest {
            compare: vec![compare_mod(key, expected)],
            success: vec![put_op(key, value)],
            failure: vec![range_op(key)],
        };
        let resp = self.node.txn(txn).await?;
        if resp.succeeded {
            return Ok(Ok(self.written(key, object, &resp.header)));
        }
        Ok(Err(Lost::Changed(current(resp.responses)?)))
    }

    /// Delete the object at `key` if its mod revision is still `expected`; returns the
    /// revision of the deletion.
    pub async fn delete(&self, key: &[u8], expected: i64) -> ApiResult<Result<i64, Lost>> {
        let del = PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest {
                key: key.to_vec(),
                ..Default::default()
            })),
        };
        let txn = PbTxnRequest {
            compare: vec![compare_mod(key, expected)],
            success: vec![del],
            failure: vec![range_op(key)],
        };
        let resp = self.node.txn(txn).await?;
        if resp.succeeded {
            return Ok(Ok(resp.header.map_or(0, |h| h.revision)));
        }
        Ok(Err(Lost::Changed(current(resp.responses)?)))
    }

    /// Watch every key under `prefix` from `start_revision` (inclusive).
    pub fn watch(&self, prefix: &[u8], start_revision: i64) -> Watcher {
        self.node.watch(KeyRange::new(prefix, &prefix_end(prefix)), start_revision)
    }

    /// The store revision right now on this replica (not a linearizable read).
    pub fn current_revision(&self) -> i64 {
        self.node.current_revision()
    }

    fn written(&self, key: &[u8], object: &Value, header: &Option<flotilla_store::pb::PbResponseHeader>) -> Stored {
        let mod_revision = header.as_ref().map_or(0, |h| h.revision);
        let mut object = object.clone();
        set_resource_version(&mut object, mod_revision);
        Stored { key: key.to_vec(), object, mod_revision }
    }
}

/// Decode a stored key-value into an object with its resourceVersion.
pub fn decode(kv: PbKeyValue) -> ApiResult<Stored> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::Internal(format!("stored object {} is not JSON: {e}", String::from_utf8_lossy(&kv.key)))
    })?;
    set_resource_version(&mut object, kv.mod_revision);
    Ok(Stored { key: kv.key, object, mod_revision: kv.mod_revision })
}

fn encode(object: &Value) -> ApiResult<Vec<u8>> {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&object).map_err(|e| ApiError::Internal(format!("encoding object: {e}")))
}

pub fn set_resource_version(object: &mut Value, revision: i64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(revision.to_string()));
    }
}

fn compare_create(key: &[u8], result: i32, revision: i64) -> PbCompare {
    PbCompare {
        result,
        target: TARGET_CREATE,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(PbTargetUnion::CreateRevision(revision)),
    }
}

fn compare_mod(key: &[u8], revision: i64) -> PbCompare {
    PbCompare {
        result: EQUAL,
        target: TARGET_MOD,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(PbTargetUnion::ModRevision(revision)),
    }
}

fn put_op(key: &[u8], value: Vec<u8>) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestPut(PbPutRequest { key: key.to_vec(), value, ..Default::default() })),
    }
}

fn range_op(key: &[u8]) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestRange(PbRangeRequest { key: key.to_vec(), ..Default::default() })),
    }
}

fn range_kvs(op: flotilla_store::pb::PbResponseOp) -> Vec<PbKeyValue> {
    match op.response {
        Some(PbTxnOpResponse::ResponseRange(r)) => r.kvs,
        _ => Vec::new(),
    }
}

fn current(responses: Vec<flotilla_store::pb::PbResponseOp>) -> ApiResult<Option<Stored>> {
    responses.into_iter().flat_map(range_kvs).next().map(decode).transpose()
}
