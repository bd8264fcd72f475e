//! Finalizer accounting: how a finished pod's outcome gets into the Job's status exactly
//! once, even if the controller stops at any point (a leader change) or its pod cache lags.
//!
//! Every pod the controller creates holds [`pods::TRACKING_FINALIZER`], so it stays in the
//! store (at worst terminating) until counted. One pass, as upstream's
//! `trackJobStatusAndRemoveFinalizers`:
//! 1. a uid in `status.uncountedTerminatedPods` whose pod no longer holds the finalizer
//!    moves into `status.succeeded`/`status.failed`;
//! 2. newly finished pods (still holding the finalizer, in neither list) are added to the
//!    uncounted lists — Indexed successes to `status.completedIndexes` instead — and the
//!    status is written (a CAS on the Job's resourceVersion);
//! 3. only then are their finalizers removed, and step 1 runs again for them;
//! 4. once nothing is uncounted and no pod is terminating, a pending finish becomes
//!    `Complete`/`Failed`.
//!
//! Why it is exact: a uid is written to the uncounted list only while its pod holds the
//! finalizer, and moved to a counter only after the finalizer is gone, which happens once.
//! A pod the cache still shows with the finalizer after its removal (the cache lags the
//! write) would look newly finished, so each new uid is checked against a fresh read of
//! the pod first; a Job status read from a stale cache makes the CAS fail instead.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use flotilla_apiserver::client::Api;
use flotilla_apiserver::patch::PatchType;
use flotilla_apiserver::registry::Part;
use flotilla_apiserver::ApiError;
use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decide::{self, Finish, Tally};
use super::{indexed, pods, JobController};

/// Most uids `status.uncountedTerminatedPods` holds (upstream's `MaxUncountedPods`): keeps
/// the status near 20 KB and bounds the finalizer removals of one pass; the rest are
/// counted by the next pass, which the status write queues.
pub const MAX_UNCOUNTED: usize = 500;

/// Why the Job is being counted in this pass.
pub(super) struct Pass<'a> {
    pub pods: &'a [Arc<Pod>],
    pub tally: &'a Tally,
    pub finish: Option<Finish>,
    /// Pods terminating, including those this pass deleted.
    pub terminating: i32,
    /// The status already differs from the stored one (active, ready, conditions...).
    pub changed: bool,
}

/// The pods whose finalizer this pass removes, and what they add.
#[derive(Default)]
struct Harvest {
    remove: Vec<Arc<Pod>>,
    succeeded: Vec<String>,
    failed: Vec<String>,
    indexes: BTreeSet<i32>,
    capped: bool,
}

fn uncounted(status: &JobStatus) -> (Vec<String>, Vec<String>) {
    let u = status.uncounted_terminated_pods.clone().unwrap_or_default();
    (u.succeeded.unwrap_or_default(), u.failed.unwrap_or_default())
}

fn set_uncounted(status: &mut JobStatus, succeeded: Vec<String>, failed: Vec<String>) {
    let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
    status.uncounted_terminated_pods =
        Some(UncountedTerminatedPods { succeeded: some(succeeded), failed: some(failed) });
}

/// Step 1: move the uncounted uids whose pods no longer hold the finalizer into the
/// counters. Returns whether anything moved.
fn settle(status: &mut JobStatus, tracked: &HashSet<String>) -> bool {
    let (succeeded, failed) = uncounted(status);
    let (keep_s, done_s): (Vec<_>, Vec<_>) = succeeded.into_iter().partition(|u| tracked.contains(u));
    let (keep_f, done_f): (Vec<_>, Vec<_>) = failed.into_iter().partition(|u| tracked.contains(u));
    let add = |n: Option<i32>, k: usize| Some(n.unwrap_or(0).saturating_add(i32::try_from(k).unwrap_or(i32::MAX)));
    if !done_s.is_empty() {
        status.succeeded = add(status.succeeded, done_s.len());
    }
    if !done_f.is_empty() {
        status.failed = add(status.failed, done_f.len());
    }
    set_uncounted(status, keep_s, keep_f);
    !done_s.is_empty() || !done_f.is_empty()
}

