//! Membership and status: etcd's Cluster API and `endpoint status` on top of openraft's
//! membership config.
//!
//! A member added through `MemberAdd` is known only by its peer URL until it starts; when it
//! does, it publishes its name and client URLs (a `SetNodes` membership change), as an etcd
//! member publishes its attributes.

use std::sync::Weak;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::StoreNode;
use crate::error::StoreError;
use crate::ids;
use crate::raft::forward::{ForwardRequest, ForwardResponse};
use crate::types::{Node, NodeId};

/// A learner may be promoted only once it has replicated at least this share of the leader's
/// log (etcd's `readyPercent`), so promoting it cannot stall the quorum.
pub const PROMOTE_READY_PERCENT: u64 = 90;

/// How often a started member checks that the cluster knows its name and client URLs.
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// What `endpoint status` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub leader: Option<NodeId>,
    pub raft_index: u64,
    pub raft_term: u64,
    pub applied_index: u64,
    pub is_learner: bool,
    /// The state-machine database's size in bytes (etcd's backend size; see `node::quota`).
    pub db_size: i64,
}

impl StoreNode {
    /// Members as this replica's membership config lists them (serializable).
    pub fn member_list(&self) -> Vec<Member> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let voters: Vec<NodeId> = m.membership().voter_ids().collect();
        m.membership()
            .nodes()
            .map(|(id, n)| Member {
                id: *id,
                name: n.name.clone(),
                peer_urls: vec![n.peer_url.clone()],
                client_urls: n.client_urls.clone(),
                is_learner: !voters.contains(id),
            })
            .collect()
    }

    /// Add a member by peer URL; a non-learner becomes a voter at once (as in etcd, the
    /// quorum grows immediately, so start the new member promptly).
    pub async fn member_add(&self, peer_url: &str, is_learner: bool) -> Result<Member, StoreError> {
        if !(peer_url.starts_with("http://") || peer_url.starts_with("https://")) {
            return Err(StoreError::InvalidArgument(format!("invalid peer URL {peer_url:?}")));
        }
        let id = ids::member_id(peer_url, &self.cfg.cluster_token);
        if self.member_list().iter().any(|m| m.peer_urls.iter().any(|u| u == peer_url)) {
            return Err(StoreError::InvalidArgument("Peer URLs already exists".into()));
        }
        let node = Node { name: String::new(), peer_url: peer_url.to_string(), client_urls: Vec::new() };
        self.membership_op(ForwardRequest::AddLearner { id, node: node.clone() }).await?;
        if !is_learner {
            self.membership_op(ForwardRequest::Promote { id, require_caught_up: false }).await?;
        }
        Ok(Member { id, name: String::new(), peer_urls: vec![node.peer_url], client_urls: Vec::new(), is_learner })
    }

    pub async fn member_promote(&self, id: NodeId) -> Result<(), StoreError> {
        match self.member_list().iter().find(|m| m.id == id) {
            None => Err(StoreError::MemberNotFound),
            Some(m) if !m.is_learner => Err(StoreError::InvalidArgument("can only promote a learner member".into())),
            Some(_) => self.membership_op(ForwardRequest::Promote { id, require_caught_up: true }).await,
        }
    }

    pub async fn member_remove(&self, id: NodeId) -> Result<(), StoreError> {
        if !self.member_list().iter().any(|m| m.id == id) {
            return Err(StoreError::MemberNotFound);
        }
        self.membership_op(ForwardRequest::Remove { id }).await
    }

    async fn membership_op(&self, req: ForwardRequest) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.cfg.request_timeout;
        self.on_leader(deadline, req, |r| matches!(r, ForwardResponse::Membership).then_some(())).await
    }

    /// On the leader: refuse to promote a learner that lags (or is unknown).
    pub(super) fn check_promotable(&self, id: NodeId) -> Result<(), StoreError> {
        let metrics = self.raft.metrics().borrow().clone();
        let last = metrics.last_log_index.unwrap_or(0);
        let matched = metrics.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten()).map(|l| l.index);
        if metrics.membership_config.membership().get_node(&id).is_none() {
            return Err(StoreError::MemberNotFound);
        }
        // A learner the leader has never heard from is not ready, however short the log.
        if matched.is_none_or(|m| m * 100 < last * PROMOTE_READY_PERCENT) {
            return Err(StoreError::Membership(
                "can only promote a learner member which is in sync with leader".into(),
            ));
        }
        Ok(())
    }

    pub fn status(&self) -> Status {
        let m = self.raft.metrics().borrow().clone();
        Status {
            leader: m.current_leader,
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            is_learner: !m.membership_config.membership().voter_ids().any(|v| v == self.id),
            db_size: self.db_size() as i64,
        }
    }
}

/// Keep the cluster's record of this member (name, client URLs) equal to what it was
/// started with.
pub(super) async fn publish_self(node: Weak<StoreNode>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(PUBLISH_INTERVAL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(node) = node.upgrade() else { return };
        let known = node.raft.metrics().borrow().membership_config.membership().get_node(&node.id).cloned();
        match known {
            Some(n) if n == node.me => continue,
            None => continue, // not (yet) a member
            Some(_) => {}
        }
        let req = ForwardRequest::SetNode { id: node.id, node: node.me.clone() };
        if let Err(e) = node.membership_op(req).await {
            tracing::debug!(error = %e, "publishing member attributes failed; will retry");
        }
    }
}
