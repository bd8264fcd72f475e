//! One pod as the controllers see it: its state (upstream's `podutil` predicates) and a new
//! pod from a workload's template (`GetPodFromTemplate`), in one place for the ReplicaSet,
//! StatefulSet, DaemonSet, Job, Endpoints, disruption, volume and node lifecycle controllers
//! (and the scheduler). Pure functions of a pod, a template and the time.
//!
//! Invariants (upstream's definitions):
//! - *finished* (terminal): phase `Succeeded` or `Failed`; the pod will not run again.
//! - *terminating*: `deletionTimestamp` is set, whatever the phase.
//! - *active*: neither terminating nor finished: what counts toward a workload's size.
//! - *ready*: condition `Ready` is `True`; the phase is not looked at (`IsPodReady`). It has
//!   been ready since that condition's `lastTransitionTime`; without one, for no time yet.
//! - *available* at `now` (`IsPodAvailable`): ready for at least `minReadySeconds`; a ready
//!   pod not yet available becomes so after a wait that [`availability`] names.
//! - *running and ready* / *running and available* (the StatefulSet's and DaemonSet's
//!   `isRunningAndReady`): the same, and phase `Running`.
//! - [`deletion_order`] (upstream's `ActivePods` order, first deleted first): unscheduled
//!   before scheduled, then Pending < Unknown < Running, then not ready before ready, then
//!   the newest first; the name breaks ties, so the choice is deterministic.
//! - A pod made by [`from_template`] carries its owner's controller reference, so it is
//!   counted as the owner's from its first sight in a cache.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};

use crate::runtime::owner;

/// The pod's `status.phase`, if it has one.
pub fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// Succeeded or Failed: the pod will not run again.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Succeeded" | "Failed"))
}

/// Being deleted (`deletionTimestamp` set), finished or not.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Neither terminating nor finished: counts toward a workload's replicas or parallelism.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminating(pod) && !is_finished(pod)
}

/// Since when the pod's Ready condition has been True, if it is (the inner None: the
/// condition carries no transition time).
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(ready.last_transition_time.as_ref().map(|t| t.0))
}

/// Condition Ready is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Phase Running and condition Ready.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && is_ready(pod)
}

/// `minReadySeconds` as a duration (unset or negative: zero).
pub fn min_ready(seconds: Option<i32>) -> Duration {
    Duration::from_secs(u64::try_from(seconds.unwrap_or(0)).unwrap_or(0))
}

/// Whether a pod is available at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Ready, available after this much longer.
    In(Duration),
    Unavailable,
}

/// Whether `pod` is available at `now`: ready for `min_ready` already (`IsPodAvailable`).
pub fn availability(pod: &Pod, min_ready: Duration, now: Timestamp) -> Availability {
    let Some(since) = ready_since(pod) else { return Availability::Unavailable };
    if min_ready.is_zero() {
        return Availability::Available;
    }
    let ready_for = since.map_or(Duration::ZERO, |t| Duration::try_from(now - t).unwrap_or(Duration::ZERO));
    if ready_for >= min_ready {
        Availability::Available
    } else {
        Availability::In(min_ready - ready_for)
    }
}

/// [`availability`] of a pod that must also be Running to count (StatefulSet, DaemonSet).
pub fn running_availability(pod: &Pod, min_ready: Duration, now: Timestamp) -> Availability {
    if phase(pod) != Some("Running") {
        return Availability::Unavailable;
    }
    availability(pod, min_ready, now)
}

/// The order in which surplus pods are deleted: the cheapest to lose first.
pub fn deletion_order(pods: &mut [Arc<Pod>]) {
    pods.sort_by_key(|p| {
        let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
        let phase = match phase(p) {
            Some("Pending") | None => 0,
            Some("Unknown") => 1,
            Some("Running") => 2,
            Some(_) => 3,
        };
        let created = Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        (scheduled, phase, is_ready(p), created, p.metadata.name.clone())
    });
}

/// A new pod of `owner` from `template`: the template's labels, annotations, finalizers and
/// spec, the owner's namespace and controller reference, and a name the server generates as
/// `<owner>-<5 random chars>`. Callers add what their kind of workload needs.
pub fn from_template<K: Resource + Metadata<Ty = ObjectMeta>>(template: &PodTemplateSpec, owner: &K) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    let meta = owner.metadata();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", meta.name.as_deref().unwrap_or_default())),
            namespace: meta.namespace.clone(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner::controller_reference(owner)]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Pods for unit tests: a fixed clock and a pod in a phase, Ready since a time.
