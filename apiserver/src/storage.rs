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
//! - Secrets are sealed on the way in and opened on the way out when the storage has keys
//!   ([`crate::encryption`]): `encode`/`decode` are the only ways values enter and leave.
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

use crate::encryption::{open_with, Encryption};
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
    /// Create/update: this claim key (an allocated IP or port) is held by someone else.
    Claimed(Vec<u8>),
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
    /// Writes go to the local Raft node only, and only while it leads (see [`Storage::fenced`]).
    fenced: bool,
    /// Keys sealing Secrets at rest (none: stored as plain JSON).
    enc: Option<Arc<Encryption>>,
}

impl Storage {
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node, fenced: false, enc: None }
    }

    /// This storage sealing Secrets with `enc` (see [`crate::encryption`]).
    pub fn with_encryption(mut self, enc: Option<Arc<Encryption>>) -> Self {
        self.enc = enc;
        self
    }

    pub fn encryption(&self) -> Option<&Arc<Encryption>> {
        self.enc.as_ref()
    }

    /// Storage for leader-only components: every write is proposed on this replica only and
    /// fails once it no longer leads, never forwarded to another leader. Together with the
    /// CAS on every write this fences a deposed leader's controllers.
    pub fn fenced(node: Arc<StoreNode>) -> Self {
        Self { node, fenced: true, enc: None }
    }

    async fn txn(&self, req: PbTxnRequest) -> ApiResult<flotilla_store::pb::PbTxnResponse> {
        Ok(if self.fenced { self.node.txn_local(req).await? } else { self.node.txn(req).await? })
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
        resp.kvs.into_iter().next().map(|kv| self.decode(kv)).transpose()
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
        let items = resp.kvs.into_iter().map(|kv| self.decode(kv)).collect::<ApiResult<Vec<_>>>()?;
        Ok(Page { items, revision, more: resp.more })
    }

    /// Create `object` at `key` if absent (and if `guard`, when given, exists), together with
    /// every `claims` key (each must be absent; its value names `key`).
    pub async fn create(
        &self,
        key: &[u8],
        object: &Value,
        guard: Option<&[u8]>,
        claims: &[Vec<u8>],
    ) -> ApiResult<Result<Stored, Lost>> {
        let value = self.encode(key, object)?;
        let mut compare = vec![compare_create(key, EQUAL, 0)];
        let mut failure = vec![range_op(key)];
        if let Some(g) = guard {
            compare.push(compare_create(g, GREATER, 0));
            failure.push(range_op(g));
        }
        let mut success = vec![put_op(key, value)];
        for c in claims {
            compare.push(compare_create(c, EQUAL, 0));
            failure.push(range_op(c));
            success.push(put_op(c, key.to_vec()));
        }
        let resp = self.txn(PbTxnRequest { compare, success, failure }).await?;
        if resp.succeeded {
            return Ok(Ok(self.written(key, object, &resp.header)));
        }
        let mut found = resp.responses.into_iter().map(|r| !range_kvs(r).is_empty());
        if found.next() == Some(true) {
            return Ok(Err(Lost::Exists));
        }
        if guard.is_some() && found.next() == Some(false) {
            return Ok(Err(Lost::GuardMissing));
        }
        Ok(Err(claimed(claims, found)))
    }

    /// Replace the object at `key` if its mod revision is still `expected`, taking the
    /// `take` claim keys (each must be absent) and releasing the `release` ones.
    pub async fn update(
        &self,
        key: &[u8],
        object: &Value,
        expected: i64,
        take: &[Vec<u8>],
        release: &[Vec<u8>],
    ) -> ApiResult<Result<Stored, Lost>> {
        let value = self.encode(key, object)?;
        let mut compare = vec![compare_mod(key, expected)];
        let mut failure = vec![range_op(key)];
        let mut success = vec![put_op(key, value)];
        for c in take {
            compare.push(compare_create(c, EQUAL, 0));
            failure.push(range_op(c));
            success.push(put_op(c, key.to_vec()));
        }
        success.extend(release.iter().map(|k| delete_op(k)));
        let resp = self.txn(PbTxnRequest { compare, success, failure }).await?;
        if resp.succeeded {
            return Ok(Ok(self.written(key, object, &resp.header)));
        }
        let mut responses = resp.responses.into_iter();
        let now = responses.next().map(range_kvs).unwrap_or_default().into_iter().next();
        let now = now.map(|kv| self.decode(kv)).transpose()?;
        if now.as_ref().is_none_or(|s| s.mod_revision != expected) {
            return Ok(Err(Lost::Changed(now)));
        }
        Ok(Err(claimed(take, responses.map(|r| !range_kvs(r).is_empty()))))
    }

    /// Delete the object at `key` if its mod revision is still `expected`, releasing the
    /// `release` claim keys with it; returns the revision of the deletion.
    pub async fn delete(&self, key: &[u8], expected: i64, release: &[Vec<u8>]) -> ApiResult<Result<i64, Lost>> {
        let mut success = vec![delete_op(key)];
        success.extend(release.iter().map(|k| delete_op(k)));
        let txn = PbTxnRequest { compare: vec![compare_mod(key, expected)], success, failure: vec![range_op(key)] };
        let resp = self.txn(txn).await?;
        if resp.succeeded {
            return Ok(Ok(resp.header.map_or(0, |h| h.revision)));
        }
        let now = resp.responses.into_iter().flat_map(range_kvs).next();
        Ok(Err(Lost::Changed(now.map(|kv| self.decode(kv)).transpose()?)))
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

/// Decode a stored key-value (opened with `enc` when sealed) into an object with its
/// resourceVersion.
pub fn decode(enc: Option<&Encryption>, kv: PbKeyValue) -> ApiResult<Stored> {
    let where_ = || String::from_utf8_lossy(&kv.key).into_owned();
    let plain = open_with(enc, &kv.key, &kv.value)
        .map_err(|e| ApiError::Internal(format!("stored object {}: {e}", where_())))?;
    let mut object: Value = serde_json::from_slice(&plain)
        .map_err(|e| ApiError::Internal(format!("stored object {} is not JSON: {e}", where_())))?;
    set_resource_version(&mut object, kv.mod_revision);
    Ok(Stored { key: kv.key, object, mod_revision: kv.mod_revision })
}

impl Storage {
    pub fn decode(&self, kv: PbKeyValue) -> ApiResult<Stored> {
        decode(self.enc.as_deref(), kv)
    }

    /// The stored form of `object` at `key`: JSON without its resourceVersion, sealed if a
    /// Secret and keys are configured.
    fn encode(&self, key: &[u8], object: &Value) -> ApiResult<Vec<u8>> {
        let mut object = object.clone();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        let json = serde_json::to_vec(&object).map_err(|e| ApiError::Internal(format!("encoding object: {e}")))?;
        Ok(match &self.enc {
            Some(enc) => enc.seal(key, json),
            None => json,
        })
    }
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

fn delete_op(key: &[u8]) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest { key: key.to_vec(), ..Default::default() })),
    }
}

/// The first claim whose key turned out to exist (`held` says, per claim, in order).
fn claimed(claims: &[Vec<u8>], mut held: impl Iterator<Item = bool>) -> Lost {
    let taken = claims.iter().find(|_| held.next() == Some(true));
    Lost::Claimed(taken.or(claims.first()).cloned().unwrap_or_default())
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
