//! Test support: an in-process cluster of replicas on loopback, with links tests can cut.
//!
//! For tests only (this crate's and the crates built on it, such as the controllers'):
//! everything here panics on failure instead of returning errors, and timings are tuned
//! for fast elections.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::node::Bootstrap;
use crate::raft::network::LinkControl;
use crate::replica::Replica;
use crate::{ids, Config, Node, NodeId, StoreNode};
use tokio::net::TcpListener;
use tokio::time::Instant;

pub const TOKEN: &str = "test-cluster";

/// Fast timing so elections take well under a second.
pub fn config(name: &str, data_dir: PathBuf) -> Config {
    Config {
        name: name.into(),
        data_dir,
        heartbeat_interval: Duration::from_millis(50),
        election_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(3),
        cluster_token: TOKEN.into(),
        ..Config::default()
    }
}

pub struct Member {
    pub name: String,
    pub id: NodeId,
    pub peer_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub links: LinkControl,
    pub cfg: Config,
    pub replica: Option<Replica>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
}

pub fn peer_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

impl Cluster {
    /// Start `n` founding replicas; `tune` adjusts each one's config.
    pub async fn start(n: usize, tune: impl Fn(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut listeners = Vec::new();
        let mut members = Vec::new();
        for i in 0..n {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = l.local_addr().expect("addr");
            let name = format!("n{i}");
            let mut cfg = config(&name, dir.path().join(&name));
            tune(&mut cfg);
            members.push(Member {
                id: ids::member_id(&peer_url(addr), TOKEN),
                name,
                peer_addr: addr,
                data_dir: cfg.data_dir.clone(),
                links: LinkControl::new(),
                cfg,
                replica: None,
            });
            listeners.push(l);
        }
        let mut cluster = Self { dir, members };
        let map = cluster.founding_map();
        for (i, l) in listeners.into_iter().enumerate() {
            cluster.launch(i, l, Bootstrap::New(map.clone())).await;
        }
        cluster
    }

    pub fn founding_map(&self) -> BTreeMap<NodeId, Node> {
        self.members
            .iter()
            .map(|m| (m.id, Node { name: m.name.clone(), peer_url: peer_url(m.peer_addr), client_urls: vec![] }))
            .collect()
    }

    async fn launch(&mut self, i: usize, peer: TcpListener, bootstrap: Bootstrap) {
        let m = &mut self.members[i];
        let client = TcpListener::bind("127.0.0.1:0").await.expect("bind client");
        let client_url = format!("http://{}", client.local_addr().expect("client addr"));
        let me = Node { name: m.name.clone(), peer_url: peer_url(m.peer_addr), client_urls: vec![client_url] };
        let replica =
            Replica::start(m.cfg.clone(), me, bootstrap, peer, vec![client], m.links.clone(), Default::default())
                .await
                .expect("replica starts");
        m.replica = Some(replica);
    }

    /// Add a member object (not started) listening on a fresh port.
    pub async fn prepare_member(&mut self, name: &str) -> (usize, TcpListener) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let cfg = config(name, self.dir.path().join(name));
        self.members.push(Member {
            name: name.into(),
            id: ids::member_id(&peer_url(addr), TOKEN),
            peer_addr: addr,
            data_dir: cfg.data_dir.clone(),
            links: LinkControl::new(),
            cfg,
            replica: None,
        });
        (self.members.len() - 1, l)
    }

    pub async fn start_existing(&mut self, i: usize, peer: TcpListener) {
        self.launch(i, peer, Bootstrap::Existing).await;
    }

    pub fn node(&self, i: usize) -> &Arc<StoreNode> {
        &self.members[i].replica.as_ref().expect("replica is running").node
    }

    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len()).filter(|i| self.members[*i].replica.is_some()).collect()
    }

    /// Stop replica `i` (its data stays).
    pub async fn kill(&mut self, i: usize) {
        if let Some(r) = self.members[i].replica.take() {
            r.stop().await;
        }
    }

    /// Restart a stopped replica from its data directory.
    pub async fn restart(&mut self, i: usize) {
        let addr = self.members[i].peer_addr;
        let l =
            wait_for(
                Duration::from_secs(10),
                "peer port free again",
                || async move { TcpListener::bind(addr).await.ok() },
            )
            .await;
        let map = self.founding_map();
        self.launch(i, l, Bootstrap::New(map)).await;
    }

    /// Cut every link between `i` and the others, both ways.
    pub fn isolate(&self, i: usize) {
        for (j, m) in self.members.iter().enumerate() {
            if j != i {
                self.members[i].links.block(m.id);
                m.links.block(self.members[i].id);
            }
        }
    }

    pub fn heal(&self) {
        for m in &self.members {
            m.links.unblock_all();
        }
    }

    /// Wait until the live replicas among `among` agree on a leader that is one of them.
    pub async fn leader_among(&self, among: &[usize]) -> usize {
        wait_for(Duration::from_secs(15), "a leader agreed by the given replicas", || async {
            let leaders: Vec<Option<NodeId>> =
                among.iter().map(|i| self.node(*i).raft().metrics().borrow().current_leader).collect();
            let l = leaders[0]?;
            if leaders.iter().any(|x| *x != Some(l)) {
                return None;
            }
            among.iter().copied().find(|i| self.members[*i].id == l)
        })
        .await
    }

    pub async fn leader(&self) -> usize {
        self.leader_among(&self.live()).await
    }

    pub async fn stop_all(mut self) {
        for i in 0..self.members.len() {
            self.kill(i).await;
        }
    }
}

/// A one-member store under `dir`, waited on until it leads. A single member never dials a
/// peer: its peer URL only names it.
pub async fn solo(dir: &std::path::Path) -> Arc<StoreNode> {
    let cfg = Config {
        election_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(5),
        ..config("solo", dir.join("solo"))
    };
    let me = Node { name: "solo".into(), peer_url: "http://127.0.0.1:1".into(), client_urls: vec![] };
    let id = ids::member_id(&me.peer_url, &cfg.cluster_token);
    let members = BTreeMap::from([(id, me.clone())]);
    let node = StoreNode::open(cfg, me, Bootstrap::New(members), LinkControl::new()).await.expect("store opens");
    node.raft()
        .wait(Some(Duration::from_secs(20)))
        .current_leader(id, "the single member leads")
        .await
        .expect("leader");
    node
}

/// Poll `probe` until it yields a value; panic with `what` after `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
