//! The StatefulSet controller: pods with stable names, ordinals and storage, created,
//! deleted and updated in ordinal order.
//!
//! Invariants:
//! - At most one pod per ordinal, ever: pods are named `<set>-<ordinal>` (deterministic, so
//!   a lagging cache can only cause an `AlreadyExists`, never a second pod), and a pod is
//!   replaced only after the old one is gone.
//! - Under `OrderedReady`, pod `i` is created only when pods `start..i` are Running and
//!   Ready (and available for `minReadySeconds`); scale-down removes the highest ordinal
//!   first, one at a time, when every remaining pod is ready ([`plan`]).
//! - A pod's claims exist before the pod is created and outlive it ([`claims`]).
//! - A rolling update takes down one pod at a time, highest ordinal first, never below
//!   `partition`; pods below the partition are (re)created from the current revision.
//!
//! Data flow: the term's shared informers on StatefulSets, Pods, ControllerRevisions and PVCs; a change of a
//! pod or revision queues its controlling set. One reconcile of a set:
//! 1. collects its pods by ordinal (pods it controls whose name is `<set>-<ordinal>`);
//! 2. gets the update revision from [`crate::history`] (created or renumbered as needed)
//!    and the current one (`status.currentRevision`, else the update revision);
//! 3. brings claim ownerReferences in line with the retention policy, then carries out
//!    the [`plan`]: creates (claims first) and deletes, with upstream's events;
//! 4. writes the [`status`] when it changed, then prunes revisions no pod uses beyond
//!    `revisionHistoryLimit`.
//!
//! Orphan pods and revisions are not adopted (upstream claims them); a pod of another
//! owner that holds a pod's name blocks that ordinal and is reported by a Warning event.

pub mod claims;
pub mod plan;
pub mod pods;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::{ApiError, ApiResult};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use crate::history;
use crate::leadership::{Component, LeaderContext};
use crate::pod;
use crate::runtime::{owner, Action, Controller, ControllerConfig, Key, Recorder};
use crate::runtime::{Reconciler, Store};
use plan::{From, Step, Why};

/// Added to a readiness wait before the recheck, so the pod is surely available by then.
const RECHECK_SLACK: Duration = Duration::from_millis(100);
/// How soon to look again while a pod waits for its old claim to finish deleting (claim
/// changes do not queue the set).
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// The controller as a leader-only component.
pub fn component() -> Component {
    Arc::new(|ctx: LeaderContext| Box::pin(run(ctx)))
}

/// Run the controller over the term's shared informers until `ctx.cancel` fires.
pub async fn run(ctx: LeaderContext) {
    let sets = ctx.informers.store::<StatefulSet>();
    let pods = ctx.informers.store::<Pod>();
    let revisions = ctx.informers.store::<ControllerRevision>();
    let claims = ctx.informers.store::<PersistentVolumeClaim>();
    let reconciler = StatefulSetController {
        client: ctx.client.clone(),
        sets: sets.clone(),
        pods: pods.clone(),
        revisions: revisions.clone(),
        claims: claims.clone(),
        recorder: Recorder::new(ctx.client.clone(), "statefulset-controller", ctx.identity.clone()),
    };
    Controller::new("statefulset", reconciler, &sets, ControllerConfig::default())
        .owns(&pods)
        .owns(&revisions)
        .reads(&claims)
        .run(ctx.cancel)
        .await;
}

pub struct StatefulSetController {
    client: Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    claims: Store<PersistentVolumeClaim>,
    recorder: Recorder,
}

/// The two revisions one reconcile works with.
struct Revisions {
    current: Arc<ControllerRevision>,
    update: Arc<ControllerRevision>,
}

fn name_of(rev: &ControllerRevision) -> &str {
    rev.metadata.name.as_deref().unwrap_or_default()
}

impl Reconciler for StatefulSetController {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> ApiResult<Action> {
        let Some(set) = self.sets.get_key(key) else { return Ok(Action::Done) };
        if set.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let ns = key.namespace().unwrap_or_default();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let pods = self.pods_of(&set);
        let sorted = history::owned(&self.revisions, ns, &uid);
        let template = set.spec.clone().unwrap_or_default().template;
        let collisions = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
        let rev_api = self.client.api::<ControllerRevision>(Some(ns));
        let (update, collisions) = history::ensure(&rev_api, set.as_ref(), &sorted, &template, collisions).await?;
        let wanted = set.status.as_ref().and_then(|s| s.current_revision.clone());
        let current = sorted.iter().find(|r| r.metadata.name == wanted).cloned().unwrap_or_else(|| update.clone());
        let revs = Revisions { current, update };

