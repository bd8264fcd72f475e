//! This replica's store in the process's Prometheus metrics (`flotilla_metrics::store`):
//! Raft's term, role, leader changes and indexes follow openraft's metrics channel; the
//! database size and the open watchers are read at each scrape. Proposal latency and
//! failures, and snapshot builds, are counted where they happen (`node`, `raft`).
//!
//! One replica per process: the gauges are process-wide. In-process test clusters and the
//! simulation do not call [`export`].

use std::sync::{Arc, Weak};

use openraft::ServerState;
use tokio::task::JoinHandle;

use crate::node::StoreNode;
use crate::types::NodeId;

/// Follow `node`'s Raft metrics into the process's gauges until the node shuts down, and
/// read its database size and watchers at each scrape.
pub fn export(node: &Arc<StoreNode>) -> JoinHandle<()> {
    let weak: Weak<StoreNode> = Arc::downgrade(node);
    flotilla_metrics::on_scrape(move || {
        if let Some(node) = weak.upgrade() {
            let m = flotilla_metrics::store();
            m.db_size_bytes.set(node.status().db_size);
            m.watchers.set(node.watcher_count() as i64);
        }
    });
    let mut rx = node.raft().metrics();
    tokio::spawn(async move {
        let m = flotilla_metrics::store();
        let mut leader: Option<NodeId> = None;
        loop {
            {
                let r = rx.borrow_and_update();
                m.raft_term.set(r.current_term as i64);
                m.raft_is_leader.set(i64::from(r.state == ServerState::Leader));
                m.raft_last_log_index.set(r.last_log_index.unwrap_or(0) as i64);
                m.raft_applied_index.set(r.last_applied.map_or(0, |l| l.index) as i64);
                if let Some(commit) = commit_index(&r) {
                    m.raft_commit_index.set(commit as i64);
                }
                if r.current_leader.is_some() && r.current_leader != leader {
                    if leader.is_some() {
                        m.raft_leader_changes.inc();
                    }
                    leader = r.current_leader;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
}

/// On the leader: the highest index a majority of voters hold (the leader's own last log
/// counts as matched). Elsewhere `None`: a follower learns it only with the next append.
fn commit_index(r: &openraft::RaftMetrics<NodeId, crate::types::Node>) -> Option<u64> {
    let replication = r.replication.as_ref()?;
    let mut matched: Vec<u64> = r
        .membership_config
        .membership()
        .voter_ids()
        .map(|id| {
            if id == r.id {
                r.last_log_index.unwrap_or(0)
            } else {
                replication.get(&id).copied().flatten().map_or(0, |l| l.index)
            }
        })
        .collect();
    if matched.is_empty() {
        return None;
    }
    matched.sort_unstable_by(|a, b| b.cmp(a));
    Some(matched[matched.len() / 2])
}
