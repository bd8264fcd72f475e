//! The etcd `KV` service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Validation mirrors etcd's `v3rpc/key.go` (empty keys, `ignore_*` misuse, empty txn
//! operations) so a bad request is refused before it reaches Raft; everything else,
//! including duplicate keys in a txn and revision checks, is the node's.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{check_size, empty_key, status};
use crate::error::StoreError;
use crate::node::StoreNode;
use crate::pb::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbKvService, PbPutRequest,
    PbPutResponse, PbRangeRequest, PbRangeResponse, PbRangeStreamResponse, PbTxnOpRequest, PbTxnRequest, PbTxnResponse,
};
use crate::types::Rejection;

pub struct KvService {
    node: Arc<StoreNode>,
}

impl KvService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node }
    }

    async fn range_checked(&self, req: PbRangeRequest) -> Result<PbRangeResponse, Status> {
        check_size(&req)?;
        check_range(&req)?;
        self.node.range(req).await.map_err(status)
    }
}

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(&self, req: Request<PbRangeRequest>) -> Result<Response<PbRangeResponse>, Status> {
        self.range_checked(req.into_inner()).await.map(Response::new)
    }

    type RangeStreamStream = tokio_stream::Once<Result<PbRangeStreamResponse, Status>>;

    /// Newer etcd's chunked Range: served as a single chunk holding the whole response.
    async fn range_stream(&self, req: Request<PbRangeRequest>) -> Result<Response<Self::RangeStreamStream>, Status> {
        let resp = self.range_checked(req.into_inner()).await?;
        let chunk = PbRangeStreamResponse { range_response: Some(resp) };
        Ok(Response::new(tokio_stream::once(Ok(chunk))))
    }

    async fn put(&self, req: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let req = req.into_inner();
        check_size(&req)?;
        check_put(&req)?;
        self.node.put(req).await.map(Response::new).map_err(status)
    }

    async fn delete_range(&self, req: Request<PbDeleteRequest>) -> Result<Response<PbDeleteResponse>, Status> {
        let req = req.into_inner();
        check_size(&req)?;
        check_delete(&req)?;
        self.node.delete_range(req).await.map(Response::new).map_err(status)
    }

    async fn txn(&self, req: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let req = req.into_inner();
        check_size(&req)?;
        check_txn(&req)?;
        self.node.txn(req).await.map(Response::new).map_err(status)
    }

    /// `physical` needs no extra wait: the node answers once the compaction is applied, and
    /// applying it removes the old records from RocksDB in the same write.
    async fn compact(&self, req: Request<PbCompactionRequest>) -> Result<Response<PbCompactionResponse>, Status> {
        let header = self.node.compact(req.into_inner().revision).await.map_err(status)?;
        Ok(Response::new(PbCompactionResponse { header: Some(header) }))
    }
}

fn check_range(r: &PbRangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(empty_key());
    }
    Ok(())
}

fn check_put(r: &PbPutRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(empty_key());
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(status(StoreError::InvalidArgument("value is provided".into())));
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(status(StoreError::InvalidArgument("lease is provided".into())));
    }
    Ok(())
}

fn check_delete(r: &PbDeleteRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(empty_key());
    }
    Ok(())
}

/// etcd's `checkTxnRequest`: compare keys and every operation, nested txns included; an
/// operation with no request answers "key not found" as etcd does. Op-count and duplicate
/// key checks are the node's (`check_txn_request`).
fn check_txn(r: &PbTxnRequest) -> Result<(), Status> {
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(empty_key());
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(PbTxnOpRequest::RequestRange(x)) => check_range(x)?,
            Some(PbTxnOpRequest::RequestPut(x)) => check_put(x)?,
            Some(PbTxnOpRequest::RequestDeleteRange(x)) => check_delete(x)?,
            Some(PbTxnOpRequest::RequestTxn(x)) => check_txn(x)?,
            None => return Err(status(Rejection::KeyNotFound.into())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{PbCompare, PbTxnRequestOp};

    fn put_op(key: &[u8]) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestPut(PbPutRequest { key: key.to_vec(), ..Default::default() })),
        }
    }

    #[test]
    fn txn_validation_follows_etcd() {
        let ok = PbTxnRequest { success: vec![put_op(b"a")], ..Default::default() };
        assert!(check_txn(&ok).is_ok());

        let empty_put = PbTxnRequest { failure: vec![put_op(b"")], ..Default::default() };
        assert_eq!(check_txn(&empty_put).unwrap_err().message(), "etcdserver: key is not provided");

        let empty_compare = PbTxnRequest { compare: vec![PbCompare::default()], ..Default::default() };
        assert_eq!(check_txn(&empty_compare).unwrap_err().message(), "etcdserver: key is not provided");

        let no_op = PbTxnRequest { success: vec![PbTxnRequestOp { request: None }], ..Default::default() };
        assert_eq!(check_txn(&no_op).unwrap_err().message(), "etcdserver: key not found");

        let nested = PbTxnRequest {
            success: vec![PbTxnRequestOp { request: Some(PbTxnOpRequest::RequestTxn(empty_put)) }],
            ..Default::default()
        };
        assert!(check_txn(&nested).is_err());
    }

    #[test]
    fn put_validation_follows_etcd() {
        let p = PbPutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ignore_value: true, ..Default::default() };
        assert_eq!(check_put(&p).unwrap_err().message(), "etcdserver: value is provided");
        let p = PbPutRequest { key: b"k".to_vec(), lease: 7, ignore_lease: true, ..Default::default() };
        assert_eq!(check_put(&p).unwrap_err().message(), "etcdserver: lease is provided");
    }
}
