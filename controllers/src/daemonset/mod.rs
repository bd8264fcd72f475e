//! The DaemonSet controller: one daemon pod on every eligible node, placed by the
//! scheduler, replaced when it fails, rolled to new templates within `maxUnavailable`.
//!
//! Invariants:
//! - A node gets a new daemon pod only when the cache shows none for it, and never while
//!   this controller's own creates or deletes are not yet in the cache (expectations, as
//!   the ReplicaSet controller's), so a lagging cache cannot cause a second pod.
//! - Without surge, a rolling update deletes an available old pod only while the nodes
//!   lacking an available daemon pod stay within `maxUnavailable` ([`plan::rolling`]).
//! - A failed pod is replaced, at most once per node per backoff delay ([`failed`]).
//!
//! Data flow: the term's shared informers on DaemonSets, Pods, Nodes and ControllerRevisions; a pod or
//! revision change queues its controlling DaemonSet, and a node added, removed, relabelled
//! or retainted queues every DaemonSet. One reconcile of a DaemonSet:
//! 1. gets the update revision (and its hash) from [`crate::history`];
//! 2. groups its pods by target node and decides each node's fit ([`eligibility`]);
//! 3. unless writes are pending, applies [`plan::manage`], or when that has nothing to do
//!    and the strategy is RollingUpdate, one [`plan::rolling`] step;
//! 4. writes the [`status`] when it changed and prunes revisions no pod uses beyond
//!    `revisionHistoryLimit`.
//!
//! Orphan pods and revisions are not adopted (upstream claims them).

pub mod eligibility;
pub mod failed;
pub mod plan;
pub mod pods;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::{Api, Client};
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::{ApiError, ApiResult};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::history::{self, REVISION_HASH_LABEL};
use crate::leadership::{Component, LeaderContext};
use crate::pod::{is_finished, is_terminating};
use crate::replicaset::expectations::{Expectations, EXPECTATION_TTL};
use crate::replicaset::slow_start::Creates;
use crate::runtime::{owner, Action, Change, Controller, ControllerConfig, Key};
use crate::runtime::{Reconciler, Recorder, Store};
use failed::FailedPods;
use plan::{NodePods, Rolling};

/// Most pods one reconcile creates (upstream's `BurstReplicas` for DaemonSets): a thousand
/// new nodes are covered over several reconciles, not one unbounded burst of writes.
pub const BURST: usize = 250;
/// Added to an availability wait before the recheck, so the pod is surely available then.
const RECHECK_SLACK: Duration = Duration::from_millis(100);

/// The controller as a leader-only component.
pub fn component() -> Component {
    Arc::new(|ctx: LeaderContext| Box::pin(run(ctx)))
}

/// Run the controller over the term's shared informers until `ctx.cancel` fires.
pub async fn run(ctx: LeaderContext) {
    let sets = ctx.informers.store::<DaemonSet>();
    let pods = ctx.informers.store::<Pod>();
    let nodes = ctx.informers.store::<Node>();
    let revisions = ctx.informers.store::<ControllerRevision>();
    let reconciler = DaemonSetController {
        client: ctx.client.clone(),
        sets: sets.clone(),
        pods: pods.clone(),
        nodes: nodes.clone(),
        revisions: revisions.clone(),
        recorder: Recorder::new(ctx.client.clone(), "daemonset-controller", ctx.identity.clone()),
        expectations: Expectations::default(),
        failed: FailedPods::default(),
    };
    let all = sets.clone();
    Controller::new("daemonset", reconciler, &sets, ControllerConfig::default())
        .owns(&pods)
        .owns(&revisions)
        .watches(&nodes, move |change| if placement_changed(change) { all.keys() } else { Vec::new() })
        .run(ctx.cancel)
        .await;
}

/// Whether a node change can change where daemon pods belong: added, removed, or its
/// labels or taints changed (status heartbeats do not).
fn placement_changed(change: &Change<Node>) -> bool {
    match (&change.old, &change.new) {
        (Some(old), Some(new)) => {
            let taints = |n: &Node| n.spec.as_ref().and_then(|s| s.taints.clone());
            old.metadata.labels != new.metadata.labels || taints(old) != taints(new)
        }
        _ => true,
    }
}