#[cfg(test)]
pub(crate) mod fixtures {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    /// `secs` seconds after the fixed instant the unit tests' clocks start at.
    pub fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("valid timestamp")
    }

    /// A pod in `phase`, Ready since [`at`]`(ready_at)` if given, else without a Ready
    /// condition; no metadata or spec.
    pub fn pod(phase: &str, ready_at: Option<i64>) -> Pod {
        let conditions = ready_at.map(|t| {
            vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(at(t))),
                ..Default::default()
            }]
        });
        Pod {
            status: Some(PodStatus { phase: Some(phase.into()), conditions, ..Default::default() }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::fixtures::{at, pod};
    use super::*;

    fn terminating(mut p: Pod) -> Pod {
        p.metadata.deletion_timestamp = Some(Time(at(9)));
        p
    }

    /// Pod `name`, created at `created`, on `node` if given.
    fn placed(name: &str, created: i64, node: Option<&str>, phase: &str, ready_at: Option<i64>) -> Arc<Pod> {
        let mut p = pod(phase, ready_at);
        p.metadata.name = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(at(created)));
        p.spec = Some(PodSpec { node_name: node.map(String::from), ..Default::default() });
        Arc::new(p)
    }

    #[test]
    fn surplus_pods_go_unscheduled_then_pending_then_not_ready_then_newest() {
        let mut pods = vec![
            placed("ready-old", 1, Some("n1"), "Running", Some(5)),
            placed("ready-new", 2, Some("n1"), "Running", Some(6)),
            placed("running-not-ready", 3, Some("n1"), "Running", None),
            placed("pending-on-node", 4, Some("n1"), "Pending", None),
            placed("unscheduled", 0, None, "Pending", None),
        ];
        deletion_order(&mut pods);
        let names: Vec<_> = pods.iter().map(|p| p.metadata.name.as_deref().unwrap_or_default()).collect();
        assert_eq!(names, ["unscheduled", "pending-on-node", "running-not-ready", "ready-new", "ready-old"]);
    }

    #[test]
    fn a_pod_from_a_template_is_named_placed_and_controlled_by_its_owner() {
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("rs-uid".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                annotations: Some([("a".to_string(), "b".to_string())].into()),
                finalizers: Some(vec!["example.com/hold".into()]),
                ..Default::default()
            }),
            spec: Some(PodSpec { hostname: Some("h".into()), ..Default::default() }),
        };
        let p = from_template(&template, &rs);
        let m = &p.metadata;
        assert_eq!(
            (m.name.as_deref(), m.generate_name.as_deref(), m.namespace.as_deref()),
            (None, Some("web-"), Some("prod"))
        );
        let tm = template.metadata.as_ref().expect("template metadata");
        assert_eq!((&m.labels, &m.annotations, &m.finalizers), (&tm.labels, &tm.annotations, &tm.finalizers));
        assert_eq!(m.owner_references, Some(vec![owner::controller_reference(&rs)]));
        assert_eq!((&p.spec, &p.status), (&template.spec, &None));
    }

    #[test]
    fn terminating_and_finished_pods_are_not_active() {
        assert!(is_active(&pod("Pending", None)) && is_active(&pod("Running", Some(0))));
        assert!(is_finished(&pod("Failed", None)) && is_finished(&pod("Succeeded", None)));
        assert!(!is_finished(&pod("Running", None)) && !is_finished(&Pod::default()));
        assert!(!is_active(&pod("Succeeded", None)) && !is_active(&pod("Failed", None)));
        let deleting = terminating(pod("Running", Some(0)));
        assert!(is_terminating(&deleting) && !is_active(&deleting));
        assert!(is_terminating(&terminating(pod("Failed", None))), "a finished pod can be terminating too");
    }

    #[test]
    fn ready_is_the_condition_and_running_and_ready_adds_the_phase() {
        assert!(is_ready(&pod("Pending", Some(1))) && !is_running_and_ready(&pod("Pending", Some(1))));
        assert!(is_running_and_ready(&pod("Running", Some(1))));
        assert!(!is_ready(&pod("Running", None)));
        let mut not_ready = pod("Running", None);
        not_ready.status.as_mut().expect("status").conditions =
            Some(vec![PodCondition { type_: "Ready".into(), status: "False".into(), ..Default::default() }]);
        assert!(!is_ready(&not_ready));
        let untimed = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(ready_since(&untimed), Some(None));
        assert_eq!(availability(&untimed, Duration::from_secs(5), at(100)), Availability::In(Duration::from_secs(5)));
    }

    #[test]
    fn availability_needs_ready_for_min_ready_seconds_and_running_availability_the_phase() {
        let min = Duration::from_secs(10);
        assert_eq!(availability(&pod("Running", None), Duration::ZERO, at(100)), Availability::Unavailable);
        assert_eq!(availability(&pod("Running", Some(95)), Duration::ZERO, at(100)), Availability::Available);
        assert_eq!(availability(&pod("Running", Some(95)), min, at(100)), Availability::In(Duration::from_secs(5)));
        assert_eq!(availability(&pod("Running", Some(80)), min, at(100)), Availability::Available);
        assert_eq!(availability(&pod("Pending", Some(0)), Duration::ZERO, at(100)), Availability::Available);
        assert_eq!(running_availability(&pod("Pending", Some(0)), Duration::ZERO, at(100)), Availability::Unavailable);
        assert_eq!(
            running_availability(&pod("Running", Some(95)), min, at(100)),
            Availability::In(Duration::from_secs(5))
        );
        assert_eq!(
            (min_ready(None), min_ready(Some(-3)), min_ready(Some(7))),
            (Duration::ZERO, Duration::ZERO, Duration::from_secs(7))
        );
    }
}
