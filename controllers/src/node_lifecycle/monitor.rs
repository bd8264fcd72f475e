//! [`NodeLifecycle`]: the controller's loop. It owns every piece of state ([`HealthTracker`],
//! [`EvictionClock`], [`TokenBucket`]) in one task and, every check period, reads the
//! informer caches and writes what the pure decisions call for:
//!
//! 1. each node: observe its signs of life; an overdue one gets Unknown conditions
//!    (`nodes/status`, a CAS on the cached resourceVersion, and a `NodeNotReady` event if
//!    it was Ready); then the taints its conditions call for (a CAS update of the node);
//! 2. the pods on nodes whose Ready condition is not True: Ready=False (`pods/status`);
//! 3. evictions: unless every node is unhealthy, each pod on a node with NoExecute taints
//!    is deleted (graceful, precondition uid) once due, within the rate bound; the clocks of
//!    pods no longer on such a node stop, cancelling their eviction.
//!
//! A write that fails (a CAS lost to the kubelet, a deposed leader's fenced write) is
//! logged and simply decided again at the next check: every step is level-triggered.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::ApiError;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::conditions;
use super::eviction::{tolerance, Due, EvictionClock, TokenBucket};
use super::health::{HealthTracker, Signs};
use super::taints;
use super::{NodeLifecycleConfig, NODE_LEASE_NAMESPACE};
use crate::pod;
use crate::runtime::{Key, Recorder, Store};

/// The pods bound to each node, by node name.
type PodsByNode = HashMap<String, Vec<Arc<Pod>>>;

/// The controller's state and the caches it reads; run it with [`NodeLifecycle::run`].
pub struct NodeLifecycle {
    client: Client,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    check_period: Duration,
    health: HealthTracker,
    clock: EvictionClock,
    bucket: TokenBucket,
    /// Node events, as upstream's `node-controller`.
    node_events: Recorder,
    /// Pod eviction events, as upstream's `taint-eviction-controller`.
    eviction_events: Recorder,
    /// Whether the last check found every node unhealthy (evictions suspended).
    disrupted: bool,
}

impl NodeLifecycle {
    /// A controller that has heard from no node yet (every node gets a full grace period).
    pub fn new(
        client: Client,
        identity: &str,
        config: &NodeLifecycleConfig,
        nodes: Store<Node>,
        leases: Store<Lease>,
        pods: Store<Pod>,
    ) -> Self {
        Self {
            node_events: Recorder::new(client.clone(), "node-controller", identity),
            eviction_events: Recorder::new(client.clone(), "taint-eviction-controller", identity),
            client,
            nodes,
            leases,
            pods,
            check_period: config.check_period,
            health: HealthTracker::new(config.grace_period, config.startup_grace_period),
            clock: EvictionClock::default(),
            bucket: TokenBucket::new(config.evictions_per_second, Instant::now()),
            disrupted: false,
        }
    }

