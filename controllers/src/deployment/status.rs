//! A Deployment's status from its ReplicaSets: the counts and the Available and
//! Progressing conditions that `kubectl rollout status` reads.
//!
//! - Available is True when `availableReplicas >= replicas - maxUnavailable`.
//! - Progressing: `NewReplicaSetCreated` / `FoundNewReplicaSet` when this reconcile made
//!   or re-selected the new RS; `NewReplicaSetAvailable` once the rollout is complete;
//!   `ReplicaSetUpdated` (its `lastUpdateTime` refreshed) whenever the counts moved
//!   forward; `ProgressDeadlineExceeded` (False) when `lastUpdateTime` is older than
//!   `progressDeadlineSeconds` without completion; `DeploymentPaused` (Unknown) while
//!   paused and `DeploymentResumed` right after, which restarts the deadline clock.
//! - A condition keeps its `lastTransitionTime` while its status does not change.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// What this reconcile did that the Progressing condition reports first.
#[derive(Debug, Clone)]
pub enum Note {
    Created(String),
    Found(String),
}

fn rs_status(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.as_ref();
    (
        s.map_or(0, |s| s.replicas),
        s.and_then(|s| s.ready_replicas).unwrap_or(0),
        s.and_then(|s| s.available_replicas).unwrap_or(0),
    )
}

/// The status `d` should have, given its new RS, all its RSs (new included) and now.
pub fn compute(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    max_unavailable: i32,
    note: Option<Note>,
    now: Timestamp,
) -> DeploymentStatus {
    let spec = d.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    let old = d.status.clone().unwrap_or_default();
    let sum = |f: fn((i32, i32, i32)) -> i32| all.iter().map(|rs| f(rs_status(rs))).sum::<i32>();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(|c| c.0)),
        updated_replicas: Some(new.map_or(0, |rs| rs_status(rs).0)),
        ready_replicas: Some(sum(|c| c.1)),
        available_replicas: Some(sum(|c| c.2)),
        unavailable_replicas: Some((replicas - sum(|c| c.2)).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
    };
    let available = status.available_replicas.unwrap_or(0) >= replicas - max_unavailable;
    let (s, reason, message) = if available {
        ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    } else {
        ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    };
    set(&mut status, condition("Available", s, reason, message.into(), now), false);
    progressing(d, &old, &mut status, new, note, now);
    status
}

fn progressing(
    d: &Deployment,
    old: &DeploymentStatus,
    status: &mut DeploymentStatus,
    new: Option<&ReplicaSet>,
    note: Option<Note>,
    now: Timestamp,
) {
    let spec = d.spec.as_ref();
    let current = find(status, "Progressing").cloned();
    let current_reason = current.as_ref().and_then(|c| c.reason.clone()).unwrap_or_default();
    let rs_name = new.and_then(|rs| rs.metadata.name.clone()).unwrap_or_default();
    if spec.and_then(|s| s.paused) == Some(true) {
        set(status, condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused".into(), now), false);
        return;
    }
    let next = match note {
        Some(Note::Created(name)) => {
            Some(("True", "NewReplicaSetCreated", format!("Created new replica set \"{name}\"")))
        }
        Some(Note::Found(name)) => Some(("True", "FoundNewReplicaSet", format!("Found new replica set \"{name}\""))),
        None if complete(d, status) => {
            Some(("True", "NewReplicaSetAvailable", format!("ReplicaSet \"{rs_name}\" has successfully progressed.")))
        }
        None if current_reason == "DeploymentPaused" => {
            Some(("Unknown", "DeploymentResumed", "Deployment is resumed".into()))
        }
        None if progressed(old, status) => {
            Some(("True", "ReplicaSetUpdated", format!("ReplicaSet \"{rs_name}\" is progressing.")))
        }
        None if current.as_ref().is_some_and(|c| timed_out(d, c, now)) => {
            Some(("False", "ProgressDeadlineExceeded", format!("ReplicaSet \"{rs_name}\" has timed out progressing.")))
        }
        None => None,
    };
    if let Some((s, reason, message)) = next {
        // A rollout that moves refreshes lastUpdateTime even with the same reason.
        let refresh = reason == "ReplicaSetUpdated" || reason == "NewReplicaSetCreated";
        set(status, condition("Progressing", s, reason, message, now), refresh);
    }
}

/// Whether every desired pod runs the new template and is available (upstream's
/// `DeploymentComplete`).
pub fn complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    status.updated_replicas == Some(replicas)
        && status.replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && status.observed_generation >= d.metadata.generation
}

