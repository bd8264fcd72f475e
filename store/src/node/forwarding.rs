//! The leader side of every request that must run on the leader, whether it came from a
//! local client or was forwarded by a follower. Nothing here forwards again: a replica that
//! is not leader answers `NoLeader` and the caller re-resolves the leader.

use openraft::ChangeMembers;

use super::{from_read_error, from_write_error, StoreNode};
use crate::error::StoreError;
use crate::raft::forward::{ForwardRequest, ForwardResponse};
use crate::raft::service::ForwardHandler;

impl ForwardHandler for StoreNode {
    async fn forward(&self, req: ForwardRequest) -> Result<ForwardResponse, StoreError> {
        self.handle_forward(req).await
    }
}

impl StoreNode {
    pub(super) async fn handle_forward(&self, req: ForwardRequest) -> Result<ForwardResponse, StoreError> {
        match req {
            ForwardRequest::WriteBatch(cmds) => {
                let (results, index) = super::batcher::propose_here(&self.raft, cmds).await?;
                Ok(ForwardResponse::Applied { results, index })
            }
            ForwardRequest::ReadIndex => {
                let (read, _applied) = self.raft.get_read_log_id().await.map_err(from_read_error)?;
                Ok(ForwardResponse::ReadIndex(read.map_or(0, |l| l.index)))
            }
            ForwardRequest::LeaseKeepAlive { id } => self.keep_alive_here(id),
            ForwardRequest::LeaseTimeToLive { id } => self.time_to_live_here(id),
            ForwardRequest::AddLearner { id, node } => {
                self.raft.add_learner(id, node, false).await.map_err(from_write_error)?;
                Ok(ForwardResponse::Membership)
            }
            ForwardRequest::Promote { id, require_caught_up } => {
                if require_caught_up {
                    self.check_promotable(id)?;
                }
                let voters = std::collections::BTreeSet::from([id]);
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(voters), false)
                    .await
                    .map_err(from_write_error)?;
                Ok(ForwardResponse::Membership)
            }
            ForwardRequest::Remove { id } => {
                let m = self.raft.metrics().borrow().membership_config.clone();
                let set = std::collections::BTreeSet::from([id]);
                if m.membership().get_node(&id).is_none() {
                    return Err(StoreError::MemberNotFound);
                }
                if m.membership().voter_ids().any(|v| v == id) {
                    self.raft
                        .change_membership(ChangeMembers::RemoveVoters(set.clone()), false)
                        .await
                        .map_err(from_write_error)?;
                }
                self.raft.change_membership(ChangeMembers::RemoveNodes(set), false).await.map_err(from_write_error)?;
                Ok(ForwardResponse::Membership)
            }
            ForwardRequest::SetNode { id, node } => {
                let nodes = std::collections::BTreeMap::from([(id, node)]);
                self.raft.change_membership(ChangeMembers::SetNodes(nodes), false).await.map_err(from_write_error)?;
                Ok(ForwardResponse::Membership)
            }
        }
    }
}
