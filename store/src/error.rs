//! The store's error type: the cases callers branch on.
//!
//! `StoreError` is what a single call returns; it never means the node must stop. A storage
//! failure inside Raft is reported by openraft as fatal and shuts the Raft node down, after
//! which every call answers [`StoreError::Stopped`].
//!
//! The etcd API maps these to gRPC statuses in exactly one place ([`crate::etcd::status`]).

use crate::types::{NodeId, Rejection};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The command was applied and deterministically refused (compacted, unknown lease...).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// This replica does not know a leader (election under way, or it is in a minority).
    #[error("no leader")]
    NoLeader,
    /// The request did not finish in time; it may or may not have been applied.
    #[error("request timed out")]
    Timeout,
    /// The leader is known but could not be reached to forward the request.
    #[error("leader {leader} unreachable: {reason}")]
    LeaderUnreachable { leader: NodeId, reason: String },
    /// The request is malformed; nothing was changed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is larger than [`crate::config::MAX_REQUEST_BYTES`].
    #[error("request is too large")]
    TooLarge,
    /// No member with that ID.
    #[error("member not found")]
    MemberNotFound,
    /// A membership change that Raft refused (for example promoting a learner that lags).
    #[error("membership change refused: {0}")]
    Membership(String),
    /// Local storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The Raft node has shut down.
    #[error("store stopped")]
    Stopped,
    /// A leader-only write ([`crate::node::StoreNode::txn_local`]) on a replica that does not
    /// lead (any more): it was not proposed.
    #[error("not the leader")]
    NotLeader,
    /// A leadership transfer to a member that cannot lead: unknown, a learner, or never
    /// started.
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    /// A leadership transfer did not complete in time; the cluster still has a leader
    /// (the old one, or whoever won an election meanwhile).
    #[error("request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
}

impl StoreError {
    /// A storage error from anything displayable.
    pub fn storage(e: impl std::fmt::Display) -> Self {
        StoreError::Storage(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