        let now = jiff::Timestamp::now();
        let plan = plan::plan(&set, &pods, name_of(&revs.update), now);
        let outcome = match self.retain_claims(&set, &pods).await {
            Ok(()) => self.execute(&set, &revs, &plan.steps).await,
            Err(e) => Err(e),
        };

        let status = status::compute(&set, &pods, name_of(&revs.current), name_of(&revs.update), collisions, now);
        if set.status.as_ref() != Some(&status) {
            let mut updated = (*set).clone();
            updated.status = Some(status);
            self.client.api::<StatefulSet>(Some(ns)).update_status(&key.name, &updated).await?;
        }
        let mut live: BTreeSet<String> = pods.values().filter_map(|p| pods::revision_of(p)).map(String::from).collect();
        live.extend([name_of(&revs.current).to_string(), name_of(&revs.update).to_string()]);
        let limit = history::history_limit(set.spec.as_ref().and_then(|s| s.revision_history_limit));
        history::truncate(&rev_api, &sorted, &live, limit).await?;

        let available_in = status::next_available(&set, &pods, now);
        let wait = [outcome?, plan.recheck.or(available_in).map(|d| d + RECHECK_SLACK)].into_iter().flatten().min();
        Ok(wait.map_or(Action::Done, Action::RequeueAfter))
    }
}

impl StatefulSetController {
    /// The set's pods by ordinal: those it controls whose name is `<set>-<ordinal>`.
    fn pods_of(&self, set: &StatefulSet) -> BTreeMap<i32, Arc<Pod>> {
        let name = set.metadata.name.as_deref().unwrap_or_default();
        let ns = set.metadata.namespace.as_deref().unwrap_or_default();
        self.pods
            .list_in(ns)
            .into_iter()
            .filter(|p| owner::is_controlled_by(&p.metadata, &set.metadata))
            .filter_map(|p| Some((pods::ordinal_of(name, p.metadata.name.as_deref()?)?, p)))
            .collect()
    }

    /// Carry out the plan's steps in order; returns how soon to look again when a pod
    /// waits for its old claim to go.
    async fn execute(&self, set: &StatefulSet, revs: &Revisions, steps: &[Step]) -> ApiResult<Option<Duration>> {
        for step in steps {
            match step {
                Step::Create { ordinal, from } => {
                    if !self.ensure_claims(set, *ordinal).await? {
                        return Ok(Some(CLAIM_RETRY));
                    }
                    self.create_pod(set, revs, *ordinal, *from).await?;
                }
                Step::Delete { pod, why } => self.delete_pod(set, pod, *why).await?,
            }
        }
        Ok(None)
    }

    async fn create_pod(&self, set: &StatefulSet, revs: &Revisions, ordinal: i32, from: From) -> ApiResult<()> {
        let rev = if from == From::Current { &revs.current } else { &revs.update };
        let spec_template = set.spec.clone().unwrap_or_default().template;
        let template =
            if from == From::Current { history::template_of(rev).unwrap_or(spec_template) } else { spec_template };
        let pod = pods::new_pod(set, &template, ordinal, name_of(rev));
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let set_name = set.metadata.name.as_deref().unwrap_or_default();
        match self.client.api::<Pod>(set.metadata.namespace.as_deref()).create(&pod).await {
            Ok(_) => {
                tracing::info!(pod = %pod_name, revision = name_of(rev), "created pod");
                let msg = format!("create Pod {pod_name} in StatefulSet {set_name} successful");
                self.recorder.normal(set, "SuccessfulCreate", msg);
                Ok(())
            }
            Err(ApiError::AlreadyExists(_)) => {
                let ns = set.metadata.namespace.as_deref();
                if self.pods.get(ns, &pod_name).is_some() {
                    let why = "the name is taken by a pod the StatefulSet does not control";
                    let msg = format!("create Pod {pod_name} in StatefulSet {set_name} failed error: {why}");
                    self.recorder.warning(set, "FailedCreate", msg);
                }
                // Otherwise the cache has not shown our own create yet; its event requeues the set.
                Ok(())
            }
            Err(e) => {
                let msg = format!("create Pod {pod_name} in StatefulSet {set_name} failed error: {e}");
                self.recorder.warning(set, "FailedCreate", msg);
                Err(e)
            }
        }
    }

