//! The etcd `Maintenance` service: Status, Alarm, Defragment, Snapshot.
//!
//! Flotilla raises no alarms (RocksDB has no fixed quota to run out of), so Alarm always
//! answers an empty list; Defragment is a no-op because RocksDB compacts its files itself.
//! Hash, HashKV (corruption checks over bbolt's layout), MoveLeader and Downgrade are not
//! supported and answer `Unimplemented`.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::snapshot::Frames;
use super::status;
use crate::node::StoreNode;
use crate::pb::{
    PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse, PbDowngradeRequest,
    PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest, PbHashResponse, PbMaintenanceService,
    PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest, PbSnapshotResponse, PbStatusRequest,
    PbStatusResponse,
};

/// The etcd server version reported by `endpoint status`: the API level Flotilla implements
/// (3.4: watch progress requests, learners, no auth).
pub const ETCD_VERSION: &str = "3.4.0";

pub struct MaintenanceService {
    node: Arc<StoreNode>,
}

impl MaintenanceService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node }
    }
}

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("etcdserver: {what} is not supported by flotilla"))
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(&self, _req: Request<PbAlarmRequest>) -> Result<Response<PbAlarmResponse>, Status> {
        Ok(Response::new(PbAlarmResponse { header: Some(self.node.header()), alarms: Vec::new() }))
    }

    async fn status(&self, _req: Request<PbStatusRequest>) -> Result<Response<PbStatusResponse>, Status> {
        let s = self.node.status();
        let mut errors = Vec::new();
        if s.leader.is_none() {
            // As etcd: a member without a leader says so in `endpoint status`.
            errors.push("etcdserver: no leader".to_string());
        }
        Ok(Response::new(PbStatusResponse {
            header: Some(self.node.header()),
            version: ETCD_VERSION.to_string(),
            db_size: s.db_size,
            leader: s.leader.unwrap_or(0),
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            raft_applied_index: s.applied_index,
            errors,
            db_size_in_use: s.db_size,
            is_learner: s.is_learner,
            storage_version: String::new(),
            db_size_quota: 0,
            downgrade_info: None,
        }))
    }

    async fn defragment(&self, _req: Request<PbDefragmentRequest>) -> Result<Response<PbDefragmentResponse>, Status> {
        Ok(Response::new(PbDefragmentResponse { header: Some(self.node.header()) }))
    }

    async fn hash(&self, _req: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        Err(unsupported("hash"))
    }

    async fn hash_kv(&self, _req: Request<PbHashKvRequest>) -> Result<Response<PbHashKvResponse>, Status> {
        Err(unsupported("hashkv"))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<PbSnapshotResponse, Status>> + Send>>;

    async fn snapshot(&self, _req: Request<PbSnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        let archive = self.node.snapshot_archive().await.map_err(status)?;
        tracing::info!(bytes = archive.len(), "sending snapshot to a client");
        let frames = Frames::new(archive, self.node.header());
        Ok(Response::new(Box::pin(tokio_stream::iter(frames))))
    }

    async fn move_leader(&self, _req: Request<PbMoveLeaderRequest>) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(unsupported("move-leader"))
    }

    async fn downgrade(&self, _req: Request<PbDowngradeRequest>) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(unsupported("downgrade"))
    }
}
