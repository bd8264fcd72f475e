//! [`Agent`]: one node — its registration and heartbeats ([`crate::node`]), the watch of
//! the pods bound to it, and their sync ([`crate::pods`]) — over one runtime.
//!
//! Invariants:
//! - The pod watch selects `spec.nodeName=<node>`, so the agent only ever sees and runs
//!   pods bound to it.
//! - With [`AgentConfig::server`] set, the agent endpoint ([`crate::server`]) is bound
//!   before the node registers, so the node advertises the port actually bound (port 0
//!   in the config picks a free one); it serves once the node proxy token is read. A port
//!   that cannot be bound is logged as an error and the node advertises port 0: pods
//!   still run, only logs/exec/port-forward are unavailable.
//! - The loops are independent: a control-plane outage stalls heartbeats and status
//!   writes but never the containers, which keep running and keep being restarted by
//!   their pods' workers from the last Pod seen.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::watch::{self, Selector};
use crate::api::{self, ApiPool};
use crate::config::{AgentConfig, NodeConfig};
use crate::error::AgentError;
use crate::node::NodeAgent;
use crate::pods::{Context, PodManager};
use crate::runtime::Runtime;
use crate::server;
use crate::services;

/// Pod events buffered between the watch and the pod manager; when full the watch waits
/// (the manager only routes, so it drains quickly).
pub const POD_EVENT_BUFFER: usize = 256;

/// One node's agent. See the module doc.
pub struct Agent {
    pool: Arc<ApiPool>,
    config: AgentConfig,
    node: NodeConfig,
    runtime: Arc<dyn Runtime>,
}

impl Agent {
    pub fn new(config: AgentConfig, node: NodeConfig, runtime: Arc<dyn Runtime>) -> Result<Self, AgentError> {
        config.validate()?;
        node.validate()?;
        let pool = Arc::new(ApiPool::new(&config.servers, config.request_timeout, config.api_tls.clone())?);
        Ok(Self { pool, config, node, runtime })
    }

    /// Run until `cancel` fires. Containers are left running when it does.
    pub async fn run(self, cancel: CancellationToken) {
        let name = self.node.name.clone();
        let runtime_version = runtime_version(self.runtime.as_ref()).await;
        tracing::info!(node = name, runtime = runtime_version, servers = ?self.config.servers, "agent starting");
        let discovery_task = api::discovery::start(self.pool.clone(), cancel.clone()).await;
        let renew_task = match (self.config.node_certificate.clone(), self.config.api_tls.clone()) {
            (Some(files), Some(current)) => tokio::spawn(files.renew(self.pool.clone(), current, cancel.clone())),
            _ => tokio::spawn(async {}),
        };
        let ctx = Arc::new(pod_context(&self.pool, &self.config, &self.node, self.runtime.clone()));
        let (daemon_port, server_task) = self.start_server(&cancel).await;
        let services_config = self.config.services.clone();
        let node =
            NodeAgent::new(self.pool.clone(), self.node, self.config, runtime_version).with_daemon_port(daemon_port);
        let node_task = tokio::spawn(node.run(Duration::ZERO, cancel.clone()));
        let (tx, rx) = mpsc::channel(POD_EVENT_BUFFER);
        let selector = Selector { fields: Some(format!("spec.nodeName={name}")), ..Selector::default() };
        let watch_task = tokio::spawn(watch::run::<Pod>(self.pool.clone(), selector, tx, cancel.clone()));
        let services_task = match services_config {
            Some(config) => {
                let host = ctx.dns.host.clone();
                tokio::spawn(services::runner::run(self.pool.clone(), config, name.clone(), host, cancel.clone()))
            }
            None => tokio::spawn(async {}),
        };
        PodManager::new(ctx).run(rx, cancel.clone()).await;
        let _ = tokio::join!(node_task, watch_task, server_task, services_task, discovery_task, renew_task);
        tracing::info!(node = name, "agent stopped");
    }
}

impl Agent {
    /// Bind the agent endpoint, if configured, and serve it in a task once the token is
    /// read. The port to advertise (0: none) and the task.
    async fn start_server(&self, cancel: &CancellationToken) -> (u16, JoinHandle<()>) {
        let Some(config) = self.config.server else { return (0, tokio::spawn(async {})) };
        let listener = match TcpListener::bind((config.address, config.port)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(address = %config.address, port = config.port, error = %e,
                    "cannot bind the agent endpoint; logs, exec and port-forward are unavailable on this node");
                return (0, tokio::spawn(async {}));
            }
        };
        let tls = match &self.config.api_tls {
            None => None,
            Some(api) => match server::tls::endpoint_config(api, &self.node.name, &self.node.address) {
                Ok(config) => Some(config),
                Err(e) => {
                    tracing::error!(error = %e, "logs, exec and port-forward are unavailable on this node");
                    return (0, tokio::spawn(async {}));
                }
            },
        };
        let port = listener.local_addr().map_or(config.port, |a| a.port());
        let (pool, runtime, cancel) = (self.pool.clone(), self.runtime.clone(), cancel.clone());
        let task = tokio::spawn(async move {
            let Some(token) = server::token::obtain(&pool, &cancel).await else { return };
            server::run(listener, server::router(runtime, token), tls, cancel).await;
        });
        (port, task)
    }
}

/// `<runtime>://<version>`, as nodeInfo shows it.
pub async fn runtime_version(runtime: &dyn Runtime) -> String {
    let version = runtime.version().await.unwrap_or_else(|e| {
        tracing::warn!(runtime = runtime.name(), error = %e, "cannot read the runtime's version");
        "unknown".into()
    });
    format!("{}://{version}", runtime.name())
}

pub(crate) fn pod_context(
    pool: &Arc<ApiPool>,
    config: &AgentConfig,
    node: &NodeConfig,
    runtime: Arc<dyn Runtime>,
) -> Context {
    Context {
        runtime,
        pool: pool.clone(),
        node_name: node.name.clone(),
        host_ip: node.address.clone(),
        backoff_initial: config.backoff_initial,
        backoff_max: config.backoff_max,
        resync: config.pod_resync,
        volumes: crate::pods::volumes::VolumeManager::new(node.host.data_dir().map(|d| d.join("pods"))),
        allow_privileged: config.allow_privileged,
        dns: crate::pods::dns::NodeDns::read(
            config
                .services
                .as_ref()
                .map(|s| crate::pods::dns::ClusterDns { nameserver: s.cluster_dns, domain: s.cluster_domain.clone() }),
        ),
        tokens: Default::default(),
    }
}
