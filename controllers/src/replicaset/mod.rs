//! The ReplicaSet controller: keeps `spec.replicas` active pods matching each ReplicaSet.
//!
//! Data flow: informers cache ReplicaSets and Pods (all namespaces); a pod change queues its
//! controlling ReplicaSet, and an orphan pod's change queues every ReplicaSet whose selector
//! matches it (so it can be adopted). A reconcile of one ReplicaSet then:
//! 1. takes the namespace's pods from the cache; adopts matching orphans (controller
//!    ownerReference with `blockOwnerDeletion`, a CAS update) and releases owned pods that
//!    no longer match; pods controlled by anything else are left alone;
//! 2. unless earlier writes are not yet in the cache ([`expectations`]), creates the missing
//!    pods ([`slow_start`]: batches of 1, 2, 4, …, at most [`BURST`] per reconcile) or deletes
//!    the surplus in [`pod::deletion_order`];
//! 3. writes `status` (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
//!    observedGeneration) through the status subresource when it changed.
//!
//! A deleted ReplicaSet's pods are the garbage collector's business. Every write goes
//! through the leader's fenced client and is a CAS, so a deposed leader's decision fails.

pub mod expectations;
pub mod pods;
pub mod slow_start;

use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::{Api, Client};
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::selector::LabelSelector;
use flotilla_apiserver::ApiError;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;

use crate::leadership::{Component, LeaderContext};
use crate::pod;
use crate::runtime::{owner, Action, Change, Controller, ControllerConfig, Key, Recorder, Store};
use expectations::{Expectations, EXPECTATION_TTL};
use slow_start::Creates;

/// Most pods one reconcile creates or deletes (upstream's `burstReplicas`): a huge scale-up
/// proceeds over several reconciles instead of one unbounded burst of writes.
pub const BURST: usize = 500;

/// The controller as a leader-only component.
pub fn component() -> Component {
    Arc::new(|ctx: LeaderContext| Box::pin(run(ctx)))
}

/// Who reports the controller's Events, as upstream's controller-manager names it.
pub const EVENT_SOURCE: &str = "replicaset-controller";

/// Run the informers and the controller until `cancel` fires.
pub async fn run(ctx: LeaderContext) {
    let (replicasets, pods) = (ctx.informers.store::<ReplicaSet>(), ctx.informers.store::<Pod>());
    let events = Recorder::new(ctx.client.clone(), EVENT_SOURCE, ctx.identity);
    let reconciler = ReplicaSetController::new(ctx.client, replicasets.clone(), pods.clone()).with_events(events);
    let rs_cache = replicasets.clone();
    let controller = Controller::new("replicaset", reconciler, &replicasets, ControllerConfig::default())
        .watches(&pods, move |change| pod_to_replicasets(&rs_cache, change));
    controller.run(ctx.cancel).await;
}

