//! Requests a follower forwards to the leader over the peer gRPC service, and their answers.
//!
//! Only the leader may propose, confirm a read index, or renew a lease (lease expiry lives in
//! the leader's memory, as in etcd). A follower that receives such a request from a client
//! sends it here to the leader it knows; the leader handles it as if a client had asked it.
//! One request goes the other way: during a leadership transfer the leader asks the
//! transferee to `Campaign` (see `node::transfer`).
//!
//! New variants go at the end of each enum: bincode names variants by index, and replicas of
//! different versions talk to each other during a rolling upgrade.

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
    /// Hand leadership to `target` (etcd's MoveLeader); answered once `target` leads.
    MoveLeader { target: NodeId },
    /// Sent by the leader to a transferee, not to the leader: campaign now.
    Campaign,
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
    /// The asked member leads.
    LeaderMoved,
    /// The transferee has started a campaign.
    Campaigning,
}