/// Step 2's candidates: the tracked pods whose finalizer may go now, and the new outcomes.
fn harvest(job: &Job, pass: &Pass<'_>) -> Harvest {
    let status = job.status.clone().unwrap_or_default();
    let (u_succeeded, u_failed) = uncounted(&status);
    let only_failed = decide::only_replace_failed(job);
    let failing = matches!(pass.finish, Some(Finish::Failure { .. }));
    let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(0);
    let mut h = Harvest::default();
    for pod in pass.pods.iter().filter(|p| pods::has_tracking_finalizer(p)) {
        let uid = pods::uid(pod).to_string();
        let failed = pods::is_failed(pod, only_failed);
        let removable = job.metadata.deletion_timestamp.is_some() || pass.finish.is_some() || failed;
        if !removable && !pods::is_succeeded(pod) {
            continue;
        }
        h.remove.push(pod.clone());
        if pods::is_succeeded(pod) && !u_failed.contains(&uid) {
            if decide::is_indexed(job) {
                let ix = pods::completion_index(pod).filter(|ix| *ix < completions);
                h.indexes.extend(ix.filter(|ix| !pass.tally.completed_before.contains(ix)));
            } else if !u_succeeded.contains(&uid) {
                h.succeeded.push(uid);
            }
        } else if (failed || failing) && !u_failed.contains(&uid) {
            h.failed.push(uid);
        }
        if h.indexes.len() + u_succeeded.len() + u_failed.len() + h.succeeded.len() + h.failed.len() >= MAX_UNCOUNTED {
            h.capped = true;
            break;
        }
    }
    h
}

impl JobController {
    /// Count the finished pods of `job` (the cached Job with this pass's status changes)
    /// and write its status; see the module doc for the steps.
    pub(super) async fn track(&self, mut job: Job, pass: Pass<'_>) -> Result<(), ApiError> {
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let name = job.metadata.name.clone().unwrap_or_default();
        let (jobs, pod_api) = (self.client.api::<Job>(Some(&ns)), self.client.api::<Pod>(Some(&ns)));
        let mut tracked: HashSet<String> =
            pass.pods.iter().filter(|p| pods::has_tracking_finalizer(p)).map(|p| pods::uid(p).to_string()).collect();
        let status = job.status.get_or_insert_with(Default::default);
        let mut dirty = settle(status, &tracked) | pass.changed;
        let mut h = harvest(&job, &pass);
        let stale = still_tracked(&pod_api, &h).await?;
        h.remove.retain(|p| !stale.contains(pods::uid(p)));
        h.succeeded.retain(|u| !stale.contains(u));
        h.failed.retain(|u| !stale.contains(u));

        let indexed = decide::is_indexed(&job);
        let status = job.status.get_or_insert_with(Default::default);
        let (mut succeeded, mut failed) = uncounted(status);
        dirty |= !h.succeeded.is_empty() || !h.failed.is_empty();
        succeeded.extend(h.succeeded.iter().cloned());
        failed.extend(h.failed.iter().cloned());
        set_uncounted(status, succeeded, failed);
        if indexed {
            dirty |= record_indexes(status, &pass.tally.completed_before, &h.indexes);
        }
        let terminal = pass.finish.as_ref().map(|f| interim_condition(status, f, Timestamp::now(), &mut dirty));
        if dirty {
            job = jobs.update_status(&name, &job).await?;
        }

        let (removed, remove_error) = remove_finalizers(&pod_api, &h.remove).await;
        tracked.retain(|u| !removed.contains(u));
        let status = job.status.get_or_insert_with(Default::default);
        let mut dirty = settle(status, &tracked);
        let (left_s, left_f) = uncounted(status);
        let finished =
            terminal.filter(|_| !h.capped && left_s.is_empty() && left_f.is_empty() && pass.terminating == 0);
        if let Some((type_, reason, message)) = &finished {
            let now = Timestamp::now();
            decide::ensure_condition(
                status.conditions.get_or_insert_with(Vec::new),
                type_,
                "True",
                reason,
                message,
                now,
            );
            if type_ == decide::COMPLETE {
                status.completion_time = Some(Time(now));
            }
            dirty = true;
        }
        if dirty {
            job = jobs.update_status(&name, &job).await?;
            if let Some((type_, reason, message)) = finished {
                self.record_finished(&job, &type_, &reason, &message);
            }
        }
        remove_error.map_or(Ok(()), Err)
    }

    fn record_finished(&self, job: &Job, type_: &str, reason: &str, message: &str) {
        let status = job.status.clone().unwrap_or_default();
        let (succeeded, failed) = (status.succeeded.unwrap_or(0), status.failed.unwrap_or(0));
        if type_ == decide::COMPLETE {
            if job.spec.as_ref().and_then(|s| s.completions).is_some_and(|c| succeeded > c) {
                let msg = "Too many succeeded pods running after completion count reached";
                self.events.warning(job, "TooManySucceededPods", msg);
            }
            self.events.normal(job, "Completed", "Job completed");
            tracing::info!(succeeded, failed, "job completed");
        } else {
            self.events.warning(job, reason, message);
            tracing::info!(reason, succeeded, failed, "job failed");
        }
    }
}