/// Whether the counts moved towards completion since `old`.
fn progressed(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let v = |x: Option<i32>| x.unwrap_or(0);
    v(new.updated_replicas) > v(old.updated_replicas)
        || v(new.replicas) < v(old.replicas)
        || v(new.ready_replicas) > v(old.ready_replicas)
        || v(new.available_replicas) > v(old.available_replicas)
}

/// The progress deadline, when one applies and the Progressing condition has not already
/// reported it as exceeded or complete.
pub fn deadline(d: &Deployment, status: &DeploymentStatus) -> Option<Timestamp> {
    let seconds = d.spec.as_ref()?.progress_deadline_seconds?;
    if seconds == i32::MAX || d.spec.as_ref()?.paused == Some(true) {
        return None;
    }
    let c = find(status, "Progressing")?;
    if matches!(c.reason.as_deref(), Some("ProgressDeadlineExceeded" | "NewReplicaSetAvailable")) {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0;
    from.checked_add(Duration::from_secs(seconds.max(0) as u64)).ok()
}

fn timed_out(d: &Deployment, c: &DeploymentCondition, now: Timestamp) -> bool {
    let status = DeploymentStatus { conditions: Some(vec![c.clone()]), ..Default::default() };
    deadline(d, &status).is_some_and(|at| at < now)
}

fn find<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

fn condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Put `c` into `status`: unchanged if an equal-status same-reason condition exists (unless
/// `refresh`), keeping `lastTransitionTime` while the status stays the same.
fn set(status: &mut DeploymentStatus, mut c: DeploymentCondition, refresh: bool) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(existing) = conditions.iter_mut().find(|e| e.type_ == c.type_) {
        if existing.status == c.status {
            if existing.reason == c.reason && !refresh {
                return;
            }
            c.last_transition_time = existing.last_transition_time.clone();
        }
        *existing = c;
    } else {
        conditions.push(c);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": 2},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 10, "selector": {},
                     "template": {"spec": {"containers": []}}},
            "status": status
        }))
        .expect("deployment")
    }

    fn rs(replicas: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": "d-x"}, "status": {
            "replicas": replicas, "readyReplicas": available, "availableReplicas": available}}))
        .expect("rs")
    }

    fn reason(s: &DeploymentStatus, type_: &str) -> (String, String) {
        let c = find(s, type_).expect("condition");
        (c.status.clone(), c.reason.clone().unwrap_or_default())
    }

    #[test]
    fn progress_then_deadline_then_completion() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let later = |s: i64| t0.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(s)).expect("time");
        let new = rs(3, 1);
        let d = deployment(3, json!({"observedGeneration": 1, "availableReplicas": 0}));
        let s = compute(&d, Some(&new), &[&new], 0, None, t0);
        assert_eq!(reason(&s, "Progressing"), ("True".into(), "ReplicaSetUpdated".into()));
        assert_eq!(reason(&s, "Available"), ("False".into(), "MinimumReplicasUnavailable".into()));
        assert_eq!((s.observed_generation, s.unavailable_replicas, s.updated_replicas), (Some(2), Some(2), Some(3)));

        // No progress for longer than the deadline.
        let d = Deployment { status: Some(s), ..d };
        assert_eq!(deadline(&d, d.status.as_ref().expect("status")), Some(later(10)));
        let s = compute(&d, Some(&new), &[&new], 0, None, later(5));
        assert_eq!(reason(&s, "Progressing").1, "ReplicaSetUpdated", "within the deadline");
        let s = compute(&d, Some(&new), &[&new], 0, None, later(11));
        assert_eq!(reason(&s, "Progressing"), ("False".into(), "ProgressDeadlineExceeded".into()));

        // Then every pod becomes available.
        let done = rs(3, 3);
        let d = Deployment { status: Some(s), ..d };
        let s = compute(&d, Some(&done), &[&done], 0, None, later(12));
        assert_eq!(reason(&s, "Progressing"), ("True".into(), "NewReplicaSetAvailable".into()));
        assert_eq!(reason(&s, "Available"), ("True".into(), "MinimumReplicasAvailable".into()));
        assert_eq!(find(&s, "Available").and_then(|c| c.last_transition_time.clone()).map(|t| t.0), Some(later(12)));
        assert_eq!(deadline(&d, &s), None);
    }
}
