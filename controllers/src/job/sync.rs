//! One reconcile of a live, unfinished Job: decide, create or delete pods, then count.
//!
//! Order, as upstream's `syncJob`: `startTime` is set when the Job first runs unsuspended;
//! a failure verdict deletes the active pods (keeping their finalizers, so they count as
//! failed); otherwise — unless earlier creates/deletes are not in the cache yet — a
//! suspended Job deletes its active pods and a running one creates or deletes toward its
//! plan, creates waiting out the failure backoff; success is checked on the result. The
//! Suspended condition changes only in a pass that managed pods, and resuming restarts
//! `startTime` (the active deadline counts from there).

use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::Api;
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::ApiError;
use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decide::{self, Finish, Tally};
use super::tracking::{remove_finalizers, Pass};
use super::{pods, JobController};
use crate::pod;
use crate::replicaset::expectations::EXPECTATION_TTL;
use crate::replicaset::slow_start::Creates;
use crate::runtime::{owner, Action, Key};

/// What this pass did to the pods.
#[derive(Debug, Default)]
struct Managed {
    /// Change in active pods (creates minus deletes that went through).
    active: i32,
    /// Ready pods deleted.
    ready_deleted: i32,
    /// Pods deleted (now terminating until they go).
    deleted: i32,
    /// Reconcile again after this long (backoff).
    retry: Option<Duration>,
    error: Option<ApiError>,
}

