//! `flotilla-store`: the Raft-replicated key-value store that takes etcd's place inside each
//! Flotilla control-plane replica.
//!
//! Layers, bottom up:
//! - [`mvcc`]: the deterministic MVCC key space with etcd's rules (revisions, txn, compaction,
//!   leases as data). Pure apply logic over a RocksDB instance; no clock, no randomness.
//! - [`raft`]: openraft glue — the RocksDB log store, the state machine that drives `mvcc`,
//!   snapshots as RocksDB checkpoints, and the tonic transport between replicas.
//! - [`watch`]: the watch hub fed by apply; watchers catch up from history and never block apply.
//! - [`lease`]: the leader-only lessor that decides expiry and proposes revokes.
//! - [`node`]: [`node::StoreNode`], the handle everything else uses: linearizable reads, writes
//!   (forwarded to the leader when needed), watches, leases, membership.
//! - [`etcd`]: the etcd v3 gRPC services on top of `StoreNode`.

pub mod config;
pub mod determinism;
pub mod error;
pub mod etcd;
pub mod ids;
pub mod lease;
pub mod metrics;
pub mod mvcc;
pub mod node;
pub mod raft;
pub mod recovery;
pub mod replica;
pub mod testing;
pub mod tls;
pub mod types;
pub mod watch;
pub mod wire;

pub use config::Config;
pub use error::StoreError;
pub use node::StoreNode;
pub use types::{Command, CommandResult, Node, NodeId, TypeConfig};

/// Re-export of the etcd v3 protobuf types the store speaks, so dependants need not name the
/// `etcd-client` crate.
pub use etcd_client::proto as pb;
