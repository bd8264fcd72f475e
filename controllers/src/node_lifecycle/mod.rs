//! The node lifecycle controller (upstream kube-controller-manager's `nodelifecycle` and
//! `tainteviction`): notices nodes that stopped reporting, marks them and their pods, taints
//! them, and evicts the pods that do not tolerate the taints.
//!
//! Invariants:
//! - **Health is judged on the controller's own clock.** A node is heard from when the
//!   controller *observes* its Lease (`kube-node-lease/<node>`) renewed or its Ready
//!   heartbeat changed; the timestamps themselves are never compared with a clock. A
//!   controller that starts — on a new Raft leader — has heard from no node yet and gives
//!   every node a full grace period, so a control-plane failover never marks nodes Unknown
//!   or evicts their pods en masse, however stale the leases look after the gap.
//! - A node silent for [`NodeLifecycleConfig::grace_period`] gets Ready, MemoryPressure,
//!   DiskPressure and PIDPressure `Unknown` (reason `NodeStatusUnknown`), and its Ready
//!   condition then calls for the `node.kubernetes.io/unreachable` NoSchedule + NoExecute
//!   taints (`not-ready` when the kubelet itself reports Ready=False). The taints go as
//!   soon as the node reports Ready=True again; other taints are never touched.
//! - Pods on a node whose Ready condition is False or Unknown are marked Ready=False.
//! - A pod on a NoExecute-tainted node is deleted (gracefully, uid precondition, so its
//!   ReplicaSet replaces it elsewhere) at once if it does not tolerate the taints, after
//!   its `tolerationSeconds` if it does — counted from when this controller first saw it
//!   there, never from earlier — and never if it tolerates them without a limit. Once the
//!   node has no NoExecute taint, pending evictions are cancelled.
//! - **No eviction while every node is unhealthy** (upstream's full disruption): then the
//!   fault is far more likely the control plane or its network than every node at once,
//!   and evicting would only leave every pod Pending. Taints are still written; eviction
//!   clocks restart when some node is healthy again.
//! - Evictions are bounded by [`NodeLifecycleConfig::evictions_per_second`].
//!
//! Data flow: informers cache Nodes, node Leases and Pods; [`monitor::NodeLifecycle`] runs
//! a check every [`NodeLifecycleConfig::check_period`] over the pure decisions in
//! [`health`], [`conditions`], [`taints`] and [`eviction`], writing through the leader's
//! fenced client (CAS writes, so a deposed leader's decision fails).

pub mod conditions;
pub mod config;
pub mod eviction;
pub mod health;
pub mod monitor;
pub mod taints;

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::leadership::{Component, LeaderContext};
use crate::runtime::{Informer, InformerConfig};
pub use config::NodeLifecycleConfig;
use monitor::NodeLifecycle;

/// Where kubelets keep their heartbeat Leases, one per node, named after it.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The controller with the default configuration, as a leader-only component.
pub fn component() -> Component {
    component_with(NodeLifecycleConfig::default())
}

/// The controller with `config`, as a leader-only component. Panics on an invalid config
/// (validate user-supplied configs first).
pub fn component_with(config: NodeLifecycleConfig) -> Component {
    if let Err(e) = config.validate() {
        panic!("node lifecycle controller: {e}");
    }
    Arc::new(move |ctx: LeaderContext| Box::pin(run(ctx, config.clone())))
}

/// Run the controller over the term's shared caches (its own Lease cache of
/// `kube-node-lease`) until `ctx.cancel` fires.
pub async fn run(ctx: LeaderContext, config: NodeLifecycleConfig) {
    let lease_config = InformerConfig { namespace: Some(NODE_LEASE_NAMESPACE.into()), ..Default::default() };
    let lease_informer = Informer::<Lease>::new(&ctx.client, lease_config);
    let (nodes, leases, pods) = (ctx.informers.store::<Node>(), lease_informer.store(), ctx.informers.store::<Pod>());
    let cancel = ctx.cancel.clone();
    let leases_task = tokio::spawn(lease_informer.run(cancel.clone()));
    let synced = async {
        nodes.wait_synced().await;
        leases.wait_synced().await;
        pods.wait_synced().await;
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = synced => {
            tracing::info!(nodes = nodes.len(), grace_period = ?config.grace_period, "node lifecycle controller starting");
            NodeLifecycle::new(ctx.client, &ctx.identity, &config, nodes, leases, pods).run(cancel.clone()).await;
        }
    }
    let _ = leases_task.await;
}
