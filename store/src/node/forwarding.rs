//! The leader side of every request that must run on the leader, whether it came from a
//! local client or was forwarded by a follower. Nothing here forwards again: a replica that
//! is not leader answers `NoLeader` and the caller re-resolves the leader. Everything that
//! makes Raft send AppendEntries passes the proposal gate, which a leadership transfer
//! closes (`node::transfer`). The one request served off the leader is `Campaign`, which a
//! transferring leader sends to its transferee.

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use tokio::time::Instant;

use super::{from_read_error, from_write_error, StoreNode};
use crate::error::StoreError;
use crate::raft::forward::{ForwardRequest, ForwardResponse};
use crate::raft::service::ForwardHandler;
use crate::types::{Node, NodeId};

impl ForwardHandler for StoreNode {
    async fn forward(&self, req: ForwardRequest) -> Result<ForwardResponse, StoreError> {
        self.handle_forward(req).await
    }
}

impl StoreNode {
    pub(super) async fn handle_forward(&self, req: ForwardRequest) -> Result<ForwardResponse, StoreError> {
        match req {
            ForwardRequest::WriteBatch(cmds) => {
                let (results, index) = super::batcher::propose_here(&self.raft, &self.gate, cmds).await?;
                Ok(ForwardResponse::Applied { results, index })
            }
            ForwardRequest::ReadIndex => {
                let _admitted = self.gate.enter()?;
                let (read, _applied) = self.raft.get_read_log_id().await.map_err(from_read_error)?;
                Ok(ForwardResponse::ReadIndex(read.map_or(0, |l| l.index)))
            }
            ForwardRequest::LeaseKeepAlive { id } => self.keep_alive_here(id),
            ForwardRequest::LeaseTimeToLive { id } => self.time_to_live_here(id),
            ForwardRequest::AddLearner { id, node } => {
                self.change(ChangeMembers::AddNodes(std::collections::BTreeMap::from([(id, node)]))).await?;
                Ok(ForwardResponse::Membership)
            }
            ForwardRequest::Promote { id, require_caught_up } => {
                if require_caught_up {
                    self.check_promotable(id)?;
                }
                let voters = std::collections::BTreeSet::from([id]);
                self.change(ChangeMembers::AddVoterIds(voters)).await?;
                Ok(ForwardResponse::Membership)
            }
            ForwardRequest::Remove { id } => {
                let m = self.raft.metrics().borrow().membership_config.clone();
                let set = std::collections::BTreeSet::from([id]);
                if m.membership().get_node(&id).is_none() {
                    return Err(StoreError::MemberNotFound);
                }
                if m.membership().voter_ids().any(|v| v == id) {
                    self.change(ChangeMembers::RemoveVoters(set.clone())).await?;
                }
                self.change(ChangeMembers::RemoveNodes(set)).await?;
                Ok(ForwardResponse::Membership)
            }
            ForwardRequest::SetNode { id, node } => {
                let nodes = std::collections::BTreeMap::from([(id, node)]);
                self.change(ChangeMembers::SetNodes(nodes)).await?;
                Ok(ForwardResponse::Membership)
            }
            ForwardRequest::MoveLeader { target } => {
                self.transfer_leadership(target).await?;
                Ok(ForwardResponse::LeaderMoved)
            }
            ForwardRequest::Campaign => self.campaign().await,
        }
    }
}

impl StoreNode {
    /// Commit a membership change. openraft refuses one while another is still uncommitted
    /// (members publishing their attributes can cause that at any time); such a change
    /// commits within a round trip, so wait for it and try again, within the request timeout.
    async fn change(&self, changes: ChangeMembers<NodeId, Node>) -> Result<(), StoreError> {
        let _admitted = self.gate.enter()?;
        let deadline = Instant::now() + self.cfg.request_timeout;
        loop {
            match self.raft.change_membership(changes.clone(), false).await {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                ))) if Instant::now() < deadline => {
                    tokio::time::sleep(MEMBERSHIP_RETRY).await;
                }
                Err(e) => return Err(from_write_error(e)),
            }
        }
    }
}

/// Pause before retrying a membership change refused because another is in progress.
const MEMBERSHIP_RETRY: std::time::Duration = std::time::Duration::from_millis(20);
