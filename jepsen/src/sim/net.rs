//! The simulated network: the store's peer [`Transport`] replaced by in-process delivery with
//! seeded delay, loss, partitions and dead hosts.
//!
//! One call is a request and a reply, each crossing the network after a delay drawn from the
//! seed. Like TCP under gRPC, the network never duplicates or reorders within a call; what it
//! does is lose things:
//! - a call to a host that is down fails fast with `UNAVAILABLE` ("connection refused"): it
//!   was never delivered;
//! - a request dropped (loss, or a cut link at send or arrival) is never delivered and the
//!   caller waits out its deadline (a black hole);
//! - a reply dropped (loss, or a link cut while the server worked) leaves the request applied
//!   and the caller timing out: the outcome the caller cannot know.
//!
//! Invariants: no call outlives its deadline; a message crosses a link only if the link is
//! up when it is sent and when it arrives; the delivered request is served by exactly the
//! code the gRPC server runs ([`PeerService::handle`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use flotilla_store::raft::network::{CallError, Rpc, Transport};
use flotilla_store::raft::service::proto::Blob;
use flotilla_store::raft::service::PeerService;
use flotilla_store::{NodeId, StoreNode};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the network behaves when no fault is active.
#[derive(Debug, Clone)]
pub struct NetOptions {
    /// One-way delay of a message, drawn uniformly.
    pub delay: std::ops::Range<Duration>,
    /// Chance that one message (request or reply) is lost.
    pub loss: f64,
}

impl Default for NetOptions {
    fn default() -> Self {
        Self { delay: Duration::from_micros(200)..Duration::from_millis(5), loss: 0.01 }
    }
}

/// The network shared by every simulated replica (cheap to clone).
#[derive(Clone)]
pub struct SimNet {
    inner: Arc<Mutex<State>>,
}

struct State {
    rng: StdRng,
    base: NetOptions,
    /// Loss in force now (raised by a loss fault).
    loss: f64,
    /// Extra delay in force now (a slow-network fault).
    extra_delay: Duration,
    /// Peer URL -> the replica's ID and, while it is up, its service.
    hosts: BTreeMap<String, Host>,
    /// Cut links, both directions stored.
    cuts: BTreeSet<(NodeId, NodeId)>,
}

struct Host {
    id: NodeId,
    service: Option<Arc<PeerService<StoreNode>>>,
}

impl fmt::Debug for SimNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimNet")
    }
}

impl SimNet {
    pub fn new(seed: u64, base: NetOptions) -> Self {
        let loss = base.loss;
        let state = State {
            rng: StdRng::seed_from_u64(seed),
            base,
            loss,
            extra_delay: Duration::ZERO,
            hosts: BTreeMap::new(),
            cuts: BTreeSet::new(),
        };
        Self { inner: Arc::new(Mutex::new(state)) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update below is a single assignment: a panicking holder leaves no half state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Declare the host `id` at `url` (down until [`SimNet::up`]).
    pub fn add_host(&self, url: &str, id: NodeId) {
        self.state().hosts.insert(url.to_string(), Host { id, service: None });
    }

    /// The host at `url` answers with `node`'s peer service.
    pub fn up(&self, url: &str, node: &Arc<StoreNode>) {
        if let Some(host) = self.state().hosts.get_mut(url) {
            host.service = Some(Arc::new(node.peer_service()));
        }
    }

    /// The host at `url` is down: connections to it are refused.
    pub fn down(&self, url: &str) {
        if let Some(host) = self.state().hosts.get_mut(url) {
            host.service = None;
        }
    }

    /// Cut every link between a node of `side` and a node outside it.
    pub fn partition(&self, side: &BTreeSet<NodeId>) {
        let mut state = self.state();
        let all: Vec<NodeId> = state.hosts.values().map(|h| h.id).collect();
        for &a in side {
            for &b in all.iter().filter(|b| !side.contains(b)) {
                state.cuts.insert((a, b));
                state.cuts.insert((b, a));
            }
        }
    }

    /// Restore every link.
    pub fn heal(&self) {
        self.state().cuts.clear();
    }

    /// Set the loss rate and extra delay (a lossy or slow network); [`SimNet::calm`] undoes it.
    pub fn degrade(&self, loss: f64, extra_delay: Duration) {
        let mut state = self.state();
        (state.loss, state.extra_delay) = (loss, extra_delay);
    }

    pub fn calm(&self) {
        let mut state = self.state();
        (state.loss, state.extra_delay) = (state.base.loss, Duration::ZERO);
    }

    /// One message's fate: its delay, or `None` when it is lost on the way.
    fn transit(&self, from: NodeId, to: NodeId) -> Option<Duration> {
        let mut state = self.state();
        let range = state.base.delay.clone();
        let delay = state.rng.gen_range(range) + state.extra_delay;
        let loss = state.loss;
        let lost = state.rng.gen_bool(loss.clamp(0.0, 1.0)) || state.cuts.contains(&(from, to));
        (!lost).then_some(delay)
    }

    fn linked(&self, from: NodeId, to: NodeId) -> bool {
        !self.state().cuts.contains(&(from, to))
    }

    /// The target's ID and service (`None` service: down); `None` for an unknown URL.
    fn lookup(&self, url: &str) -> Option<(NodeId, Option<Arc<PeerService<StoreNode>>>)> {
        self.state().hosts.get(url).map(|h| (h.id, h.service.clone()))
    }

    async fn deliver(self, url: String, rpc: Rpc, blob: Blob) -> Result<Vec<u8>, CallError> {
        let from = blob.from;
        let Some((to, _)) = self.lookup(&url) else {
            return Err(CallError::Status(tonic::Status::invalid_argument(format!("unknown peer {url}"))));
        };
        let Some(there) = self.transit(from, to) else { return std::future::pending().await };
        tokio::time::sleep(there).await;
        // Whoever is up at the URL when the request arrives serves it.
        let Some(service) = self.lookup(&url).and_then(|(_, service)| service) else {
            return Err(CallError::Status(tonic::Status::unavailable("connect error: connection refused")));
        };
        if !self.linked(from, to) {
            return std::future::pending().await;
        }
        let reply = service.handle(rpc, blob).await;
        let Some(back) = self.transit(to, from) else { return std::future::pending().await };
        tokio::time::sleep(back).await;
        if !self.linked(to, from) {
            return std::future::pending().await;
        }
        reply.map_err(CallError::Status)
    }
}

impl Transport for SimNet {
    fn call(
        &self,
        peer_url: &str,
        rpc: Rpc,
        blob: Blob,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, CallError>> {
        let delivery = self.clone().deliver(peer_url.to_string(), rpc, blob);
        Box::pin(async move { tokio::time::timeout(ttl, delivery).await.unwrap_or(Err(CallError::Timeout)) })
    }
}