    /// Check every `check_period` until `cancel` fires (a check in progress is dropped:
    /// its writes are CAS, and the next leader decides afresh).
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut ticks = tokio::time::interval(self.check_period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.check() => {}
            }
        }
    }

    /// One pass: every node, then the pods of unhealthy nodes, then the evictions.
    pub async fn check(&mut self) {
        let now = Instant::now();
        let mut nodes = Vec::new();
        for node in self.nodes.list() {
            nodes.push(self.check_node(node, now).await);
        }
        let names: HashSet<&str> = nodes.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
        self.health.retain(|name| names.contains(name));
        let mut pods_by_node = PodsByNode::new();
        for pod in self.pods.list() {
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()) {
                pods_by_node.entry(node).or_default().push(pod);
            }
        }
        self.mark_pods_not_ready(&nodes, &pods_by_node).await;
        self.evict(&nodes, &pods_by_node, now).await;
    }

    /// Judge one node; write Unknown conditions and the taints they call for. Returns the
    /// node as it now is (as written, or as cached when nothing was written).
    async fn check_node(&mut self, node: Arc<Node>, now: Instant) -> Arc<Node> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let lease = self.leases.get(Some(NODE_LEASE_NAMESPACE), &name);
        let overdue = self.health.observe(&name, Signs::of(&node, lease.as_deref()), now);
        let node = if overdue { self.mark_unknown(node, &name, now).await } else { node };
        self.taint(node, &name).await
    }

    async fn mark_unknown(&self, node: Arc<Node>, name: &str, now: Instant) -> Arc<Node> {
        let mut updated = (*node).clone();
        if !conditions::mark_unknown(&mut updated, Timestamp::now()) {
            return node;
        }
        match self.client.api::<Node>(None).update_status(name, &updated).await {
            Ok(written) => {
                let silent_for = self.health.silent_for(name, now).unwrap_or_default();
                tracing::info!(node = name, ?silent_for, "node stopped posting status; conditions set to Unknown");
                if conditions::is_ready(&node) {
                    self.node_events.normal(
                        &written,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    );
                }
                Arc::new(written)
            }
            Err(e) => {
                write_failed(&e, "node status", name);
                node
            }
        }
    }

    async fn taint(&self, node: Arc<Node>, name: &str) -> Arc<Node> {
        let Some(taints) = taints::reconcile(&node, Timestamp::now()) else { return node };
        let mut updated = (*node).clone();
        let keys: Vec<String> = taints.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect();
        updated.spec.get_or_insert_with(Default::default).taints = (!taints.is_empty()).then_some(taints);
        match self.client.api::<Node>(None).update(name, &updated).await {
            Ok(written) => {
                tracing::info!(node = name, taints = ?keys, "node taints updated");
                Arc::new(written)
            }
            Err(e) => {
                write_failed(&e, "node taints", name);
                node
            }
        }
    }

    /// Ready=False on the pods of every node whose Ready condition is False or Unknown.
    async fn mark_pods_not_ready(&self, nodes: &[Arc<Node>], pods_by_node: &PodsByNode) {
        let unhealthy = nodes.iter().filter(|n| conditions::status(n, conditions::READY).is_some_and(|s| s != "True"));
        for node in unhealthy {
            let name = node.metadata.name.as_deref().unwrap_or_default();
            for pod in pods_by_node.get(name).into_iter().flatten().filter(|p| pod::is_ready(p)) {
                let mut updated = (**pod).clone();
                conditions::mark_pod_not_ready(&mut updated, Timestamp::now());
                let key = Key::of(pod.as_ref());
                match self.client.api::<Pod>(key.namespace()).update_status(&key.name, &updated).await {
                    Ok(written) => {
                        tracing::info!(pod = %key, node = name, "pod marked not ready");
                        self.node_events.warning(&written, "NodeNotReady", "Node is not ready");
                    }
                    Err(e) => write_failed(&e, "pod status", &key.to_string()),
                }
            }
        }
    }

    /// Start, advance or stop the eviction clocks of the pods on NoExecute-tainted nodes and
    /// delete the pods whose eviction is due — unless every node is unhealthy.
    async fn evict(&mut self, nodes: &[Arc<Node>], pods_by_node: &PodsByNode, now: Instant) {
        let disrupted = !nodes.is_empty() && nodes.iter().all(|n| !conditions::is_ready(n));
        if disrupted != self.disrupted {
            match disrupted {
                true => tracing::warn!(nodes = nodes.len(), "every node is unhealthy; evictions suspended"),
                false => tracing::info!("a node is healthy again; evictions resume with fresh clocks"),
            }
            self.disrupted = disrupted;
        }
        if disrupted {
            // The control plane or its network is the likelier culprit: evicting would only
            // pile every pod up as Pending. Clocks restart once a node is healthy again.
            self.clock.reset();
            return;
        }
        let wall = Timestamp::now();
        let mut on_tainted = HashSet::new();
        let mut due = Vec::new();
        for node in nodes {
            let taints = taints::no_execute(node);
            let Some(newest) = taints.iter().map(|t| t.time_added.as_ref().map(|a| a.0)).max() else { continue };
            let added_ahead = newest.and_then(|t| Duration::try_from(t - wall).ok()).unwrap_or_default();
            let name = node.metadata.name.as_deref().unwrap_or_default();
            let pods = pods_by_node.get(name).into_iter().flatten();
            for pod in pods.filter(|p| !pod::is_terminating(p)) {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                on_tainted.insert(uid.clone());
                if self.clock.evicted(&uid) {
                    continue;
                }
                let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
                let key = Key::of(pod.as_ref());
                if let Due::At(at) = self.clock.due(&uid, &key, tolerance(tolerations, &taints), added_ahead, now) {
                    if at <= now {
                        due.push((pod.clone(), name.to_string()));
                    }
                }
            }
        }
        for key in self.clock.stop_except(&on_tainted) {
            if let Some(pod) = self.pods.get_key(&key).filter(|p| !pod::is_terminating(p)) {
                tracing::info!(pod = %key, "node no longer tainted NoExecute; eviction cancelled");
                self.eviction_events.normal(
                    pod.as_ref(),
                    "TaintManagerEviction",
                    format!("Cancelling deletion of Pod {key}"),
                );
            }
        }
        for (pod, node) in due {
            if !self.bucket.try_take(now) {
                tracing::debug!("eviction rate bound reached; the rest wait for the next check");
                break;
            }
            self.delete(&pod, &node).await;
        }
    }

    /// Delete an evicted pod gracefully, only if it is still the same pod (uid).
    async fn delete(&mut self, pod: &Pod, node: &str) {
        let key = Key::of(pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let opts = DeleteOptions { precondition_uid: Some(uid.clone()), ..Default::default() };
        match self.client.api::<Pod>(key.namespace()).delete(&key.name, &opts).await {
            Ok(_) => {
                self.clock.mark_evicted(&uid);
                tracing::info!(pod = %key, node, "evicted pod from a NoExecute-tainted node");
                self.eviction_events.normal(pod, "TaintManagerEviction", format!("Marking for deletion Pod {key}"));
            }
            // Gone, or replaced by a pod of the same name (the uid precondition): not ours.
            Err(ApiError::NotFound(_) | ApiError::PreconditionFailed(..)) => self.clock.mark_evicted(&uid),
            Err(e) => write_failed(&e, "pod deletion", &key.to_string()),
        }
    }
}

/// Log a write the next check will retry: a lost CAS is routine (the kubelet or a user wrote
/// first), anything else is unexpected but handled.
fn write_failed(error: &ApiError, what: &str, object: &str) {
    match error {
        ApiError::Conflict(_) | ApiError::NotFound(_) => {
            tracing::debug!(object, %error, "{what} changed meanwhile; next check decides again")
        }
        _ => tracing::warn!(object, %error, "{what} not written; next check retries"),
    }
}
