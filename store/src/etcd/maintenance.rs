//! The etcd `Maintenance` service: Status, Alarm, Defragment, Snapshot, MoveLeader.
//!
//! - Alarm: GET reads the replicated alarm set linearizably; ACTIVATE and DEACTIVATE change
//!   it through Raft (`mvcc::alarm`). A member raises NOSPACE itself past its
//!   `--quota-backend-bytes` (`node::quota`).
//! - Status: `errors` lists "no leader" and every raised alarm, as etcd; `dbSize` is this
//!   member's state-machine database size, `dbSizeQuota` its quota (0: none).
//! - Defragment: this member only (etcdctl asks each endpoint), compacting every RocksDB
//!   column family so deleted and compacted records give their space back.
//! - MoveLeader: served by (forwarded to) the leader; see `node::transfer`.
//!
//! Hash, HashKV (corruption checks over bbolt's layout) and Downgrade are not supported and
//! answer `Unimplemented`.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::snapshot::Frames;
use super::status;
use crate::mvcc::alarm::alarm_name;
use crate::node::StoreNode;
use crate::pb::{
    PbAlarmMember, PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse, PbDowngradeRequest,
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

/// `AlarmRequest.AlarmAction`.
const ALARM_GET: i32 = 0;
const ALARM_ACTIVATE: i32 = 1;
const ALARM_DEACTIVATE: i32 = 2;

fn alarm_members(alarms: Vec<(u64, i32)>) -> Vec<PbAlarmMember> {
    alarms.into_iter().map(|(member_id, alarm)| PbAlarmMember { member_id, alarm }).collect()
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(&self, req: Request<PbAlarmRequest>) -> Result<Response<PbAlarmResponse>, Status> {
        let req = req.into_inner();
        let alarms = match req.action {
            ALARM_GET => self.node.alarm_list(req.alarm).await,
            ALARM_ACTIVATE => self.node.alarm_change(true, req.member_id, req.alarm).await,
            ALARM_DEACTIVATE => self.node.alarm_change(false, req.member_id, req.alarm).await,
            other => return Err(Status::invalid_argument(format!("etcdserver: unknown alarm action {other}"))),
        }
        .map_err(status)?;
        Ok(Response::new(PbAlarmResponse { header: Some(self.node.header()), alarms: alarm_members(alarms) }))
    }

    async fn status(&self, _req: Request<PbStatusRequest>) -> Result<Response<PbStatusResponse>, Status> {
        let s = self.node.status();
        let mut errors = Vec::new();
        if s.leader.is_none() {
            // As etcd: a member without a leader says so in `endpoint status`.
            errors.push("etcdserver: no leader".to_string());
        }
        for (member, alarm) in self.node.local_alarms(crate::mvcc::alarm::ALARM_NONE) {
            errors.push(format!("memberID:{member} alarm:{}", alarm_name(alarm)));
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
            db_size_quota: self.node.config().quota_bytes().map_or(0, |q| q as i64),
            downgrade_info: None,
        }))
    }

    async fn defragment(&self, _req: Request<PbDefragmentRequest>) -> Result<Response<PbDefragmentResponse>, Status> {
        self.node.defragment().await.map_err(status)?;
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

    async fn move_leader(&self, req: Request<PbMoveLeaderRequest>) -> Result<Response<PbMoveLeaderResponse>, Status> {
        self.node.move_leader(req.into_inner().target_id).await.map_err(status)?;
        Ok(Response::new(PbMoveLeaderResponse { header: Some(self.node.header()) }))
    }

    async fn downgrade(&self, _req: Request<PbDowngradeRequest>) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(unsupported("downgrade"))
    }
}