pub struct DaemonSetController {
    client: Client,
    sets: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    recorder: Recorder,
    expectations: Expectations,
    failed: FailedPods,
}

impl Reconciler for DaemonSetController {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> ApiResult<Action> {
        let Some(ds) = self.sets.get_key(key) else {
            self.expectations.forget(key);
            self.failed.forget(key);
            return Ok(Action::Done);
        };
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let ns = key.namespace().unwrap_or_default();
        let sorted = history::owned(&self.revisions, ns, ds.metadata.uid.as_deref().unwrap_or_default());
        let template = ds.spec.clone().unwrap_or_default().template;
        let collisions = ds.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
        let rev_api = self.client.api::<ControllerRevision>(Some(ns));
        let (update, collisions) = history::ensure(&rev_api, ds.as_ref(), &sorted, &template, collisions).await?;
        let hash = revision_hash(&update);
        let nodes = self.node_pods(&ds);

        let cache = &self.pods;
        let pending = self.expectations.pending(
            key,
            |name| cache.get(Some(ns), name).is_some(),
            |name, uid| {
                cache.get(Some(ns), name).is_none_or(|p| p.metadata.uid.as_deref() != Some(uid) || is_terminating(&p))
            },
        );
        let (now, min_ready) = (jiff::Timestamp::now(), pods::min_ready(&ds));
        let outcome = if pending { Ok(Some(EXPECTATION_TTL)) } else { self.sync(key, &ds, &nodes, &hash).await };

        let (status, available_in) = status::compute(&ds, &nodes, &hash, collisions, min_ready, now);
        if ds.status.as_ref() != Some(&status) {
            let mut updated = (*ds).clone();
            updated.status = Some(status);
            self.client.api::<DaemonSet>(Some(ns)).update_status(&key.name, &updated).await?;
        }
        let live_hashes = plan::live_hashes(&nodes);
        let mut live: BTreeSet<String> = sorted
            .iter()
            .filter(|r| live_hashes.contains(&revision_hash(r)))
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        live.extend(update.metadata.name.clone());
        let limit = history::history_limit(ds.spec.as_ref().and_then(|s| s.revision_history_limit));
        history::truncate(&rev_api, &sorted, &live, limit).await?;

        let wait = [outcome?, available_in.map(|d| d + RECHECK_SLACK)].into_iter().flatten().min();
        Ok(wait.map_or(Action::Done, Action::RequeueAfter))
    }
}

/// The hash pods of revision `rev` carry (its label; else its name's suffix).
fn revision_hash(rev: &ControllerRevision) -> String {
    let label = rev.metadata.labels.as_ref().and_then(|l| l.get(REVISION_HASH_LABEL)).cloned();
    let name = rev.metadata.name.as_deref().unwrap_or_default();
    label.unwrap_or_else(|| name.rsplit_once('-').map_or(name, |(_, h)| h).to_string())
}

impl DaemonSetController {
    /// Every node with its fit, and the DaemonSet's pods by target node (nodes that no
    /// longer exist included, with no fit). Pods both terminating and finished are left out.
    fn node_pods(&self, ds: &DaemonSet) -> BTreeMap<String, NodePods> {
        let spec = pods::daemon_spec(ds);
        let mut map: BTreeMap<String, NodePods> = self
            .nodes
            .list()
            .iter()
            .map(|n| {
                let fit = Some(eligibility::fit(&spec, n));
                (n.metadata.name.clone().unwrap_or_default(), NodePods { fit, pods: Vec::new() })
            })
            .collect();
        let ns = ds.metadata.namespace.as_deref().unwrap_or_default();
        for pod in self.pods.list_in(ns) {
            let ours = owner::is_controlled_by(&pod.metadata, &ds.metadata);
            if !ours || (is_terminating(&pod) && is_finished(&pod)) {
                continue;
            }
            let Some(node) = eligibility::target_node(&pod).map(String::from) else {
                tracing::warn!(pod = ?pod.metadata.name, "daemon pod without a target node; ignored");
                continue;
            };
            map.entry(node).or_insert(NodePods { fit: None, pods: Vec::new() }).pods.push(pod);
        }
        map
    }

