//! Simulated nodes (kubemark's hollow nodes): N nodes in one process, each with its own
//! [`FakeRuntime`], Lease and status loop, sharing one API connection pool and one pod
//! watch.
//!
//! Invariants:
//! - Each simulated node behaves as a real agent with the fake runtime would: same
//!   registration, Lease, pod sync and status code paths; only the host facts are made up.
//! - One watch of every bound pod (`spec.nodeName!=`) is demultiplexed by `spec.nodeName`,
//!   so N nodes cost one watch, not N; pods bound to nodes not simulated here are ignored.
//!   A re-list reaches every node (an empty one included) so each can tear down pods
//!   deleted meanwhile.
//! - Heartbeats are spread evenly over the renew interval, so N nodes make N/10 Lease
//!   writes per second rather than bursts of N.
//! - Node i has address 172.16.0.0/12 + i + 1 and pod network 10.(128 + i/256).(i%256).0/24,
//!   so up to [`MAX_NODES`] nodes have distinct addresses.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Taint};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::{pod_context, runtime_version, POD_EVENT_BUFFER};
use crate::api::watch::{self, Event, Selector};
use crate::api::ApiPool;
use crate::config::{AgentConfig, NodeConfig};
use crate::error::AgentError;
use crate::node::host::{Host, SimulatedHost};
use crate::node::NodeAgent;
use crate::pods::PodManager;
use crate::runtime::fake::FakeRuntime;

/// The most nodes one process simulates: pod networks are carved from 10.128.0.0/9.
pub const MAX_NODES: usize = 128 * 256;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub count: usize,
    /// Node i is named `<prefix><i>`.
    pub prefix: String,
    pub host: SimulatedHost,
    pub labels: std::collections::BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub max_pods: u32,
}

impl Simulation {
    pub fn validate(&self) -> Result<(), AgentError> {
        if self.count == 0 || self.count > MAX_NODES {
            return Err(AgentError::Config(format!("simulate between 1 and {MAX_NODES} nodes")));
        }
        (0..self.count).try_for_each(|i| self.node(i).validate())
    }

    fn node(&self, i: usize) -> NodeConfig {
        let address = u32::from(Ipv4Addr::new(172, 16, 0, 0)) + i as u32 + 1;
        NodeConfig {
            name: format!("{}{i}", self.prefix),
            labels: self.labels.clone(),
            taints: self.taints.clone(),
            max_pods: self.max_pods,
            address: Ipv4Addr::from(address).to_string(),
            host: Host::Simulated(self.host),
        }
    }
}

/// The pod network of simulated node `i`.
fn pod_network(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 128 + (i / 256) as u8, (i % 256) as u8, 0)
}

/// Run the simulated nodes until `cancel` fires.
pub async fn run(config: AgentConfig, sim: Simulation, cancel: CancellationToken) -> Result<(), AgentError> {
    config.validate()?;
    sim.validate()?;
    let pool = Arc::new(ApiPool::new(&config.servers, config.request_timeout, config.api_tls.clone())?);
    let discovery = crate::api::discovery::start(pool.clone(), cancel.clone()).await;
    let mut routes = HashMap::with_capacity(sim.count);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sim.count {
        let node = sim.node(i);
        let runtime = Arc::new(FakeRuntime::new(pod_network(i)));
        let version = runtime_version(runtime.as_ref()).await;
        let ctx = Arc::new(pod_context(&pool, &config, &node, runtime));
        let (tx, rx) = mpsc::channel(POD_EVENT_BUFFER);
        routes.insert(node.name.clone(), tx);
        let delay = config.renew_interval.mul_f64(i as f64 / sim.count as f64);
        tasks.spawn(NodeAgent::new(pool.clone(), node, config.clone(), version).run(delay, cancel.clone()));
        tasks.spawn(PodManager::new(ctx).run(rx, cancel.clone()));
    }
    tracing::info!(nodes = sim.count, prefix = sim.prefix, "simulated nodes starting");
    let (tx, rx) = mpsc::channel(POD_EVENT_BUFFER);
    let selector = Selector { fields: Some("spec.nodeName!=".into()), ..Selector::default() };
    tasks.spawn(watch::run::<Pod>(pool, selector, tx, cancel.clone()));
    demultiplex(rx, routes).await;
    while tasks.join_next().await.is_some() {}
    let _ = discovery.await;
    Ok(())
}

fn node_of(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default()
}

/// Route each pod event to its node's manager until the watch ends.
async fn demultiplex(mut rx: mpsc::Receiver<Event<Pod>>, routes: HashMap<String, mpsc::Sender<Event<Pod>>>) {
    while let Some(event) = rx.recv().await {
        match event {
            Event::Listed(pods) => {
                let mut by_node: HashMap<&str, Vec<Pod>> = routes.keys().map(|n| (n.as_str(), Vec::new())).collect();
                for pod in pods {
                    if let Some(list) = by_node.get_mut(node_of(&pod)) {
                        list.push(pod);
                    }
                }
                for (node, pods) in by_node {
                    let _ = routes[node].send(Event::Listed(pods)).await;
                }
            }
            Event::Applied(pod) | Event::Deleted(pod) if !routes.contains_key(node_of(&pod)) => {}
            Event::Applied(pod) => {
                let _ = routes[node_of(&pod)].send(Event::Applied(pod)).await;
            }
            Event::Deleted(pod) => {
                let _ = routes[node_of(&pod)].send(Event::Deleted(pod)).await;
            }
        }
    }
}
