//! The openraft type configuration and the replicated command set.
//!
//! Every mutating etcd request becomes exactly one [`Command`] in the Raft log. Applying a
//! command is deterministic: the same log yields the same revisions and results on every
//! replica. Decisions that need a clock or randomness (lease IDs, lease expiry) are made by
//! the proposer before the command enters the log.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::pb::{PbDeleteRequest, PbDeleteResponse, PbPutRequest, PbPutResponse, PbTxnRequest, PbTxnResponse};

/// A replica's Raft ID; also its etcd member ID (see [`crate::ids`]).
pub type NodeId = u64;

/// What the cluster knows about a member; stored in the Raft membership config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Human name (`--name`); empty for a member added but not yet started.
    pub name: String,
    /// URL other replicas use for Raft and forwarding (`--initial-advertise-peer-urls`).
    pub peer_url: String,
    /// URLs clients use for the etcd API (`--advertise-client-urls`); empty until started.
    pub client_urls: Vec<String>,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_url)
    }
}

/// One replicated mutation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Put(#[serde(with = "crate::wire")] PbPutRequest),
    DeleteRange(#[serde(with = "crate::wire")] PbDeleteRequest),
    Txn(#[serde(with = "crate::wire")] PbTxnRequest),
    /// Drop history older than `revision`.
    Compact {
        revision: i64,
    },
    /// Create a lease; the ID was chosen by the proposer.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    /// Delete a lease and every key attached to it, in one revision.
    LeaseRevoke {
        id: i64,
    },
    /// Several client commands proposed as one log entry (group commit); applied in order,
    /// each with its own revision, exactly as if they were consecutive entries. Never nested.
    Batch(Vec<Command>),
    /// Raise or clear an alarm of one member (etcd's `AlarmRequest` ACTIVATE/DEACTIVATE):
    /// replicated so that every replica refuses the same writes from the same log index on.
    Alarm {
        activate: bool,
        member: NodeId,
        alarm: i32,
    },
}

/// Why an apply refused a command. Deterministic: every replica refuses the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("mvcc: required revision has been compacted")]
    Compacted { compact_revision: i64 },
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("key not found")]
    KeyNotFound,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// A malformed request that reached the log (callers validate first; apply must still
    /// refuse it the same way everywhere rather than fail).
    #[error("{0}")]
    Invalid(String),
    /// A write that adds data while the NOSPACE alarm is raised (see [`crate::mvcc::alarm`]).
    #[error("mvcc: database space exceeded")]
    NoSpace,
}

/// The result of applying one log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Blank and membership entries.
    None,
    Put(#[serde(with = "crate::wire")] PbPutResponse),
    DeleteRange(#[serde(with = "crate::wire")] PbDeleteResponse),
    Txn(#[serde(with = "crate::wire")] PbTxnResponse),
    /// Compaction done; the store revision at that point.
    Compact {
        revision: i64,
    },
    LeaseGrant {
        id: i64,
        ttl: i64,
        revision: i64,
    },
    LeaseRevoke {
        revision: i64,
    },
    Rejected(Rejection),
    /// One result per command of a [`Command::Batch`], in order.
    Batch(Vec<CommandResult>),
    /// The alarms an [`Command::Alarm`] changed, as `(member, alarm)` (empty: nothing to do).
    Alarm(Vec<(NodeId, i32)>),
}

openraft::declare_raft_types!(
    /// Flotilla's openraft types: snapshots travel as an in-memory archive of the checkpoint.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = crate::determinism::Runtime,
);

/// The Raft handle type.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log ID.
pub type LogId = openraft::LogId<NodeId>;
/// The storage error type.
pub type StorageError = openraft::StorageError<NodeId>;
/// Stored membership.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