/// The ReplicaSets to reconcile after a pod change: its controller (before and after), or,
/// for an orphan, every ReplicaSet of its namespace whose selector matches it.
fn pod_to_replicasets(replicasets: &Store<ReplicaSet>, change: &Change<Pod>) -> Vec<Key> {
    let mut keys = owner::controller_keys::<ReplicaSet, Pod>(change);
    for pod in change.objects().filter(|p| owner::controller_ref(&p.metadata).is_none()) {
        let (Some(ns), Some(labels)) = (pod.metadata.namespace.as_deref(), pod.metadata.labels.as_ref()) else {
            continue;
        };
        for rs in replicasets.list_in(ns) {
            if selector(&rs).is_some_and(|s| s.matches(labels)) {
                keys.push(Key::of(rs.as_ref()));
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The ReplicaSet's pod selector; None (select nothing) when absent or invalid.
fn selector(rs: &ReplicaSet) -> Option<LabelSelector> {
    let sel = serde_json::to_value(&rs.spec.as_ref()?.selector).ok()?;
    let parsed = LabelSelector::from_label_selector(&sel).ok()?;
    // An empty selector would claim every pod of the namespace; validation forbids it.
    (!parsed.is_everything()).then_some(parsed)
}

/// The reconciler; [`run`] wires it to informers. Public so tests can drive it over caches
/// they fill themselves (e.g. a pod cache that lags the store on purpose).
pub struct ReplicaSetController {
    client: Client,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    expectations: Expectations,
    events: Recorder,
}

impl ReplicaSetController {
    /// A reconciler that records no Events (see [`Self::with_events`]).
    pub fn new(client: Client, replicasets: Store<ReplicaSet>, pods: Store<Pod>) -> Self {
        let events = Recorder::detached(EVENT_SOURCE, "");
        Self { client, replicasets, pods, expectations: Expectations::default(), events }
    }

    /// Record pod creations and deletions as Events through `events`.
    pub fn with_events(self, events: Recorder) -> Self {
        Self { events, ..self }
    }
}

impl crate::runtime::Reconciler for ReplicaSetController {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> Result<Action, ApiError> {
        let Some(rs) = self.replicasets.get_key(key) else {
            self.expectations.forget(key);
            return Ok(Action::Done);
        };
        let Some(selector) = selector(&rs) else {
            tracing::warn!("invalid or empty selector; not managing pods");
            return Ok(Action::Done);
        };
        let ns = key.namespace().unwrap_or_default();
        let api = self.client.api::<Pod>(Some(ns));
        // A ReplicaSet being deleted neither adopts nor releases (nor scales, below).
        let live = rs.metadata.deletion_timestamp.is_none();
        let mut active = Vec::new();
        for pod in self.pods.list_in(ns) {
            let matches = pod.metadata.labels.as_ref().is_some_and(|l| selector.matches(l));
            let (ours, orphan) =
                (owner::is_controlled_by(&pod.metadata, &rs.metadata), owner::controller_ref(&pod.metadata).is_none());
            if ours && matches {
                active.push(pod);
            } else if ours && live {
                release(&api, &rs, &pod).await?;
            } else if matches && orphan && live && pod::is_active(&pod) {
                active.extend(adopt(&api, &rs, &pod).await?);
            }
        }
        active.retain(|p| pod::is_active(p));

        let cache = &self.pods;
        let pending = self.expectations.pending(
            key,
            |name| cache.get(Some(ns), name).is_some(),
            |name, uid| {
                cache.get(Some(ns), name).is_none_or(|p| p.metadata.uid.as_deref() != Some(uid) || !pod::is_active(&p))
            },
        );
        let manage = !pending && live;
        let scaled = if manage { self.scale(key, &api, &rs, active.clone()).await } else { Ok(()) };

        let (status, next_check) = pods::status(&rs, &active, jiff::Timestamp::now());
        if rs.status.as_ref() != Some(&status) {
            let mut updated = (*rs).clone();
            updated.status = Some(status);
            self.client.api::<ReplicaSet>(Some(ns)).update_status(&key.name, &updated).await?;
        }
        scaled?;
        Ok(match (pending, next_check) {
            (true, _) => Action::RequeueAfter(EXPECTATION_TTL),
            (false, Some(wait)) => Action::RequeueAfter(wait + Duration::from_millis(100)),
            (false, None) => Action::Done,
        })
    }
}

impl ReplicaSetController {
    /// Create or delete pods so that `active` becomes `spec.replicas` pods.
    async fn scale(
        &self,
        key: &Key,
        api: &Api<Pod>,
        rs: &ReplicaSet,
        mut active: Vec<Arc<Pod>>,
    ) -> Result<(), ApiError> {
        let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
        if active.len() < desired {
            let missing = vec![pods::new_pod(rs); (desired - active.len()).min(BURST)];
            let creates = Creates { api, events: &self.events, expectations: &self.expectations };
            let (created, error) = creates.run(rs, key, &missing).await;
            tracing::info!(created, wanted = missing.len(), "created pods");
            if let Some(e) = error {
                return Err(e);
            }
        } else if active.len() > desired {
            pod::deletion_order(&mut active);
            active.truncate((active.len() - desired).min(BURST));
            let deletes = active.iter().map(|pod| async move {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let opts = DeleteOptions { precondition_uid: Some(uid.clone()), ..Default::default() };
                match api.delete(&name, &opts).await {
                    Ok(_) => Ok(Some((name, uid))),
                    Err(ApiError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            });
            let mut first_error = None;
            for r in join_all(deletes).await {
                match r {
                    Ok(Some((name, uid))) => {
                        self.events.normal(rs, "SuccessfulDelete", format!("Deleted pod: {name}"));
                        self.expectations.deleted(key, name, uid)
                    }
                    Ok(None) => {}
                    Err(e) => first_error = first_error.or(Some(e)),
                }
            }
            tracing::info!(deleted = active.len(), "deleted pods");
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Make `rs` the controller of the orphan `pod` (a CAS on the cached resourceVersion, so a
/// pod changed meanwhile is not adopted on stale grounds). None when the pod is gone.
async fn adopt(api: &Api<Pod>, rs: &ReplicaSet, pod: &Pod) -> Result<Option<Arc<Pod>>, ApiError> {
    let mut adopted = pod.clone();
    adopted.metadata.owner_references.get_or_insert_with(Vec::new).push(owner::controller_reference(rs));
    match api.update(pod.metadata.name.as_deref().unwrap_or_default(), &adopted).await {
        Ok(p) => {
            tracing::info!(pod = ?p.metadata.name, "adopted orphan pod");
            Ok(Some(Arc::new(p)))
        }
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Drop `rs`'s controller reference from a pod that no longer matches its selector.
async fn release(api: &Api<Pod>, rs: &ReplicaSet, pod: &Pod) -> Result<(), ApiError> {
    let mut released = pod.clone();
    if let Some(refs) = released.metadata.owner_references.as_mut() {
        refs.retain(|r| Some(&r.uid) != rs.metadata.uid.as_ref());
    }
    match api.update(pod.metadata.name.as_deref().unwrap_or_default(), &released).await {
        Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
