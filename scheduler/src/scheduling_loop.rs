//! The scheduling loop: a leader-only component that binds pending pods to nodes.
//!
//! ```text
//!  Informers (Node, Pod, PV, PVC, Namespace) ──Change──► loop task ──► Snapshot
//!                 pending pod keys ──► WorkQueue ──► schedule(pod, &snapshot)
//!      Ok(node) ──► Snapshot::assume ──► bind task (fenced client) ──► done / forget + retry
//!      Err(fit) ──► FailedScheduling Event, retry after backoff or when the cluster changes
//! ```
//!
//! One task owns the [`Snapshot`], the queue's consumer side and the bookkeeping; binds and
//! event writes run as spawned tasks (at most [`LoopConfig::max_writes_in_flight`]) whose
//! outcomes come back to the loop, so the next pod is placed while earlier binds commit.
//!
//! Invariants:
//! - No pod is placed before every cache has synced; the snapshot is then built from the
//!   caches, and each later change notification is applied by re-reading the cache for
//!   that key (level-triggered), so the snapshot never goes back to an older object state.
//! - A pod chosen for a node is assumed on it at once (the next pod sees the capacity
//!   taken) and stays assumed until the informer shows it bound, however many unbound
//!   updates of it arrive meanwhile; a failed bind forgets it and retries with backoff.
//! - A pod key is never scheduled twice at once: it stays *processing* in the [`WorkQueue`]
//!   until its bind has finished.
//! - Pods that fit nowhere wait in `unschedulable` with a per-key backoff; a node added or
//!   changed in a way that may admit more, a pod deleted or finished, or a volume change
//!   queues all of them again at once.
//! - Every write goes through the leader's fenced client: when leadership is lost, binds
//!   fail instead of applying, and the loop stops when the context is cancelled.

mod config;

use std::collections::HashSet;
use std::sync::Arc;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::{ApiError, ApiResult};
use flotilla_controllers::leadership::{Component, LeaderContext};
use flotilla_controllers::node_lifecycle::conditions;
use flotilla_controllers::pod;
use flotilla_controllers::runtime::{Change, Key, Object, Recorder, Store, WorkQueue};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinSet;

pub use config::LoopConfig;
/// Who reports scheduling events (`source.component`), as upstream's scheduler names itself.
pub const COMPONENT: &str = "default-scheduler";
/// The reason of the events written when a pod fits nowhere.
pub const REASON: &str = "FailedScheduling";

use crate::{pod_key, schedule, Snapshot};

/// The scheduler as a leader component with the default configuration.
pub fn component() -> Component {
    component_with(LoopConfig::default())
}

/// The scheduler as a leader component.
pub fn component_with(config: LoopConfig) -> Component {
    Arc::new(move |ctx: LeaderContext| Box::pin(run(ctx, config.clone())))
}

/// Schedule pending pods until `ctx.cancel` fires.
pub async fn run(ctx: LeaderContext, config: LoopConfig) {
    if let Err(e) = config.validate() {
        tracing::error!(error = %e, "invalid scheduler configuration; not scheduling");
        return;
    }
    let (nodes, mut node_rx) = informer::<Node>(&ctx);
    let (pods, mut pod_rx) = informer::<Pod>(&ctx);
    let (pvs, mut pv_rx) = informer::<PersistentVolume>(&ctx);
    let (pvcs, mut pvc_rx) = informer::<PersistentVolumeClaim>(&ctx);
    let (namespaces, mut ns_rx) = informer::<Namespace>(&ctx);
    let mut sched = Scheduler {
        queue: WorkQueue::new(config.backoff),
        config,
        client: ctx.client.clone(),
        caches: Caches { nodes, pods, pvs, pvcs, namespaces },
        snapshot: Snapshot::default(),
        assumed: HashSet::new(),
        unschedulable: HashSet::new(),
        events: Recorder::new(ctx.client.clone(), COMPONENT, ctx.identity.clone()),
        writes: JoinSet::new(),
    };
    let mut synced = false;
    loop {
        let room = sched.writes.len() < sched.config.max_writes_in_flight;
        tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => break,
            Some(c) = node_rx.recv() => if synced { sched.node_changed(c) },
            Some(c) = pod_rx.recv() => if synced { sched.pod_changed(c) },
            Some(c) = pv_rx.recv() => if synced { sched.volume_changed(c.key, true) },
            Some(c) = pvc_rx.recv() => if synced { sched.volume_changed(c.key, false) },
            Some(c) = ns_rx.recv() => if synced { sched.namespace_changed(c.key) },
            Some(done) = sched.writes.join_next(), if !sched.writes.is_empty() => match done {
                Ok(outcome) => sched.finished(outcome),
                Err(e) => tracing::error!(error = %e, "scheduler write task failed"),
            },
            _ = sched.caches.wait_synced(), if !synced => {
                sched.rebuild();
                synced = true;
            }
            Some(key) = sched.queue.get(), if synced && room => sched.schedule_one(key),
        }
    }
    sched.queue.shutdown();
    sched.writes.abort_all();
    tracing::info!("scheduler stopped");
}

