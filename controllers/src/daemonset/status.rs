//! A DaemonSet's status from its nodes and pods, as upstream computes it and `kubectl
//! rollout status ds/x` reads it (`DaemonSetStatusViewer`):
//!
//! - `desiredNumberScheduled`: nodes that should run the pod;
//! - `currentNumberScheduled`: of those, nodes with a daemon pod; `numberMisscheduled`:
//!   nodes with a daemon pod that should not run it;
//! - `numberReady` / `numberAvailable` / `updatedNumberScheduled`: nodes whose oldest daemon
//!   pod is Ready / available for `minReadySeconds` / at the update revision;
//! - `numberUnavailable` = desired − available; `observedGeneration`, `collisionCount`.
//!
//! Conditions are kept as they are (this controller sets none).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};

use super::plan::{by_age, is_updated, NodePods};
use crate::pod::{is_running_and_ready, running_availability, Availability};

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The status of `ds` over `nodes` with update revision `hash` at `now`, and when a ready
/// pod becomes available (recheck then).
pub fn compute(
    ds: &DaemonSet,
    nodes: &BTreeMap<String, NodePods>,
    hash: &str,
    collision_count: i32,
    min_ready: Duration,
    now: Timestamp,
) -> (DaemonSetStatus, Option<Duration>) {
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) = (0, 0, 0, 0, 0, 0);
    let mut recheck: Option<Duration> = None;
    for node in nodes.values() {
        let Some(fit) = node.fit else { continue };
        if !fit.should_run {
            misscheduled += usize::from(!node.pods.is_empty());
            continue;
        }
        desired += 1;
        let mut pods = node.pods.clone();
        by_age(&mut pods);
        let Some(oldest) = pods.first() else { continue };
        current += 1;
        ready += usize::from(is_running_and_ready(oldest));
        match running_availability(oldest, min_ready, now) {
            Availability::Available => available += 1,
            Availability::In(wait) => recheck = Some(recheck.map_or(wait, |r| r.min(wait))),
            Availability::Unavailable => {}
        }
        updated += usize::from(is_updated(oldest, hash));
    }
    let status = DaemonSetStatus {
        desired_number_scheduled: count(desired),
        current_number_scheduled: count(current),
        number_misscheduled: count(misscheduled),
        number_ready: count(ready),
        number_available: Some(count(available)),
        number_unavailable: Some(count(desired.saturating_sub(available))),
        updated_number_scheduled: Some(count(updated)),
        observed_generation: ds.metadata.generation,
        collision_count: Some(collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    (status, recheck)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::daemonset::eligibility::Fit;
    use crate::history::REVISION_HASH_LABEL;
    use crate::pod::fixtures::at;

    fn pod(hash: &str, ready_at: Option<i64>) -> Arc<Pod> {
        let mut pod = crate::pod::fixtures::pod("Running", ready_at);
        pod.metadata.labels = Some([(REVISION_HASH_LABEL.to_string(), hash.to_string())].into());
        Arc::new(pod)
    }

    #[test]
    fn counts_desired_scheduled_misscheduled_ready_available_and_updated_nodes() {
        let runs = Some(Fit { should_run: true, may_continue: true });
        let not_here = Some(Fit { should_run: false, may_continue: true });
        let nodes: BTreeMap<String, NodePods> = [
            ("a", runs, vec![pod("new", Some(0))]),
            ("b", runs, vec![pod("old", Some(95))]),
            ("c", runs, vec![]),
            ("d", not_here, vec![pod("old", Some(0))]),
            ("gone", None, vec![pod("old", Some(0))]),
        ]
        .into_iter()
        .map(|(n, fit, pods)| (n.to_string(), NodePods { fit, pods }))
        .collect();
        let ds = DaemonSet { metadata: ObjectMeta { generation: Some(2), ..Default::default() }, ..Default::default() };
        let (s, recheck) = compute(&ds, &nodes, "new", 0, Duration::from_secs(10), at(100));
        assert_eq!((s.desired_number_scheduled, s.current_number_scheduled, s.number_misscheduled), (3, 2, 1));
        assert_eq!((s.number_ready, s.number_available, s.number_unavailable), (2, Some(1), Some(2)));
        assert_eq!((s.updated_number_scheduled, s.observed_generation), (Some(1), Some(2)));
        assert_eq!(recheck, Some(Duration::from_secs(5)), "b becomes available in 5 s");
    }
}
