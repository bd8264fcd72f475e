//! Asking the nodes how they are: etcd's `Status` from each node, the leader, and waiting
//! for a healthy cluster.
//!
//! Invariants: every call to a node is bounded by [`STATUS_TIMEOUT`], so a partitioned or
//! paused node slows a question down by at most that much and never hangs it; only nodes
//! whose process the harness believes running are asked.

use std::time::Duration;

use anyhow::{bail, Context};
use etcd_client::{Client, ConnectOptions};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Cluster, ProcState};

/// Bound on one Status call (connect included): well above a loopback round trip, well below
/// an election timeout, so a dead node is noticed quickly.
const STATUS_TIMEOUT: Duration = Duration::from_millis(1500);
/// Pause between two checks while waiting for health.
const POLL: Duration = Duration::from_millis(200);

/// One node's view, from etcd's `Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub member_id: u64,
    /// The member this node believes leads (0: none).
    pub leader: u64,
    pub raft_term: u64,
    pub raft_index: u64,
    pub is_learner: bool,
}

/// `Status` of the node at `url`, bounded by [`STATUS_TIMEOUT`].
pub async fn status(url: &str) -> anyhow::Result<NodeStatus> {
    let ask = async {
        let opts = ConnectOptions::new().with_connect_timeout(STATUS_TIMEOUT).with_timeout(STATUS_TIMEOUT);
        let mut client = Client::connect([url], Some(opts)).await?;
        client.status().await
    };
    let resp = tokio::time::timeout(STATUS_TIMEOUT, ask)
        .await
        .with_context(|| format!("status of {url}: timed out"))?
        .with_context(|| format!("status of {url}"))?;
    let member_id = resp.header().map(|h| h.member_id()).context("status without a header")?;
    Ok(NodeStatus {
        member_id,
        leader: resp.leader(),
        raft_term: resp.raft_term(),
        raft_index: resp.raft_index(),
        is_learner: resp.is_learner(),
    })
}

impl Cluster {
    /// Status of node `i`.
    pub async fn status(&self, i: usize) -> anyhow::Result<NodeStatus> {
        status(&self.node(i).client_url).await
    }

    /// Status of every running node, concurrently; `None` for nodes not running or not
    /// answering in time.
    pub async fn statuses(&self) -> Vec<Option<NodeStatus>> {
        let mut set = JoinSet::new();
        for i in 0..self.len() {
            let node = self.node(i);
            if node.state == ProcState::Running {
                set.spawn(async move { (i, status(&node.client_url).await.ok()) });
            }
        }
        let mut out = vec![None; self.len()];
        while let Some(joined) = set.join_next().await {
            if let Ok((i, s)) = joined {
                out[i] = s;
            }
        }
        out
    }

    /// The node that leads: among nodes that say they lead, the one with the highest term
    /// (an isolated old leader may still believe it leads, in an older term).
    pub async fn leader(&self) -> Option<usize> {
        leader_of(&self.statuses().await)
    }

    /// Wait until every running node answers and all name the same leader, which is one of
    /// them and not paused. Returns the leader's index.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let statuses = self.statuses().await;
            let last = match healthy_leader(self, &statuses) {
                Ok(leader) => return Ok(leader),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                bail!("cluster not healthy after {timeout:?}: {last:#}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn leader_of(statuses: &[Option<NodeStatus>]) -> Option<usize> {
    statuses
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.filter(|s| s.leader != 0 && s.leader == s.member_id).map(|s| (i, s.raft_term)))
        .max_by_key(|&(_, term)| term)
        .map(|(i, _)| i)
}

fn healthy_leader(cluster: &Cluster, statuses: &[Option<NodeStatus>]) -> anyhow::Result<usize> {
    for (i, s) in statuses.iter().enumerate() {
        if cluster.node(i).state == ProcState::Running && s.is_none() {
            bail!("{} does not answer", cluster.node(i).name);
        }
    }
    let leader = leader_of(statuses).context("no node leads")?;
    let leader_id = statuses[leader].expect("the leader answered").member_id;
    if let Some((i, s)) =
        statuses.iter().enumerate().find_map(|(i, s)| s.filter(|s| s.leader != leader_id).map(|s| (i, s)))
    {
        bail!("{} follows {:x}, not {:x}", cluster.node(i).name, s.leader, leader_id);
    }
    Ok(leader)
}