/// Record the interim condition of `finish` (`SuccessCriteriaMet` / `FailureTarget`) if it
/// is not there yet, and return the terminal one to set once everything is counted.
fn interim_condition(
    status: &mut JobStatus,
    finish: &Finish,
    now: Timestamp,
    dirty: &mut bool,
) -> (String, String, String) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let (interim, terminal, reason, message) = match finish {
        Finish::Failure { reason, message } => {
            (decide::FAILURE_TARGET, decide::FAILED, reason.clone(), message.clone())
        }
        Finish::Success => {
            let recorded = conditions.iter().find(|c| c.type_ == decide::SUCCESS_CRITERIA_MET);
            let reason = recorded.and_then(|c| c.reason.clone()).unwrap_or_else(|| "CompletionsReached".into());
            let message = recorded
                .and_then(|c| c.message.clone())
                .unwrap_or_else(|| "Reached expected number of succeeded pods".into());
            (decide::SUCCESS_CRITERIA_MET, decide::COMPLETE, reason, message)
        }
    };
    if !conditions.iter().any(|c| c.type_ == interim && c.status == "True") {
        conditions.push(decide::new_condition(interim, "True", &reason, &message, now));
        *dirty = true;
    }
    (terminal.to_string(), reason, message)
}

/// Indexed mode: add newly succeeded indexes to `completedIndexes` and set `succeeded` to
/// their number. Returns whether the status changed.
fn record_indexes(status: &mut JobStatus, before: &BTreeSet<i32>, new: &BTreeSet<i32>) -> bool {
    let all = before | new;
    let formatted = Some(indexed::format(&all)).filter(|s| !s.is_empty());
    let succeeded = Some(i32::try_from(all.len()).unwrap_or(i32::MAX));
    let changed = status.completed_indexes != formatted || status.succeeded != succeeded;
    status.completed_indexes = formatted;
    status.succeeded = succeeded;
    changed
}

/// The new outcomes in `h` whose pods, read fresh, no longer hold the finalizer (or are
/// gone): the cache showed them before their finalizer's removal, so they are counted
/// already and must not be added again.
async fn still_tracked(api: &Api<Pod>, h: &Harvest) -> Result<HashSet<String>, ApiError> {
    let new: HashSet<&String> = h.succeeded.iter().chain(h.failed.iter()).collect();
    let checks = h.remove.iter().filter(|p| new.contains(&pods::uid(p).to_string())).map(|pod| async move {
        match api.get(pods::name(pod)).await {
            Ok(fresh) if fresh.metadata.uid == pod.metadata.uid && pods::has_tracking_finalizer(&fresh) => Ok(None),
            Ok(_) | Err(ApiError::NotFound(_)) => Ok(Some(pods::uid(pod).to_string())),
            Err(e) => Err(e),
        }
    });
    let mut stale = HashSet::new();
    for r in join_all(checks).await {
        stale.extend(r?);
    }
    if !stale.is_empty() {
        tracing::debug!(pods = stale.len(), "pod cache behind finalizer removals; not counting those again");
    }
    Ok(stale)
}

/// Remove the tracking finalizer from `pods` (a strategic-merge patch pinned to the pod's
/// uid). Returns the uids now without it (a pod gone counts) and the first error.
pub(super) async fn remove_finalizers(api: &Api<Pod>, pods: &[Arc<Pod>]) -> (HashSet<String>, Option<ApiError>) {
    let removals = pods.iter().map(|pod| async move {
        let patch = serde_json::json!({"metadata": {
            "uid": pods::uid(pod),
            "$deleteFromPrimitiveList/finalizers": [pods::TRACKING_FINALIZER],
        }});
        match api.patch(pods::name(pod), PatchType::Strategic, &patch, Part::Main).await {
            Ok(_) | Err(ApiError::NotFound(_) | ApiError::PreconditionFailed(..)) => Ok(pods::uid(pod).to_string()),
            Err(e) => Err(e),
        }
    });
    let (mut removed, mut first_error) = (HashSet::new(), None);
    for r in join_all(removals).await {
        match r {
            Ok(uid) => {
                removed.insert(uid);
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    (removed, first_error)
}
