//! The ReplicaSet controller's pure decisions about pods: what a new pod looks like and the
//! status its pods add up to. No I/O, so every rule is unit-tested on hand-built pods.
//!
//! - Only *active* pods ([`crate::pod::is_active`]: not terminating, not finished) count
//!   toward `spec.replicas`; surplus ones go in [`crate::pod::deletion_order`].
//! - A pod is *available* once it has been Ready for at least `minReadySeconds`
//!   ([`crate::pod::availability`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;

use crate::pod::{self, Availability};

/// A new pod for `rs`: its template's labels, annotations, finalizers and spec, the
/// controller reference, and a server-generated name `<rs>-<5 random chars>`.
pub fn new_pod(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    pod::from_template(&template, rs)
}

/// Whether `labels` carries every label of the template (`fullyLabeledReplicas`).
fn fully_labeled(pod: &Pod, template: &BTreeMap<String, String>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    template.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The status `active` (the ReplicaSet's active pods) add up to at `now`, and when a ready
/// pod that is not yet available will become so (requeue then to count it).
pub fn status(rs: &ReplicaSet, active: &[Arc<Pod>], now: Timestamp) -> (ReplicaSetStatus, Option<Duration>) {
    let spec = rs.spec.as_ref();
    let min_ready = pod::min_ready(spec.and_then(|s| s.min_ready_seconds));
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let (mut ready, mut available, mut next_check) = (0, 0, None::<Duration>);
    for p in active {
        match pod::availability(p, min_ready, now) {
            Availability::Unavailable => continue,
            Availability::Available => available += 1,
            Availability::In(wait) => next_check = Some(next_check.map_or(wait, |w| w.min(wait))),
        }
        ready += 1;
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let status = ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: Some(count(active.iter().filter(|p| fully_labeled(p, &template_labels)).count())),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    (status, next_check)
}

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;
