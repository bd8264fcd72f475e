//! Harness for agent tests: a real one-member store with one or more Kubernetes API
//! servers over HTTP on 127.0.0.1, each behind a TCP relay the test can cut (a replica
//! that dies: its listener and every open connection go at once); agents with the fake
//! runtime; condition waits with deadlines; pod builders.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flotilla_agent::config::NodeConfig;
use flotilla_agent::node::host::{Host, SimulatedHost};
use flotilla_agent::runtime::fake::FakeRuntime;
use flotilla_agent::{Agent, AgentConfig};
use flotilla_apiserver::client::Client;
use flotilla_apiserver::storage::Storage;
use flotilla_apiserver::{ApiConfig, Registry};
use flotilla_store::StoreNode;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a condition a test waits for may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Poll `probe` until it yields a value; panic naming `what` after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    flotilla_store::testing::wait_for(DEADLINE, what, probe).await
}

/// A TCP relay in front of one API server; [`Relay::cut`] drops it and its connections.
pub struct Relay {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(listener: TcpListener, backend: std::net::SocketAddr) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new(); // dropped (aborting every connection) with the task
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { url, task }
    }

    /// The replica dies: its address refuses connections, open ones are closed. Returns once
    /// the relay task (and with it every open connection) is gone, so nothing the caller
    /// does next can still pass through (bounded, in case the runtime is shutting down).
    pub fn cut(&self) {
        self.task.abort();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while !self.task.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A store with API servers, each behind a [`Relay`].
pub struct Cluster {
    pub node: Arc<StoreNode>,
    pub client: Client,
    pub relays: Vec<Relay>,
    pub cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.relays.iter().for_each(Relay::cut);
    }
}

/// Agent logs into the test's captured output (shown when a test fails); `RUST_LOG`
/// chooses the level (default: info for the agent).
pub fn logs() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,flotilla_agent=info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

impl Cluster {
    /// One store and `servers` API servers over it (each its own registry).
    pub async fn start(servers: usize) -> Self {
        Self::start_with(servers, false).await
    }

    /// Like [`Cluster::start`], each API server also keeping its relay's address in the
    /// `kubernetes` Service's Endpoints, as a replica advertises its own.
    pub async fn start_advertised(servers: usize) -> Self {
        Self::start_with(servers, true).await
    }

    async fn start_with(servers: usize, advertise: bool) -> Self {
        logs();
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, registry) = flotilla_apiserver::testing::solo_registry(dir.path()).await;
        let client = Client::new(registry.clone());
        let cancel = CancellationToken::new();
        let mut relays = Vec::new();
        for i in 0..servers {
            let registry = if i == 0 { registry.clone() } else { Registry::new(Storage::new(node.clone())) };
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let backend = listener.local_addr().unwrap();
            let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let advertised = advertise.then(|| front.local_addr().unwrap());
            let config =
                ApiConfig { server_address: backend.to_string(), advertise: advertised, ..ApiConfig::default() };
            tokio::spawn(flotilla_apiserver::serve(listener, registry, config, cancel.clone()));
            relays.push(Relay::start(front, backend).await);
        }
        Self { node, client, relays, cancel, _dir: dir }
    }

    pub fn urls(&self) -> Vec<String> {
        self.relays.iter().map(|r| r.url.clone()).collect()
    }

    /// Agent timings for tests: fast heartbeats (so a test sees several) and a given
    /// crash-loop back-off.
    pub fn agent_config(&self, backoff_initial: Duration) -> AgentConfig {
        AgentConfig {
            servers: self.urls(),
            request_timeout: Duration::from_secs(2),
            renew_interval: Duration::from_millis(500),
            lease_duration: Duration::from_secs(5),
            backoff_initial,
            backoff_max: backoff_initial * 4,
            pod_resync: Duration::from_secs(1),
            ..AgentConfig::default()
        }
    }

    /// Run an agent for node `name` over `runtime` until the returned token is cancelled.
    pub fn start_agent(&self, config: AgentConfig, node: NodeConfig, runtime: Arc<FakeRuntime>) -> CancellationToken {
        let cancel = self.cancel.child_token();
        let agent = Agent::new(config, node, runtime).expect("valid agent config");
        tokio::spawn(agent.run(cancel.clone()));
        cancel
    }
}

pub fn node_config(name: &str) -> NodeConfig {
    NodeConfig {
        name: name.into(),
        labels: Default::default(),
        taints: vec![],
        max_pods: 110,
        address: "192.0.2.10".into(),
        host: Host::Simulated(SimulatedHost::default()),
    }
}

pub fn runtime() -> Arc<FakeRuntime> {
    Arc::new(FakeRuntime::new(std::net::Ipv4Addr::new(10, 200, 0, 0)))
}

/// A pod of one container `app` running `image`.
pub fn pod(name: &str, image: &str, restart_policy: &str) -> Pod {
    Pod {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..ObjectMeta::default() },
        spec: Some(PodSpec {
            restart_policy: Some(restart_policy.into()),
            termination_grace_period_seconds: Some(5),
            containers: vec![Container { name: "app".into(), image: Some(image.into()), ..Container::default() }],
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// Create `pod` in `default` and bind it to `node`, as the scheduler would; its uid.
pub async fn create_bound(cluster: &Cluster, pod: &Pod, node: &str) -> String {
    let created = cluster.client.api::<Pod>(Some("default")).create(pod).await.expect("pod created");
    let name = created.metadata.name.clone().unwrap();
    cluster.client.bind("default", &name, node).await.expect("pod bound");
    created.metadata.uid.unwrap()
}

/// Wait until pod `name` satisfies `cond`; the pod as it then was.
pub async fn wait_pod(cluster: &Cluster, name: &str, what: &str, cond: impl Fn(&Pod) -> bool) -> Pod {
    let api = cluster.client.api::<Pod>(Some("default"));
    wait_for(&format!("pod {name}: {what}"), || async { api.get(name).await.ok().filter(|p| cond(p)) }).await
}

pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default()
}

pub fn app_status(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()
}

pub fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Run an agent over any runtime until the returned token is cancelled.
pub fn start_agent_over(
    cluster: &Cluster,
    config: AgentConfig,
    node: NodeConfig,
    runtime: Arc<dyn flotilla_agent::runtime::Runtime>,
) -> CancellationToken {
    let cancel = cluster.cancel.child_token();
    let agent = Agent::new(config, node, runtime).expect("valid agent config");
    tokio::spawn(agent.run(cancel.clone()));
    cancel
}
