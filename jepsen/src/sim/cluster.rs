//! The simulated replicas: real [`StoreNode`]s (Raft, RocksDB log and state machine, batcher,
//! read index, forwarding) on the [`SimNet`], crashed and restarted in place.
//!
//! A crash takes the host off the network at once (connections refused, replies in flight
//! lost) and stops the node's Raft core and tasks; the restart reopens the same data
//! directory, as `flotilla server` does after a `kill -9`. RocksDB keeps everything written
//! before the crash, synced or not: losing un-synced writes needs a faulty disk layer that the
//! simulation does not have (docs/JEPSEN.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use flotilla_store::node::Bootstrap;
use flotilla_store::raft::network::LinkControl;
use flotilla_store::{ids, Config, Node, NodeId, StoreError, StoreNode};

use super::net::SimNet;

/// A crashed node's files stay locked until its last in-flight call lets go of it; a restart
/// retries the open this often, this many times.
const REOPEN_PAUSE: Duration = Duration::from_millis(250);
const REOPEN_ATTEMPTS: u32 = 200;

/// One replica: its identity, its data directory, and the running node while it is up.
pub struct Replica {
    pub name: String,
    pub url: String,
    pub id: NodeId,
    dir: PathBuf,
    pub node: Option<Arc<StoreNode>>,
}

pub struct SimCluster {
    pub net: SimNet,
    pub replicas: Vec<Replica>,
    members: BTreeMap<NodeId, Node>,
    template: Config,
}

impl SimCluster {
    /// Start `n` founding replicas with data under `root`, on `net`.
    pub async fn start(n: usize, root: &Path, net: SimNet, template: Config) -> anyhow::Result<Self> {
        let mut replicas = Vec::new();
        let mut members = BTreeMap::new();
        for i in 1..=n {
            let (name, url) = (format!("n{i}"), format!("sim://n{i}"));
            let id = ids::member_id(&url, &template.cluster_token);
            net.add_host(&url, id);
            members.insert(id, Node { name: name.clone(), peer_url: url.clone(), client_urls: vec![] });
            replicas.push(Replica { dir: root.join(&name), name, url, id, node: None });
        }
        let mut cluster = Self { net, replicas, members, template };
        for i in 0..n {
            cluster.restart(i).await?;
        }
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// The running node of replica `i`, if it is up.
    pub fn node(&self, i: usize) -> Option<Arc<StoreNode>> {
        self.replicas[i].node.clone()
    }

    /// Crash replica `i` (nothing if it is down).
    pub async fn crash(&mut self, i: usize) {
        let replica = &mut self.replicas[i];
        self.net.down(&replica.url);
        if let Some(node) = replica.node.take() {
            node.shutdown().await;
        }
    }

    /// Start replica `i` from its data directory (nothing if it is up).
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.replicas[i].node.is_some() {
            return Ok(());
        }
        let replica = &self.replicas[i];
        let cfg = Config { name: replica.name.clone(), data_dir: replica.dir.clone(), ..self.template.clone() };
        let me = self.members[&replica.id].clone();
        let mut attempt = 0;
        let node = loop {
            let opened = StoreNode::open_with_transport(
                cfg.clone(),
                me.clone(),
                Bootstrap::New(self.members.clone()),
                LinkControl::new(),
                Arc::new(self.net.clone()),
            )
            .await;
            match opened {
                Ok(node) => break node,
                Err(StoreError::Storage(e)) if e.contains("lock") && attempt < REOPEN_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(REOPEN_PAUSE).await;
                }
                Err(e) => return Err(e).with_context(|| format!("opening {}", replica.name)),
            }
        };
        self.net.up(&replica.url, &node);
        self.replicas[i].node = Some(node);
        Ok(())
    }

    /// Stop every node.
    pub async fn shutdown(&mut self) {
        for i in 0..self.replicas.len() {
            self.crash(i).await;
        }
    }
}
