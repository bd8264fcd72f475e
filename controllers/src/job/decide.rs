//! The Job controller's pure decisions: what the pods add up to, whether the Job has
//! failed or succeeded, how many pods to create or delete, how long to back off, and the
//! condition transitions. No I/O and the clock is an argument, so all of it is unit-tested.
//!
//! Invariants (upstream's `syncJob`/`manageJob`, 1.32):
//! - Counts are `status` + `status.uncountedTerminatedPods` + the finished pods that still
//!   hold the tracking finalizer and are in neither: each finished pod is in exactly one
//!   of the three places, so it is counted once.
//! - Active pods never exceed `parallelism`, nor the completions still missing.
//! - Failure is decided in upstream's order: a recorded `SuccessCriteriaMet` or
//!   `FailureTarget` stands; then the backoff limit (failed pods, or container restarts
//!   under `restartPolicy: OnFailure`); then `activeDeadlineSeconds`.
//! - After a failure, new pods wait `base · 2^(failures-1)` (capped) from the last failure,
//!   counting the failures since the last success among the pods still in the store.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{indexed, pods, BURST};
use crate::pod;
use crate::runtime::Backoff;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const SUSPENDED: &str = "Suspended";

/// `spec.backoffLimit` when unset (the API server defaults it too).
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;

fn spec(job: &Job) -> JobSpec {
    job.spec.clone().unwrap_or_default()
}

pub fn suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

pub fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// `podReplacementPolicy: Failed`: replace a pod only once it has failed, not while it
/// terminates.
pub fn only_replace_failed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
}

/// What the Job's pods add up to.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub active: Vec<Arc<Pod>>,
    pub ready: i32,
    pub terminating: i32,
    pub succeeded: i32,
    pub failed: i32,
    /// Indexed mode: the indexes counted before (`status.completedIndexes`) and all
    /// succeeded indexes (those plus the newly succeeded).
    pub completed_before: BTreeSet<i32>,
    pub completed: BTreeSet<i32>,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Tally `pods` (the Job's own) against the Job's status.
pub fn tally(job: &Job, pods: &[Arc<Pod>]) -> Tally {
    let status = job.status.clone().unwrap_or_default();
    let uncounted = status.uncounted_terminated_pods.unwrap_or_default();
    let (u_succeeded, u_failed) = (uncounted.succeeded.unwrap_or_default(), uncounted.failed.unwrap_or_default());
    let only_failed = only_replace_failed(job);
    let tracked = pods.iter().filter(|p| pods::has_tracking_finalizer(p));
    let new_succeeded =
        tracked.clone().filter(|p| pods::is_succeeded(p) && !u_succeeded.iter().any(|u| u == pods::uid(p))).count();
    let new_failed =
        tracked.filter(|p| pods::is_failed(p, only_failed) && !u_failed.iter().any(|u| u == pods::uid(p))).count();
    let active: Vec<Arc<Pod>> = pods.iter().filter(|p| pod::is_active(p)).cloned().collect();
    let mut tally = Tally {
        ready: count(active.iter().filter(|p| pod::is_ready(p)).count()),
        terminating: count(pods.iter().filter(|p| pods::counts_as_terminating(p)).count()),
        active,
        succeeded: status.succeeded.unwrap_or(0).saturating_add(count(u_succeeded.len() + new_succeeded)),
        failed: status.failed.unwrap_or(0).saturating_add(count(u_failed.len() + new_failed)),
        ..Default::default()
    };
    if is_indexed(job) {
        let completions = spec(job).completions.unwrap_or(0);
        tally.completed_before = indexed::parse(status.completed_indexes.as_deref().unwrap_or(""), completions);
        tally.completed = &tally.completed_before | &indexed::newly_succeeded(pods, completions);
        tally.succeeded = count(tally.completed.len());
    }
    tally
}

/// How a Job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Enough pods succeeded: `SuccessCriteriaMet`, then `Complete`.
    Success,
    /// `FailureTarget`, then `Failed`, with this reason and message.
    Failure { reason: String, message: String },
}

impl Finish {
    fn failure(reason: &str, message: &str) -> Self {
        Finish::Failure { reason: reason.into(), message: message.into() }
    }
}

/// Whether the Job has failed (or its success was already recorded), and otherwise how
/// long until its active deadline passes.
pub fn verdict(job: &Job, tally: &Tally, pods: &[Arc<Pod>], now: Timestamp) -> (Option<Finish>, Option<Duration>) {
    if condition(job, SUCCESS_CRITERIA_MET).is_some_and(|c| c.status == "True") {
        return (Some(Finish::Success), None);
    }
    if let Some(c) = condition(job, FAILURE_TARGET).filter(|c| c.status == "True") {
        let (reason, message) = (c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default());
        return (Some(Finish::Failure { reason, message }), None);
    }
    let spec = spec(job);
    let limit = spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT);
    if tally.failed > limit || past_backoff_limit_on_failure(&spec, pods) {
        return (Some(Finish::failure("BackoffLimitExceeded", "Job has reached the specified backoff limit")), None);
    }
    let (Some(deadline), Some(start)) =
        (spec.active_deadline_seconds, job.status.as_ref().and_then(|s| s.start_time.as_ref()))
    else {
        return (None, None);
    };
    if suspended(job) {
        return (None, None);
    }
    let allowed = Duration::from_secs(deadline.max(0) as u64);
    let elapsed = Duration::try_from(now - start.0).unwrap_or(Duration::ZERO);
    if elapsed >= allowed {
        return (Some(Finish::failure("DeadlineExceeded", "Job was active longer than specified deadline")), None);
    }
    (None, Some(allowed - elapsed))
}

