//! `ttlSecondsAfterFinished`: a finished Job is deleted (propagation Background, so the
//! garbage collector removes its pods) that long after its `Complete`/`Failed` condition's
//! transition time, as upstream's TTL-after-finished controller.
//!
//! Invariants: the decision to delete is re-checked on a fresh read of the Job, and the
//! delete is pinned to that read's uid and resourceVersion, so a Job whose TTL was changed
//! (or that was replaced by a new one of the same name) meanwhile is not deleted.

use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::registry::{DeleteOptions, Propagation};
use flotilla_apiserver::ApiError;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;

use super::decide;
use crate::runtime::Action;

/// How long until `job`, finished at `finished_at`, expires (zero: now); None when it has no
/// TTL or no known finish time.
pub fn expires_in(job: &Job, finished_at: Option<Timestamp>, now: Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished_at = finished_at.or_else(|| job.status.as_ref()?.completion_time.as_ref().map(|t| t.0))?;
    let since = Duration::try_from(now - finished_at).unwrap_or(Duration::ZERO);
    Some(Duration::from_secs(u64::try_from(ttl).unwrap_or(0)).saturating_sub(since))
}

/// Delete `job` if its TTL has run out; otherwise come back when it will have.
pub(super) async fn after_finished(
    client: &Client,
    job: &Job,
    finished_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<Action, ApiError> {
    match expires_in(job, finished_at, now) {
        None => return Ok(Action::Done),
        Some(wait) if !wait.is_zero() => return Ok(Action::RequeueAfter(wait)),
        Some(_) => {}
    }
    let ns = job.metadata.namespace.as_deref();
    let api = client.api::<Job>(ns);
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let fresh = match api.get(name).await {
        Ok(fresh) => fresh,
        Err(ApiError::NotFound(_)) => return Ok(Action::Done),
        Err(e) => return Err(e),
    };
    let expired = decide::finished_at(&fresh).and_then(|at| expires_in(&fresh, at, now)).is_some_and(|w| w.is_zero());
    if fresh.metadata.uid != job.metadata.uid || !expired {
        // The cache was behind; the change that made it so queues this Job again.
        return Ok(Action::Done);
    }
    let opts = DeleteOptions {
        propagation: Some(Propagation::Background),
        precondition_uid: fresh.metadata.uid.clone(),
        precondition_resource_version: fresh.metadata.resource_version.clone(),
        ..Default::default()
    };
    match api.delete(name, &opts).await {
        Ok(_) | Err(ApiError::NotFound(_)) => {
            tracing::info!("deleted the job after ttlSecondsAfterFinished");
            Ok(Action::Done)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::JobSpec;

    use super::*;

    #[test]
    fn a_job_expires_its_ttl_after_finishing() {
        let at = |s: i64| Timestamp::from_second(1_700_000_000 + s).expect("valid timestamp");
        let job = |ttl: Option<i32>| Job {
            spec: Some(JobSpec { ttl_seconds_after_finished: ttl, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(expires_in(&job(None), Some(at(0)), at(100)), None, "no TTL: kept");
        assert_eq!(expires_in(&job(Some(60)), Some(at(0)), at(45)), Some(Duration::from_secs(15)));
        assert_eq!(expires_in(&job(Some(60)), Some(at(0)), at(61)), Some(Duration::ZERO));
        assert_eq!(expires_in(&job(Some(0)), Some(at(5)), at(5)), Some(Duration::ZERO), "0: at once");
        assert_eq!(expires_in(&job(Some(0)), None, at(5)), None, "no known finish time");
    }
}
