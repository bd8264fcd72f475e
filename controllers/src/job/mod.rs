//! The Job controller (batch/v1): runs each Job's pods to the number of successful
//! completions it asks for, or fails it.
//!
//! Invariants:
//! - Active pods never exceed `parallelism` nor the completions still missing; a pod cache
//!   that lags this controller's creates never causes a duplicate (expectations, as the
//!   ReplicaSet controller).
//! - Every finished pod is counted exactly once in `status.succeeded`/`status.failed`, also
//!   across leader changes: pods hold a tracking finalizer until their outcome is recorded
//!   (see [`tracking`]). A pod deleted while running counts as failed.
//! - A Job is `Complete`/`Failed` only once every pod is counted and none is terminating;
//!   `SuccessCriteriaMet`/`FailureTarget` record the decision first, as upstream 1.32.
//! - A finished Job's pods lose their finalizers; its pods are left for the garbage
//!   collector, and the Job itself is deleted `ttlSecondsAfterFinished` after finishing.
//!
//! Data flow: informers on Jobs and Pods; a pod change queues its controlling Job (also
//! when that Job is gone, so its pods' finalizers are released). One reconcile of a live,
//! unfinished Job: tally its pods ([`decide::tally`]); decide failure (backoff limit,
//! deadline) or otherwise create/delete pods ([`decide::plan`]) — new pods wait out the
//! failure backoff, a suspended Job deletes its active pods; then count finished pods and
//! write the status ([`tracking`]). Deletes of pods for suspension or surplus drop the
//! finalizer first, so those pods are not failures; deletes because the Job failed keep it.
//! Every write goes through the leader's fenced client and is a CAS or uid-pinned.

pub mod decide;
pub mod indexed;
pub mod pods;
mod sync;
mod tracking;
mod ttl;

use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::ApiError;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use crate::leadership::{Component, LeaderContext};
use crate::replicaset::expectations::Expectations;
use crate::runtime::{owner, Action, Backoff, Controller, ControllerConfig, Key, Recorder};
use crate::runtime::{Reconciler, Store};

pub use tracking::MAX_UNCOUNTED;

/// Most pods one reconcile creates or deletes (upstream's `MaxPodCreateDeletePerSync`): a
/// huge Job proceeds over several reconciles rather than one unbounded burst of writes.
pub const BURST: usize = 500;

/// Who reports the controller's Events, as upstream's controller-manager names it.
pub const EVENT_SOURCE: &str = "job-controller";

/// The `spec.managedBy` value of Jobs this controller manages (unset means the same).
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";

/// How the Job controller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobConfig {
    /// Delay before replacing failed pods: `base · 2^(failures-1)`, capped at `max`.
    pub pod_backoff: Backoff,
    pub controller: ControllerConfig,
}

impl JobConfig {
    /// Upstream's pod failure backoff: 10 s, doubling, capped at 6 minutes.
    pub const POD_BACKOFF: Backoff = Backoff { base: Duration::from_secs(10), max: Duration::from_secs(360) };

    pub fn validate(&self) -> Result<(), String> {
        self.pod_backoff.validate()?;
        self.controller.validate()
    }
}

impl Default for JobConfig {
    fn default() -> Self {
        Self { pod_backoff: Self::POD_BACKOFF, controller: ControllerConfig::default() }
    }
}

/// The controller as a leader-only component, with the default config.
pub fn component() -> Component {
    component_with(JobConfig::default())
}

/// The controller as a leader-only component. Panics on an invalid `config` (validate
/// user-supplied configs first).
pub fn component_with(config: JobConfig) -> Component {
    if let Err(e) = config.validate() {
        panic!("job controller: {e}");
    }
    Arc::new(move |ctx: LeaderContext| Box::pin(run(ctx, config)))
}

/// Run the controller over the term's shared caches until `ctx.cancel` fires.
pub async fn run(ctx: LeaderContext, config: JobConfig) {
    let (jobs, pods) = (ctx.informers.store::<Job>(), ctx.informers.store::<Pod>());
    let events = Recorder::new(ctx.client.clone(), EVENT_SOURCE, ctx.identity.clone());
    let reconciler = JobController::new(ctx.client.clone(), jobs.clone(), pods.clone(), config).with_events(events);
    Controller::new("job", reconciler, &jobs, config.controller).owns(&pods).run(ctx.cancel.clone()).await;
}

/// The reconciler; [`run`] wires it to informers. Public so tests can drive it over caches
/// they fill themselves (e.g. a pod cache that lags the store on purpose).
pub struct JobController {
    client: Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    expectations: Expectations,
    events: Recorder,
    config: JobConfig,
}

impl JobController {
    /// A reconciler that records no Events (see [`Self::with_events`]).
    pub fn new(client: Client, jobs: Store<Job>, pods: Store<Pod>, config: JobConfig) -> Self {
        let events = Recorder::detached(EVENT_SOURCE, "");
        Self { client, jobs, pods, expectations: Expectations::default(), events, config }
    }

    /// Record pod creations, deletions and the Job's outcome as Events through `events`.
    pub fn with_events(self, events: Recorder) -> Self {
        Self { events, ..self }
    }

    /// Release the pods named as controlled by a Job `key.name` that `job` no longer
    /// manages — all of them when it is gone or finished, else those of an earlier Job of
    /// the same name — by removing their tracking finalizer (upstream's orphan handling).
    async fn release(&self, key: &Key, job: Option<&Job>) -> Result<(), ApiError> {
        let finished = job.is_some_and(|j| decide::finished_at(j).is_some());
        let live_uid = job.filter(|_| !finished).and_then(|j| j.metadata.uid.as_deref());
        let ns = key.namespace().unwrap_or_default();
        let orphans: Vec<Arc<Pod>> = self
            .pods
            .list_in(ns)
            .into_iter()
            .filter(|p| pods::has_tracking_finalizer(p))
            .filter(|p| owner::controller_key::<Job>(&p.metadata).as_ref() == Some(key))
            .filter(|p| owner::controller_ref(&p.metadata).is_some_and(|r| Some(r.uid.as_str()) != live_uid))
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        tracing::info!(pods = orphans.len(), "releasing pods the job no longer tracks");
        let (_, error) = tracking::remove_finalizers(&self.client.api::<Pod>(Some(ns)), &orphans).await;
        error.map_or(Ok(()), Err)
    }
}

impl Reconciler for JobController {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> Result<Action, ApiError> {
        let Some(job) = self.jobs.get_key(key) else {
            self.expectations.forget(key);
            self.release(key, None).await?;
            return Ok(Action::Done);
        };
        let managed_by = job.spec.as_ref().and_then(|s| s.managed_by.as_deref());
        if managed_by.is_some_and(|m| m != MANAGED_BY) {
            tracing::debug!(managed_by, "job managed by another controller");
            return Ok(Action::Done);
        }
        self.release(key, Some(&job)).await?;
        if let Some(finished_at) = decide::finished_at(&job) {
            self.expectations.forget(key);
            return ttl::after_finished(&self.client, &job, finished_at, jiff::Timestamp::now()).await;
        }
        self.sync(key, &job).await
    }
}
