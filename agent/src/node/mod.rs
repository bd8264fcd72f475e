//! The node: registration, the heartbeat Lease, and node status.
//!
//! Invariants:
//! - The Node is registered before anything else is reported for it: created with its
//!   configured labels and taints, or, when it exists (an agent restart), its labels are
//!   brought up to date (configured keys win, others are kept) with a compare-and-swap
//!   update. Its taints are left as they are, as the kubelet's `--register-with-taints`
//!   applies only at registration: after that they are the control plane's and the
//!   admins' (and NodeRestriction refuses a node's change to them).
//! - Every [`AgentConfig::renew_interval`] (10 s) the Lease is renewed and the status
//!   recomputed. The status is written when it differs from the last one written in
//!   anything but heartbeat times, or when the last write is older than
//!   [`AgentConfig::status_report_interval`], or after a heartbeat failed (the control
//!   plane may have marked the node Unknown meanwhile).
//!
//! Report frequency: upstream's kubelet computes status every `nodeStatusUpdateFrequency`
//! (10 s) but posts an unchanged one only every `nodeStatusReportFrequency` (5 min by
//! default since the Lease carries liveness). Flotilla's node lifecycle controller also
//! judges liveness by the Lease, so the unchanged report only refreshes the Ready
//! heartbeat for humans; we chose 1 min, a fifth of upstream's write load saving for a
//! fresher `kubectl describe node`.

pub mod host;
pub mod lease;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::api::ApiPool;
use crate::config::{AgentConfig, NodeConfig};
use crate::error::AgentError;
use host::Identity;
use lease::NodeLease;

/// Wait between registration attempts while the control plane is unreachable.
const REGISTER_RETRY: Duration = Duration::from_secs(2);

/// One node's registration and heartbeats.
pub struct NodeAgent {
    pool: Arc<ApiPool>,
    config: NodeConfig,
    timing: AgentConfig,
    identity: Identity,
    runtime_version: String,
    /// The Node as last written (its status is the base of the next one).
    node: Option<Node>,
    last_report: Option<Instant>,
    /// The agent endpoint's port, advertised in the status (0: none).
    daemon_port: u16,
}

impl NodeAgent {
    /// `runtime_version` as nodeInfo shows it, e.g. `fake://0.1.0`.
    pub fn new(pool: Arc<ApiPool>, config: NodeConfig, timing: AgentConfig, runtime_version: String) -> Self {
        let identity = config.host.identity();
        Self { pool, config, timing, identity, runtime_version, node: None, last_report: None, daemon_port: 0 }
    }

    /// Advertise the agent endpoint on `port` (`daemonEndpoints.kubeletEndpoint.Port`).
    pub fn with_daemon_port(mut self, port: u16) -> Self {
        self.daemon_port = port;
        self
    }

    fn facts(&self) -> status::Facts<'_> {
        status::Facts {
            sample: self.config.host.sample(),
            identity: &self.identity,
            runtime_version: &self.runtime_version,
            now: Timestamp::now(),
            daemon_port: self.daemon_port,
        }
    }

    fn api(client: kube::Client) -> kube::Api<Node> {
        kube::Api::all(client)
    }

    /// Create the Node, or bring an existing one's labels up to date.
    pub async fn register(&mut self) -> Result<(), AgentError> {
        let desired = status::node(&self.config, &self.facts());
        let pp = &PostParams::default();
        let created = {
            let desired = &desired;
            self.pool.call(move |c| async move { Self::api(c).create(pp, desired).await }).await
        };
        let node = match created {
            Ok(node) => node,
            Err(e) if e.is_already_exists() => self.update_existing().await?,
            Err(e) => return Err(e),
        };
        tracing::info!(node = self.config.name, "node registered");
        self.node = Some(node);
        Ok(())
    }

    async fn update_existing(&self) -> Result<Node, AgentError> {
        let name = &self.config.name;
        loop {
            let mut node = self.pool.call(move |c| async move { Self::api(c).get(name).await }).await?;
            node.metadata.labels.get_or_insert_with(Default::default).extend(status::labels(&self.config));
            let (pp, node) = (&PostParams::default(), &node);
            match self.pool.call(move |c| async move { Self::api(c).replace(name, pp, node).await }).await {
                Err(e) if e.is_conflict() => continue,
                other => return other,
            }
        }
    }

    /// Write the status if it changed, is due, or `force`d. Returns whether it wrote.
    pub async fn report(&mut self, force: bool) -> Result<bool, AgentError> {
        let base = self.node.as_ref().and_then(|n| n.status.as_ref());
        let desired = status::status(&self.config, &self.facts(), base);
        let due = self.last_report.is_none_or(|t| t.elapsed() >= self.timing.status_report_interval);
        if !force && !due && base.is_some_and(|b| !status::differs(b, &desired)) {
            return Ok(false);
        }
        let written = match self.write_status(&desired).await {
            Err(e) if e.is_conflict() || e.is_not_found() => {
                let name = &self.config.name;
                let fresh = self.pool.call(move |c| async move { Self::api(c).get(name).await }).await?;
                let desired = status::status(&self.config, &self.facts(), fresh.status.as_ref());
                self.node = Some(fresh);
                self.write_status(&desired).await?
            }
            other => other?,
        };
        self.node = Some(written);
        self.last_report = Some(Instant::now());
        Ok(true)
    }

    async fn write_status(&self, desired: &NodeStatus) -> Result<Node, AgentError> {
        let mut node = self.node.clone().unwrap_or_default();
        node.metadata.name = Some(self.config.name.clone());
        node.status = Some(desired.clone());
        let (name, pp, node) = (&self.config.name, &PostParams::default(), &node);
        self.pool.call(move |c| async move { Self::api(c).replace_status(name, pp, node).await }).await
    }

    /// Register, then heartbeat until `cancel` fires. `start_delay` spreads the heartbeats
    /// of many simulated nodes over the interval.
    pub async fn run(mut self, start_delay: Duration, cancel: CancellationToken) {
        let name = self.config.name.clone();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(start_delay) => {}
        }
        while let Err(e) = self.register().await {
            tracing::warn!(node = name, error = %e, "node registration failed; retrying");
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(REGISTER_RETRY) => {}
            }
        }
        let mut lease = NodeLease::new(self.pool.clone(), &name, self.timing.lease_duration);
        if let Some(uid) = self.node.as_ref().and_then(|n| n.metadata.uid.as_deref()) {
            lease.set_owner(uid);
        }
        let mut tick = tokio::time::interval(self.timing.renew_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut force = true;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = lease.renew().await {
                tracing::warn!(node = name, error = %e, "lease renewal failed");
                force = true;
                continue;
            }
            match self.report(force).await {
                Ok(_) => force = false,
                Err(e) => tracing::warn!(node = name, error = %e, "node status update failed"),
            }
        }
    }
}