/// The term's shared cache of `K` and its changes from now on (the cache is read only after
/// subscribing, so no change is missed).
fn informer<K: Object>(ctx: &LeaderContext) -> (Store<K>, Receiver<Change<K>>) {
    let store = ctx.informers.store::<K>();
    let rx = store.subscribe();
    (store, rx)
}

struct Caches {
    nodes: Store<Node>,
    pods: Store<Pod>,
    pvs: Store<PersistentVolume>,
    pvcs: Store<PersistentVolumeClaim>,
    namespaces: Store<Namespace>,
}

impl Caches {
    async fn wait_synced(&self) {
        self.nodes.wait_synced().await;
        self.pods.wait_synced().await;
        self.pvs.wait_synced().await;
        self.pvcs.wait_synced().await;
        self.namespaces.wait_synced().await;
    }
}

/// What a write task reports back to the loop.
enum Outcome {
    Bind { key: Key, uid: String, node: String, result: ApiResult<()>, started: std::time::Instant },
}

/// The loop's state; only the loop task touches it.
struct Scheduler {
    config: LoopConfig,
    client: Client,
    caches: Caches,
    snapshot: Snapshot,
    queue: WorkQueue,
    /// Pods (by [`pod_key`]) assumed on a node whose binding the informer has not shown yet.
    assumed: HashSet<String>,
    /// Pending pods that fit nowhere at their last attempt.
    unschedulable: HashSet<Key>,
    /// Writes FailedScheduling Events (repeats of one message count up on one Event).
    events: Recorder,
    writes: JoinSet<Outcome>,
}

impl Scheduler {
    /// Whether `pod` is ours to place now.
    fn is_pending(&self, pod: &Pod) -> bool {
        let Some(spec) = pod.spec.as_ref() else { return false };
        spec.scheduler_name.as_deref().unwrap_or(COMPONENT) == self.config.scheduler_name
            && spec.node_name.as_deref().unwrap_or("").is_empty()
            && spec.scheduling_gates.as_ref().is_none_or(Vec::is_empty)
            && pod::is_active(pod)
    }

    /// Build the snapshot from the synced caches and queue every pending pod.
    fn rebuild(&mut self) {
        let mut snap = Snapshot::default();
        self.caches.nodes.list().iter().for_each(|n| snap.upsert_node(n));
        self.caches.pvs.list().iter().for_each(|pv| snap.upsert_pv(pv));
        self.caches.pvcs.list().iter().for_each(|pvc| snap.upsert_pvc(pvc));
        self.caches.namespaces.list().iter().for_each(|ns| snap.upsert_namespace(ns));
        let pods = self.caches.pods.list();
        pods.iter().for_each(|p| snap.upsert_pod(p));
        self.snapshot = snap;
        let pending: Vec<Key> = pods.iter().filter(|p| self.is_pending(p)).map(|p| Key::of(p.as_ref())).collect();
        tracing::info!(nodes = self.snapshot.node_count(), pending = pending.len(), "caches synced; scheduling");
        pending.into_iter().for_each(|k| self.queue.add(k));
    }

    fn node_changed(&mut self, change: Change<Node>) {
        match self.caches.nodes.get_key(&change.key) {
            Some(node) => {
                self.snapshot.upsert_node(&node);
                if change.old.as_deref().is_none_or(|old| may_admit_more(old, &node)) {
                    self.requeue_unschedulable("node added or changed");
                }
            }
            None => self.snapshot.remove_node(&change.key.name),
        }
    }

    fn pod_changed(&mut self, change: Change<Pod>) {
        let current = self.caches.pods.get_key(&change.key);
        let current_uid = current.as_deref().map(pod_key);
        let mut freed = false;
        // Deleted, or replaced by a new pod of the same name: the old one holds nothing.
        if let Some(old_uid) = change.old.as_deref().map(pod_key).filter(|u| Some(u) != current_uid.as_ref()) {
            self.assumed.remove(&old_uid);
            freed |= self.snapshot.forget(&old_uid);
        }
        let Some(pod) = current else {
            self.unschedulable.remove(&change.key);
            if freed {
                self.requeue_unschedulable("pod deleted");
            }
            return;
        };
        let uid = current_uid.expect("current pod exists");
        let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
        if bound {
            self.assumed.remove(&uid);
            let was_placed = self.snapshot.pod_node(&uid).is_some();
            self.snapshot.upsert_pod(&pod);
            freed |= was_placed && self.snapshot.pod_node(&uid).is_none();
            self.unschedulable.remove(&change.key);
        } else if self.assumed.contains(&uid) {
            // Bound by us; the informer has not seen the binding yet. Keep the assumption.
        } else if self.is_pending(&pod) {
            self.queue.add(change.key);
        } else {
            self.unschedulable.remove(&change.key);
        }
        if freed {
            self.requeue_unschedulable("pod finished");
        }
    }

