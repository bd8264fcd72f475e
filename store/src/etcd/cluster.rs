//! The etcd `Cluster` service: membership as the Raft configuration lists it.
//!
//! A member has exactly one peer URL (the Raft and forwarding endpoint). `MemberUpdate`
//! (changing a member's peer URLs) is not supported: remove the member and add it back.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status;
use crate::error::StoreError;
use crate::node::{Member, StoreNode};
use crate::pb::{
    PbClusterService, PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest, PbMemberListResponse,
    PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest, PbMemberRemoveResponse,
    PbMemberUpdateRequest, PbMemberUpdateResponse,
};

pub struct ClusterService {
    node: Arc<StoreNode>,
}

impl ClusterService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node }
    }

    fn members(&self) -> Vec<PbMember> {
        self.node.member_list().into_iter().map(to_pb).collect()
    }
}

fn to_pb(m: Member) -> PbMember {
    PbMember { id: m.id, name: m.name, peer_ur_ls: m.peer_urls, client_ur_ls: m.client_urls, is_learner: m.is_learner }
}

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(&self, req: Request<PbMemberAddRequest>) -> Result<Response<PbMemberAddResponse>, Status> {
        let req = req.into_inner();
        let url = match req.peer_ur_ls.as_slice() {
            [url] => url,
            [] => return Err(status(StoreError::InvalidArgument("given member URLs are invalid".into()))),
            _ => {
                return Err(status(StoreError::InvalidArgument(
                    "given member URLs are invalid: a member has exactly one peer URL".into(),
                )))
            }
        };
        let member = self.node.member_add(url, req.is_learner).await.map_err(status)?;
        Ok(Response::new(PbMemberAddResponse {
            header: Some(self.node.header()),
            member: Some(to_pb(member)),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        self.node.member_remove(req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(PbMemberRemoveResponse { header: Some(self.node.header()), members: self.members() }))
    }

    async fn member_update(
        &self,
        _req: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: member update is not supported by flotilla; remove the member and add it again",
        ))
    }

    /// `linearizable` (etcd 3.5+) is not honoured: the list is this replica's view of the
    /// committed membership, which is what etcd 3.4 serves.
    async fn member_list(&self, _req: Request<PbMemberListRequest>) -> Result<Response<PbMemberListResponse>, Status> {
        Ok(Response::new(PbMemberListResponse { header: Some(self.node.header()), members: self.members() }))
    }

    async fn member_promote(
        &self,
        req: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        self.node.member_promote(req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(PbMemberPromoteResponse { header: Some(self.node.header()), members: self.members() }))
    }
}
