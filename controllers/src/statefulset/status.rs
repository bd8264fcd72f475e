//! A StatefulSet's status from its pods, as upstream computes it and `kubectl rollout
//! status sts/x` reads it (`StatefulSetStatusViewer`):
//!
//! - `replicas`: pods that exist (in range or not, terminating included);
//! - `readyReplicas` / `availableReplicas`: Running and Ready / and so for `minReadySeconds`;
//! - `currentReplicas` / `updatedReplicas`: live (not terminating) pods at the current /
//!   update revision;
//! - `currentRevision`, `updateRevision`, `collisionCount`, `observedGeneration`;
//! - a RollingUpdate is complete when `updatedReplicas`, `readyReplicas` and `replicas` all
//!   equal `spec.replicas`: the current revision then becomes the update revision.
//!
//! Conditions are kept as they are (this controller sets none).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;

use super::plan::{min_ready, rolling};
use super::pods::{replicas, revision_of};
use crate::pod::{is_running_and_ready, is_terminating, running_availability, Availability};

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// When the first ready but not yet available pod of `pods` becomes available.
pub fn next_available(set: &StatefulSet, pods: &BTreeMap<i32, Arc<Pod>>, now: Timestamp) -> Option<Duration> {
    let waits = pods.values().filter_map(|p| match running_availability(p, min_ready(set), now) {
        Availability::In(wait) => Some(wait),
        _ => None,
    });
    waits.min()
}

/// The status of `set` with `pods`, its current and update revisions' names, its
/// collisionCount, at `now`.
pub fn compute(
    set: &StatefulSet,
    pods: &BTreeMap<i32, Arc<Pod>>,
    current: &str,
    update: &str,
    collision_count: i32,
    now: Timestamp,
) -> StatefulSetStatus {
    let live = || pods.values().filter(|p| !is_terminating(p));
    let ready = pods.values().filter(|p| is_running_and_ready(p)).count();
    let available =
        pods.values().filter(|p| running_availability(p, min_ready(set), now) == Availability::Available).count();
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: count(pods.len()),
        ready_replicas: Some(count(ready)),
        available_replicas: Some(count(available)),
        current_replicas: Some(count(live().filter(|p| revision_of(p) == Some(current)).count())),
        updated_replicas: Some(count(live().filter(|p| revision_of(p) == Some(update)).count())),
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        collision_count: Some(collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    let want = replicas(set);
    if rolling(set)
        && status.updated_replicas == Some(want)
        && status.ready_replicas == Some(want)
        && status.replicas == want
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
    status
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;
    use crate::history::REVISION_HASH_LABEL;
    use crate::pod::fixtures::at;

    fn pod(revision: &str, ready: bool, terminating: bool) -> Arc<Pod> {
        let mut pod = crate::pod::fixtures::pod("Running", ready.then_some(0));
        pod.metadata.labels = Some([(REVISION_HASH_LABEL.to_string(), revision.to_string())].into());
        pod.metadata.deletion_timestamp = terminating.then(|| Time(at(0)));
        Arc::new(pod)
    }

    fn set(replicas: i32) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta { generation: Some(3), ..Default::default() },
            spec: Some(StatefulSetSpec { replicas: Some(replicas), ..Default::default() }),
            status: None,
        }
    }

    #[test]
    fn counts_by_revision_and_completes_the_rolling_update() {
        let now = at(100);
        let mid: BTreeMap<i32, Arc<Pod>> =
            [(0, pod("a", true, false)), (1, pod("b", false, false)), (2, pod("b", true, true))].into();
        let s = compute(&set(3), &mid, "a", "b", 0, now);
        assert_eq!((s.replicas, s.ready_replicas, s.available_replicas), (3, Some(2), Some(2)));
        assert_eq!(
            (s.current_replicas, s.updated_replicas),
            (Some(1), Some(1)),
            "a terminating pod counts for neither"
        );
        assert_eq!((s.current_revision.as_deref(), s.update_revision.as_deref()), (Some("a"), Some("b")));
        assert_eq!(s.observed_generation, Some(3));

        let done: BTreeMap<i32, Arc<Pod>> = (0..3).map(|i| (i, pod("b", true, false))).collect();
        let s = compute(&set(3), &done, "a", "b", 1, now);
        assert_eq!((s.current_revision.as_deref(), s.current_replicas), (Some("b"), Some(3)));
        assert_eq!(s.collision_count, Some(1));
        let s = compute(&set(4), &done, "a", "b", 0, now);
        assert_eq!(s.current_revision.as_deref(), Some("a"), "not complete while a replica is missing");
        let mut slow = set(3);
        slow.spec.as_mut().unwrap().min_ready_seconds = Some(130);
        assert_eq!(compute(&slow, &done, "a", "b", 0, now).available_replicas, Some(0));
        assert_eq!(next_available(&slow, &done, now), Some(Duration::from_secs(30)));
    }
}