    /// Decide this reconcile's writes and make them; returns how soon a failed pod's
    /// backoff ends, if one must wait.
    async fn sync(
        &self,
        key: &Key,
        ds: &DaemonSet,
        nodes: &BTreeMap<String, NodePods>,
        hash: &str,
    ) -> ApiResult<Option<Duration>> {
        let desired = nodes.values().filter(|n| n.fit.is_some_and(|f| f.should_run)).count();
        let (max_surge, max_unavailable) = pods::bounds(ds, desired);
        let surge = pods::rolling(ds) && max_surge > 0;
        let mut writes = plan::manage(nodes, hash, surge);
        if writes.is_empty() && pods::rolling(ds) {
            let now = jiff::Timestamp::now();
            let r = Rolling { max_unavailable, max_surge, min_ready: pods::min_ready(ds), now };
            writes = plan::rolling(nodes, hash, r);
        }
        let mut backoff = None;
        let ns = key.namespace().unwrap_or_default();
        let clock = std::time::Instant::now();
        for (pod, node) in std::mem::take(&mut writes.failed) {
            if let Some(wait) = self.failed.wait(key, &node, clock) {
                backoff = Some(backoff.map_or(wait, |b: Duration| b.min(wait)));
                continue;
            }
            self.failed.record(key, &node, clock);
            let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
            let msg = format!("Found failed daemon pod {ns}/{pod_name} on node {node}, will try to kill it");
            self.recorder.warning(ds, "FailedDaemonPod", msg);
            writes.delete.push((pod, false));
        }
        let api = self.client.api::<Pod>(Some(ns));
        let deleted = self.delete(key, ds, &api, &writes.delete).await;
        let created = self.create(key, ds, &api, &writes.create_on, hash).await;
        deleted.and(created).map(|()| backoff)
    }

    /// Create a pod for each node, in slow-start batches (1, 2, 4, …), at most [`BURST`].
    async fn create(&self, key: &Key, ds: &DaemonSet, api: &Api<Pod>, on: &[String], hash: &str) -> ApiResult<()> {
        let made: Vec<Pod> = on.iter().take(BURST).map(|node| pods::new_pod(ds, node, hash)).collect();
        let creates = Creates { api, events: &self.recorder, expectations: &self.expectations };
        let (created, error) = creates.run(ds, key, &made).await;
        if !made.is_empty() {
            tracing::info!(created, wanted = made.len(), "created daemon pods");
        }
        error.map_or(Ok(()), Err)
    }

    /// Delete each pod (preconditioned on its uid; with no grace period when flagged).
    async fn delete(&self, key: &Key, ds: &DaemonSet, api: &Api<Pod>, doomed: &[(Arc<Pod>, bool)]) -> ApiResult<()> {
        let deletes = doomed.iter().map(|(pod, force)| async move {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let opts = DeleteOptions {
                precondition_uid: Some(uid.clone()),
                grace_period_seconds: force.then_some(0),
                ..Default::default()
            };
            (name, uid, api.delete(&pod.metadata.name.clone().unwrap_or_default(), &opts).await)
        });
        let mut first_error = None;
        for (name, uid, result) in join_all(deletes).await {
            match result {
                Ok(_) => {
                    tracing::info!(pod = %name, "deleted daemon pod");
                    self.recorder.normal(ds, "SuccessfulDelete", format!("Deleted pod: {name}"));
                    self.expectations.deleted(key, name, uid);
                }
                Err(ApiError::NotFound(_) | ApiError::PreconditionFailed(..)) => {}
                Err(e) => {
                    self.recorder.warning(ds, "FailedDelete", format!("Error deleting: {e}"));
                    first_error = first_error.or(Some(e));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
