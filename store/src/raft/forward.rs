//! Requests a follower forwards to the leader over the peer gRPC service, and their answers.
//!
//! Only the leader may propose, confirm a read index, or renew a lease (lease expiry lives in
//! the leader's memory, as in etcd). A follower that receives such a request from a client
//! sends it here to the leader it knows; the leader handles it as if a client had asked it.

use serde::{Deserialize, Serialize};

use crate::types::{Command, CommandResult, Node, NodeId};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Propose commands (grouped by the follower) as one log entry and wait until applied.
    WriteBatch(Vec<Command>),
    /// Confirm leadership with a quorum and return the index a linearizable read must wait for.
    ReadIndex,
    /// Renew a lease; answers the TTL granted, or `LeaseNotFound`.
    LeaseKeepAlive { id: i64 },
    /// Remaining TTL of a lease as the leader's lessor sees it.
    LeaseTimeToLive { id: i64 },
    /// Add a learner.
    AddLearner { id: NodeId, node: Node },
    /// Make a learner a voter; with `require_caught_up`, only if it has replicated most of
    /// the log (etcd's MemberPromote), without it at once (etcd's MemberAdd of a voter).
    Promote { id: NodeId, require_caught_up: bool },
    /// Remove a member (voter or learner).
    Remove { id: NodeId },
    /// Replace the stored attributes (name, client URLs) of a member.
    SetNode { id: NodeId, node: Node },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardResponse {
    /// One result per command of a `WriteBatch`, and the log index they were applied at.
    Applied {
        results: Vec<CommandResult>,
        index: u64,
    },
    ReadIndex(u64),
    /// Remaining (for keep-alive: granted) TTL in seconds and the granted TTL.
    Lease {
        ttl: i64,
        granted_ttl: i64,
    },
    /// A membership change was committed.
    Membership,
}