    fn volume_changed(&mut self, key: Key, pv: bool) {
        if pv {
            match self.caches.pvs.get_key(&key) {
                Some(v) => self.snapshot.upsert_pv(&v),
                None => self.snapshot.remove_pv(&key.name),
            }
        } else {
            match self.caches.pvcs.get_key(&key) {
                Some(c) => self.snapshot.upsert_pvc(&c),
                None => self.snapshot.remove_pvc(key.namespace().unwrap_or("default"), &key.name),
            }
        }
        self.requeue_unschedulable("volume changed");
    }

    fn namespace_changed(&mut self, key: Key) {
        match self.caches.namespaces.get_key(&key) {
            Some(ns) => self.snapshot.upsert_namespace(&ns),
            None => self.snapshot.remove_namespace(&key.name),
        }
    }

    fn requeue_unschedulable(&mut self, why: &'static str) {
        if self.unschedulable.is_empty() {
            return;
        }
        tracing::debug!(pods = self.unschedulable.len(), reason = why, "retrying unschedulable pods");
        for key in self.unschedulable.drain() {
            self.queue.add(key);
        }
    }

    /// One attempt at placing the pod `key`. The key stays processing until its bind ends.
    fn schedule_one(&mut self, key: Key) {
        let pod = self.caches.pods.get_key(&key).filter(|p| self.is_pending(p));
        let Some(pod) = pod else {
            self.unschedulable.remove(&key);
            self.queue.forget(&key);
            return self.queue.done(&key);
        };
        let uid = pod_key(&pod);
        if self.snapshot.pod_node(&uid).is_some() {
            // Assumed: its bind is in flight or the informer has not shown it yet.
            return self.queue.done(&key);
        }
        let started = std::time::Instant::now();
        match schedule(&pod, &self.snapshot) {
            Ok(node) => {
                tracing::debug!(pod = %key, node = %node, "placing");
                self.snapshot.assume(&pod, &node);
                self.assumed.insert(uid.clone());
                self.unschedulable.remove(&key);
                let client = self.client.clone();
                self.writes.spawn(async move {
                    let ns = key.namespace().unwrap_or("default").to_string();
                    let result = client.bind(&ns, &key.name, &node).await;
                    Outcome::Bind { key, uid, node, result, started }
                });
            }
            Err(fit) => {
                attempted("unschedulable", started);
                let delay = self.queue.add_rate_limited(key.clone());
                tracing::debug!(pod = %key, reason = %fit, retry_in = ?delay, "unschedulable");
                self.unschedulable.insert(key.clone());
                self.events.warning(pod.as_ref(), REASON, fit.to_string());
                self.queue.done(&key);
            }
        }
    }

    fn finished(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Bind { key, result: Ok(()), node, started, .. } => {
                attempted("scheduled", started);
                tracing::info!(pod = %key, node = %node, "bound");
                self.queue.forget(&key);
                self.queue.done(&key);
            }
            Outcome::Bind { key, uid, node, result: Err(e), started } => {
                attempted("error", started);
                if self.assumed.remove(&uid) {
                    self.snapshot.forget(&uid);
                }
                match e {
                    // Bound elsewhere, being deleted, or gone: the informer will tell.
                    ApiError::PreconditionFailed(..) | ApiError::NotFound(_) => {
                        tracing::debug!(pod = %key, node = %node, error = %e, "bind not needed any more")
                    }
                    e => {
                        let delay = self.queue.add_rate_limited(key.clone());
                        tracing::warn!(pod = %key, node = %node, error = %e, retry_in = ?delay, "bind failed");
                    }
                }
                self.queue.done(&key);
            }
        }
    }
}

/// Count one scheduling attempt (placement, and the bind when placed) by its result.
fn attempted(result: &str, started: std::time::Instant) {
    let m = flotilla_metrics::scheduler();
    m.attempts.get_or_create(&flotilla_metrics::ResultLabels { result: result.to_string() }).inc();
    m.attempt_seconds.observe(started.elapsed().as_secs_f64());
}

/// Whether a node update may let a pod fit that did not before: anything the filters read
/// changed (a heartbeat that only moves timestamps does not queue every waiting pod).
fn may_admit_more(old: &Node, new: &Node) -> bool {
    let ready = |n: &Node| conditions::status(n, conditions::READY).map(str::to_string);
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.status.as_ref().map(|s| &s.allocatable) != new.status.as_ref().map(|s| &s.allocatable)
        || ready(old) != ready(new)
}