fn min_delay(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl JobController {
    pub(super) async fn sync(&self, key: &Key, cached: &Job) -> Result<Action, ApiError> {
        let now = Timestamp::now();
        let ns = key.namespace().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_in(ns)
            .into_iter()
            .filter(|p| owner::is_controlled_by(&p.metadata, &cached.metadata))
            .collect();
        let tally = decide::tally(cached, &pods);
        let mut job = cached.clone();
        let status = job.status.get_or_insert_with(Default::default);
        if status.start_time.is_none() && !decide::suspended(cached) {
            status.start_time = Some(Time(now));
        }
        let (mut finish, mut retry) = decide::verdict(&job, &tally, &pods, now);
        let api = self.client.api::<Pod>(Some(ns));
        let managed = if finish.is_some() {
            let m = self.delete_pods(key, &job, &api, &tally.active, false).await;
            if m.deleted != tally.active.len() as i32 {
                finish = None; // not every pod is on its way out: not finished yet
            }
            m
        } else {
            let pending = self.expectations.pending(
                key,
                |name| self.pods.get(Some(ns), name).is_some(),
                |name, uid| self.pods.get(Some(ns), name).is_none_or(|p| pods::uid(&p) != uid || !pod::is_active(&p)),
            );
            let manage = !pending && job.metadata.deletion_timestamp.is_none();
            let m = if manage { self.manage(key, &job, &api, &tally, &pods, now).await } else { Managed::default() };
            let active = tally.active.len() as i32 + m.active;
            if decide::complete(&job, tally.succeeded, active) {
                finish = Some(Finish::Success);
            } else if manage {
                self.suspend_condition(&mut job, now);
            }
            retry = min_delay(retry, pending.then_some(EXPECTATION_TTL));
            m
        };
        let status = job.status.get_or_insert_with(Default::default);
        status.active = Some(tally.active.len() as i32 + managed.active);
        status.ready = Some(tally.ready - managed.ready_deleted);
        status.terminating = Some(tally.terminating + managed.deleted);
        let changed = job.status != cached.status;
        let pass =
            Pass { pods: &pods, tally: &tally, finish, terminating: tally.terminating + managed.deleted, changed };
        self.track(job, pass).await?;
        if let Some(e) = managed.error {
            return Err(e);
        }
        Ok(min_delay(retry, managed.retry).map_or(Action::Done, Action::RequeueAfter))
    }

    /// Create or delete pods toward the Job's plan (all of them deleted when suspended).
    async fn manage(
        &self,
        key: &Key,
        job: &Job,
        api: &Api<Pod>,
        tally: &Tally,
        pods: &[Arc<Pod>],
        now: Timestamp,
    ) -> Managed {
        if decide::suspended(job) {
            if !tally.active.is_empty() {
                tracing::info!(active = tally.active.len(), "deleting the active pods of a suspended job");
            }
            return self.delete_pods(key, job, api, &tally.active, true).await;
        }
        let plan = decide::plan(job, tally);
        if !plan.delete.is_empty() {
            tracing::info!(delete = plan.delete.len(), "deleting surplus pods");
            return self.delete_pods(key, job, api, &plan.delete, true).await;
        }
        if plan.create.is_empty() {
            return Managed::default();
        }
        let wait = decide::backoff_remaining(job, pods, self.config.pod_backoff, now);
        if !wait.is_zero() {
            tracing::info!(create = plan.create.len(), ?wait, "delaying pod creation for the failure backoff");
            return Managed { retry: Some(wait), ..Default::default() };
        }
        self.create_pods(key, job, api, &plan.create).await
    }

    /// Create one pod per entry of `indexes` in slow-start batches (1, 2, 4, …); a failing
    /// batch stops the rest, which the next reconcile retries.
    async fn create_pods(&self, key: &Key, job: &Job, api: &Api<Pod>, indexes: &[Option<i32>]) -> Managed {
        let made: Vec<Pod> = indexes.iter().map(|ix| pods::new_pod(job, *ix)).collect();
        let creates = Creates { api, events: &self.events, expectations: &self.expectations };
        let (created, error) = creates.run(job, key, &made).await;
        tracing::info!(created, wanted = indexes.len(), "created pods");
        Managed { active: i32::try_from(created).unwrap_or(i32::MAX), error, ..Default::default() }
    }

    /// Delete `victims` (uid-pinned). `release`: drop the tracking finalizer first, so the
    /// pod goes uncounted (suspension, surplus); otherwise it stays until counted failed.
    async fn delete_pods(&self, key: &Key, job: &Job, api: &Api<Pod>, victims: &[Arc<Pod>], release: bool) -> Managed {
        let mut m = Managed::default();
        if victims.is_empty() {
            return m;
        }
        let released = if release {
            let (released, error) = remove_finalizers(api, victims).await;
            m.error = error;
            released
        } else {
            Default::default()
        };
        let deletes = victims.iter().filter(|p| !release || released.contains(pods::uid(p))).map(|pod| async move {
            let opts = DeleteOptions { precondition_uid: pod.metadata.uid.clone(), ..Default::default() };
            match api.delete(pods::name(pod), &opts).await {
                Ok(_) | Err(ApiError::NotFound(_)) => (pod, Ok(())),
                Err(e) => (pod, Err(e)),
            }
        });
        for (pod, r) in join_all(deletes).await {
            match r {
                Ok(()) => {
                    self.expectations.deleted(key, pods::name(pod).to_string(), pods::uid(pod).to_string());
                    self.events.normal(job, "SuccessfulDelete", format!("Deleted pod: {}", pods::name(pod)));
                    m.active -= 1;
                    m.deleted += 1;
                    m.ready_deleted += i32::from(pod::is_ready(pod));
                }
                Err(e) => {
                    self.events.warning(job, "FailedDelete", format!("Error deleting: {e}"));
                    m.error = m.error.or(Some(e));
                }
            }
        }
        m
    }

    /// The Suspended condition after a pass that managed pods; resuming restarts the clock.
    fn suspend_condition(&self, job: &mut Job, now: Timestamp) {
        let suspended = decide::suspended(job);
        let (state, reason, message) =
            if suspended { ("True", "JobSuspended", "Job suspended") } else { ("False", "JobResumed", "Job resumed") };
        let status = job.status.get_or_insert_with(Default::default);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        if !decide::ensure_condition(conditions, decide::SUSPENDED, state, reason, message, now) {
            return;
        }
        if !suspended {
            status.start_time = Some(Time(now));
        }
        let (reason, message) = if suspended { ("Suspended", "Job suspended") } else { ("Resumed", "Job resumed") };
        self.events.normal(&*job, reason, message);
    }
}