    async fn delete_pod(&self, set: &StatefulSet, pod: &Pod, why: Why) -> ApiResult<()> {
        let (ns, set_name) = (set.metadata.namespace.as_deref(), set.metadata.name.as_deref().unwrap_or_default());
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        if why == Why::Finished {
            let msg = format!("StatefulSet {}/{set_name} is recreating failed Pod {pod_name}", ns.unwrap_or_default());
            self.recorder.warning(set, "RecreatingFailedPod", msg);
        }
        let opts = DeleteOptions { precondition_uid: pod.metadata.uid.clone(), ..Default::default() };
        match self.client.api::<Pod>(ns).delete(pod_name, &opts).await {
            Ok(_) => {
                tracing::info!(pod = pod_name, ?why, "deleted pod");
                let msg = format!("delete Pod {pod_name} in StatefulSet {set_name} successful");
                self.recorder.normal(set, "SuccessfulDelete", msg);
                Ok(())
            }
            Err(ApiError::NotFound(_) | ApiError::PreconditionFailed(..)) => Ok(()),
            Err(e) => {
                let msg = format!("delete Pod {pod_name} in StatefulSet {set_name} failed error: {e}");
                self.recorder.warning(set, "FailedDelete", msg);
                Err(e)
            }
        }
    }

    /// Create the missing claims of `ordinal`; false when one is still being deleted (the
    /// pod must wait for it to go and be made afresh).
    async fn ensure_claims(&self, set: &StatefulSet, ordinal: i32) -> ApiResult<bool> {
        let ns = set.metadata.namespace.as_deref();
        let set_name = set.metadata.name.as_deref().unwrap_or_default();
        let pod_name = pods::pod_name(set_name, ordinal);
        for mut claim in pods::claims(set, ordinal) {
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            match self.claims.get(ns, &claim_name) {
                Some(c) if c.metadata.deletion_timestamp.is_some() => return Ok(false),
                Some(_) => continue,
                None => {}
            }
            let refs = claims::owner_refs(set, &Pod::default(), false, &[]);
            claim.metadata.owner_references = (!refs.is_empty()).then_some(refs);
            match self.client.api::<PersistentVolumeClaim>(ns).create(&claim).await {
                Ok(_) => {
                    let msg = format!("create Claim {claim_name} Pod {pod_name} in StatefulSet {set_name} success");
                    self.recorder.normal(set, "SuccessfulCreate", msg);
                }
                Err(ApiError::AlreadyExists(_)) => {}
                Err(e) => {
                    let msg = format!(
                        "create Claim {claim_name} for Pod {pod_name} in StatefulSet {set_name} failed error: {e}"
                    );
                    self.recorder.warning(set, "FailedCreate", msg);
                    return Err(e);
                }
            }
        }
        Ok(true)
    }

    /// Give the claims of every live pod the ownerReferences the retention policy asks for
    /// (before any condemned pod is deleted, so its claims follow it when they should).
    async fn retain_claims(&self, set: &StatefulSet, pods: &BTreeMap<i32, Arc<Pod>>) -> ApiResult<()> {
        let ns = set.metadata.namespace.as_deref();
        let api = self.client.api::<PersistentVolumeClaim>(ns);
        for (ordinal, pod) in pods.iter().filter(|(_, p)| !pod::is_terminating(p)) {
            let scaled_down = !pods::in_range(set, *ordinal);
            for wanted in pods::claims(set, *ordinal) {
                let Some(claim) = self.claims.get(ns, wanted.metadata.name.as_deref().unwrap_or_default()) else {
                    continue;
                };
                let current = claim.metadata.owner_references.clone().unwrap_or_default();
                let refs = claims::owner_refs(set, pod, scaled_down, &current);
                if refs == current || claim.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let mut updated = (*claim).clone();
                updated.metadata.owner_references = (!refs.is_empty()).then_some(refs);
                match api.update(claim.metadata.name.as_deref().unwrap_or_default(), &updated).await {
                    Ok(_) | Err(ApiError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}