/// `restartPolicy: OnFailure` turns failures into container restarts: their sum over the
/// pending and running pods reaching the limit (any restart, with a limit of 0) fails the Job.
fn past_backoff_limit_on_failure(spec: &JobSpec, pods: &[Arc<Pod>]) -> bool {
    if spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) != Some("OnFailure") {
        return false;
    }
    let restarts: i64 = pods.iter().map(|p| pods::restarts(p)).sum();
    let limit = i64::from(spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT));
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// Enough successes, and nothing left running: with `completions`, that many succeeded;
/// without (a work queue), any pod succeeded.
pub fn complete(job: &Job, succeeded: i32, active: i32) -> bool {
    match spec(job).completions {
        None => succeeded > 0 && active == 0,
        Some(c) => succeeded >= c && active == 0,
    }
}

/// The pods to delete (first) or to create, and for created pods their index (Indexed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub delete: Vec<Arc<Pod>>,
    pub create: Vec<Option<i32>>,
}

/// Bring the active pods toward `min(parallelism, completions − succeeded)`: delete the
/// surplus in deletion order (and, Indexed, duplicate or invalid indexes), or create the
/// missing — at most [`BURST`] either way. Not for suspended Jobs (they delete everything).
pub fn plan(job: &Job, tally: &Tally) -> Plan {
    let spec = spec(job);
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let active = count(tally.active.len());
    let want = match spec.completions {
        None if tally.succeeded > 0 => active,
        None => parallelism,
        Some(c) => (c - tally.succeeded).min(parallelism).max(0),
    };
    let surplus = usize::try_from(active - want).unwrap_or(0);
    let (mut delete, mut rest) = if is_indexed(job) {
        indexed::duplicates(&tally.active, spec.completions.unwrap_or(0))
    } else {
        (Vec::new(), tally.active.clone())
    };
    if delete.len() < surplus {
        pod::deletion_order(&mut rest);
        delete.extend(rest.into_iter().take(surplus - delete.len()));
    }
    if !delete.is_empty() {
        delete.truncate(BURST);
        return Plan { delete, create: Vec::new() };
    }
    let terminating = if only_replace_failed(job) { tally.terminating } else { 0 };
    let missing = usize::try_from(want - terminating - active).unwrap_or(0).min(BURST);
    let create = if is_indexed(job) {
        let completions = spec.completions.unwrap_or(0);
        indexed::pending(&tally.active, &tally.completed, completions, missing).into_iter().map(Some).collect()
    } else {
        vec![None; missing]
    };
    Plan { delete: Vec::new(), create }
}

/// How long new pods must still wait after failures: `backoff.delay(n)` from the last
/// failure, `n` the failures after the last success among `pods`.
pub fn backoff_remaining(job: &Job, pods: &[Arc<Pod>], backoff: Backoff, now: Timestamp) -> Duration {
    let only_failed = only_replace_failed(job);
    let last_success = pods.iter().filter(|p| pods::is_succeeded(p)).filter_map(|p| pods::finish_time(p)).max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| pods::is_failed(p, only_failed))
        .filter_map(|p| pods::finish_time(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let Some(last) = failures.iter().max() else { return Duration::ZERO };
    let delay = backoff.delay(u32::try_from(failures.len()).unwrap_or(u32::MAX));
    let since = Duration::try_from(now - *last).unwrap_or(Duration::ZERO);
    delay.saturating_sub(since)
}

/// The Job's condition of `type_`, if any.
pub fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// When the Job finished (`Complete` or `Failed` is True), if it did.
pub fn finished_at(job: &Job) -> Option<Option<Timestamp>> {
    let done = |t| condition(job, t).filter(|c| c.status == "True");
    let c = done(COMPLETE).or_else(|| done(FAILED))?;
    Some(c.last_transition_time.as_ref().map(|t| t.0))
}

pub fn new_condition(type_: &str, status: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Set condition `type_` as upstream's `ensureJobConditionStatus`: replace it when its
/// status, reason or message differ; add it unless it is absent and would be False.
/// Returns whether anything changed.
pub fn ensure_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let fresh = new_condition(type_, status, reason, message, now);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status && c.reason == fresh.reason && c.message == fresh.message => false,
        Some(c) => {
            *c = fresh;
            true
        }
        None if status == "False" => false,
        None => {
            conditions.push(fresh);
            true
        }
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
