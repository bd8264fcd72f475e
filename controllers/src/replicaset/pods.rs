//! The ReplicaSet controller's pure decisions about pods: which pods a ReplicaSet owns and
//! counts, which pod to delete first, what a new pod looks like, and the status they add up
//! to. No I/O, so every rule is unit-tested on hand-built pods.
//!
//! - A pod is *active* unless it is terminating (`deletionTimestamp`) or finished
//!   (`Succeeded`/`Failed`): only active pods count toward `spec.replicas`.
//! - Deletion order (first deleted first), as upstream's `ActivePods` ordering: unscheduled
//!   before scheduled, then Pending < Unknown < Running, then not ready before ready, then
//!   the newest first; the name breaks ties so the choice is deterministic.
//! - A pod is *available* once it has been Ready for at least `minReadySeconds`.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::Resource;

use crate::runtime::owner;

/// The controller ownerReference a ReplicaSet puts on its pods (created or adopted).
/// `blockOwnerDeletion` lets a foreground deletion of the ReplicaSet wait for its pods.
pub fn controller_reference(rs: &ReplicaSet) -> OwnerReference {
    OwnerReference {
        api_version: ReplicaSet::API_VERSION.into(),
        kind: ReplicaSet::KIND.into(),
        name: rs.metadata.name.clone().unwrap_or_default(),
        uid: rs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `rs` (this incarnation: same uid) is `pod`'s controller.
pub fn owned_by(pod: &Pod, rs: &ReplicaSet) -> bool {
    owner::controller_ref(&pod.metadata)
        .is_some_and(|r| r.kind == ReplicaSet::KIND && Some(&r.uid) == rs.metadata.uid.as_ref())
}

/// Counts toward `spec.replicas`: not terminating and not finished.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Since when the pod's Ready condition has been True, if it is.
fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(ready.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// The order in which surplus pods are deleted: the cheapest to lose first.
pub fn deletion_order(pods: &mut [Arc<Pod>]) {
    pods.sort_by_key(|p| {
        let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
        let phase = match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Pending") | None => 0,
            Some("Unknown") => 1,
            Some("Running") => 2,
            Some(_) => 3,
        };
        let created = Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        (scheduled, phase, is_ready(p), created, p.metadata.name.clone())
    });
}

/// A new pod for `rs`: its template's labels, annotations, finalizers and spec, the
/// controller reference, and a server-generated name `<rs>-<5 random chars>`.
pub fn new_pod(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name.as_deref().unwrap_or_default())),
            namespace: rs.metadata.namespace.clone(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![controller_reference(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
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
    let min_ready = Duration::from_secs(spec.and_then(|s| s.min_ready_seconds).unwrap_or(0).max(0) as u64);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let (mut ready, mut available, mut next_check) = (0, 0, None::<Duration>);
    for pod in active {
        let Some(since) = ready_since(pod) else { continue };
        ready += 1;
        let ready_for = since.map_or(Duration::ZERO, |t| Duration::try_from(now - t).unwrap_or(Duration::ZERO));
        if min_ready.is_zero() || ready_for >= min_ready {
            available += 1;
        } else {
            let wait = min_ready - ready_for;
            next_check = Some(next_check.map_or(wait, |w| w.min(wait)));
        }
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
