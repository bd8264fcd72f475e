//! The etcd `Lease` service.
//!
//! Keep-alive is a bidirectional stream handled by one task per stream: requests are
//! renewed one at a time, in order, and each answer goes out before the next request is
//! read, as etcd's `leaseKeepAlive` loop. A lease that does not exist (or has expired) is
//! answered with TTL 0, not an error; any other failure ends the stream with its status
//! (the client opens a new stream).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{check_leader, status};
use crate::error::StoreError;
use crate::node::StoreNode;
use crate::pb::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse, PbLeaseLeasesRequest,
    PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse, PbLeaseService, PbLeaseStatus,
    PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use crate::types::Rejection;

/// Keep-alive answers queued for a client that is slow to read. Each answer is produced
/// only after the previous request was handled, so a small buffer suffices; when it is
/// full the stream stops reading requests until the client catches up.
const KEEP_ALIVE_BUFFER: usize = 16;

pub struct LeaseService {
    node: Arc<StoreNode>,
}

impl LeaseService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node }
    }
}

type KeepAliveItem = Result<PbLeaseKeepAliveResponse, Status>;

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(&self, req: Request<PbLeaseGrantRequest>) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let req = req.into_inner();
        let (id, ttl) = self.node.lease_grant(req.id, req.ttl).await.map_err(status)?;
        Ok(Response::new(PbLeaseGrantResponse { header: Some(self.node.header()), id, ttl, error: String::new() }))
    }

    async fn lease_revoke(
        &self,
        req: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        self.node.lease_revoke(req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(PbLeaseRevokeResponse { header: Some(self.node.header()) }))
    }

    type LeaseKeepAliveStream = ReceiverStream<KeepAliveItem>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        check_leader(&req, &self.node)?;
        let (tx, rx) = mpsc::channel(KEEP_ALIVE_BUFFER);
        tokio::spawn(keep_alive_loop(self.node.clone(), req.into_inner(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    /// An unknown lease answers TTL -1 rather than an error, as etcd.
    async fn lease_time_to_live(
        &self,
        req: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let req = req.into_inner();
        let info = self.node.lease_time_to_live(req.id, req.keys).await.map_err(status)?;
        Ok(Response::new(PbLeaseTimeToLiveResponse {
            header: Some(self.node.header()),
            id: info.id,
            ttl: info.ttl,
            granted_ttl: info.granted_ttl,
            keys: info.keys,
        }))
    }

    async fn lease_leases(
        &self,
        _req: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        let leases = self.node.lease_list().into_iter().map(|id| PbLeaseStatus { id }).collect();
        Ok(Response::new(PbLeaseLeasesResponse { header: Some(self.node.header()), leases }))
    }
}

/// Serve one keep-alive stream until the client closes it or goes away.
async fn keep_alive_loop(
    node: Arc<StoreNode>,
    mut requests: Streaming<PbLeaseKeepAliveRequest>,
    out: mpsc::Sender<KeepAliveItem>,
) {
    loop {
        let next = tokio::select! {
            next = requests.message() => next,
            () = out.closed() => return,
        };
        let req = match next {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "lease keep-alive stream ended");
                return;
            }
        };
        let answer = renew(&node, req.id).await;
        let last = answer.is_err();
        if out.send(answer).await.is_err() || last {
            return;
        }
    }
}

/// One renewal. The header is taken before renewing, as etcd does, so its revision is
/// never later than the renewal: a client cannot see a lease revoked at revision N
/// renewed "at" N+1.
async fn renew(node: &StoreNode, id: i64) -> KeepAliveItem {
    let header = node.header();
    let ttl = match node.lease_keep_alive(id).await {
        Ok(ttl) => ttl,
        Err(StoreError::Rejected(Rejection::LeaseNotFound)) => 0,
        Err(e) => return Err(status(e)),
    };
    Ok(PbLeaseKeepAliveResponse { header: Some(header), id, ttl })
}
