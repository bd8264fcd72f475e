//! The conditions the controller writes: a silent node's conditions turn `Unknown`, and the
//! pods on a node that is not Ready turn not ready. Pure edits of objects; the caller
//! writes them through the status subresources.
//!
//! As upstream's node lifecycle controller:
//! - Ready, MemoryPressure, DiskPressure and PIDPressure become `Unknown` with reason
//!   `NodeStatusUnknown` ("Kubelet stopped posting node status."), keeping their last
//!   heartbeat; one the kubelet never posted is added with reason `NodeStatusNeverUpdated`
//!   ("Kubelet never posted node status.") and the node's creation time as heartbeat.
//!   `lastTransitionTime` is the time of the change. A condition already `Unknown` is left
//!   as it is, so repeating the edit changes nothing.
//! - A pod's Ready condition, if it has one and it is not already False, becomes False
//!   (upstream `MarkPodsNotReady`); a pod without one is left alone.

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
/// The conditions of a silent node that turn Unknown, Ready first.
pub const SILENT_UNKNOWN: [&str; 4] = [READY, "MemoryPressure", "DiskPressure", "PIDPressure"];
pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
pub const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
pub const MESSAGE_NEVER_UPDATED: &str = "Kubelet never posted node status.";

/// The node's condition of type `type_`.
pub fn find<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// The status (`True`/`False`/`Unknown`) of the node's condition `type_`, if it has one.
pub fn status<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    find(node, type_).map(|c| c.status.as_str())
}

/// Whether the node reports Ready=True: a healthy node.
pub fn is_ready(node: &Node) -> bool {
    status(node, READY) == Some("True")
}

/// Set the conditions of a node the controller no longer hears from to Unknown, at `now`.
/// Returns whether anything changed.
pub fn mark_unknown(node: &mut Node, now: Timestamp) -> bool {
    let created = node.metadata.creation_timestamp.clone();
    let conditions = node.status.get_or_insert_with(Default::default).conditions.get_or_insert_with(Vec::new);
    let mut changed = false;
    for type_ in SILENT_UNKNOWN {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some(REASON_UNKNOWN.into());
                c.message = Some(MESSAGE_UNKNOWN.into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some(REASON_NEVER_UPDATED.into()),
                    message: Some(MESSAGE_NEVER_UPDATED.into()),
                    last_heartbeat_time: created.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed
}

/// Set the pod's Ready condition to False at `now`; returns whether it changed.
pub fn mark_pod_not_ready(pod: &mut Pod, now: Timestamp) -> bool {
    let conditions = pod.status.as_mut().and_then(|s| s.conditions.as_mut());
    let Some(ready) = conditions.and_then(|cs| cs.iter_mut().find(|c| c.type_ == READY)) else {
        return false;
    };
    if ready.status == "False" {
        return false;
    }
    ready.status = "False".into();
    ready.last_transition_time = Some(Time(now));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeStatus, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("valid")
    }

    fn condition(type_: &str, status: &str, heartbeat: i64) -> NodeCondition {
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some("KubeletReady".into()),
            message: Some("kubelet is posting ready status".into()),
            last_heartbeat_time: Some(Time(ts(heartbeat))),
            last_transition_time: Some(Time(ts(0))),
        }
    }

    fn node(conditions: Vec<NodeCondition>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                creation_timestamp: Some(Time(ts(-100))),
                ..Default::default()
            },
            status: Some(NodeStatus { conditions: Some(conditions), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn a_silent_node_turns_unknown_keeping_its_heartbeats() {
        let mut n = node(vec![condition(READY, "True", 50), condition("MemoryPressure", "False", 50)]);
        assert!(is_ready(&n));
        assert!(mark_unknown(&mut n, ts(100)));
        assert!(!is_ready(&n));
        let ready = find(&n, READY).expect("ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some(REASON_UNKNOWN));
        assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
        assert_eq!(ready.last_heartbeat_time, Some(Time(ts(50))), "the last heartbeat is kept");
        assert_eq!(ready.last_transition_time, Some(Time(ts(100))));
        assert_eq!(status(&n, "MemoryPressure"), Some("Unknown"));
        for missing in ["DiskPressure", "PIDPressure"] {
            let c = find(&n, missing).expect(missing);
            assert_eq!(c.status, "Unknown");
            assert_eq!(c.reason.as_deref(), Some(REASON_NEVER_UPDATED));
            assert_eq!(c.message.as_deref(), Some(MESSAGE_NEVER_UPDATED));
            assert_eq!(c.last_heartbeat_time, Some(Time(ts(-100))), "the node's creation time");
        }
        let once = n.clone();
        assert!(!mark_unknown(&mut n, ts(200)), "already unknown: nothing to write");
        assert_eq!(n, once);
    }

    #[test]
    fn a_node_that_never_reported_gets_every_condition() {
        let mut n =
            Node { metadata: ObjectMeta { name: Some("n1".into()), ..Default::default() }, ..Default::default() };
        assert!(mark_unknown(&mut n, ts(1)));
        let types: Vec<_> = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .expect("conditions")
            .iter()
            .map(|c| c.type_.clone())
            .collect();
        assert_eq!(types, SILENT_UNKNOWN);
        assert_eq!(find(&n, READY).and_then(|c| c.reason.as_deref()), Some(REASON_NEVER_UPDATED));
    }

    #[test]
    fn pods_turn_not_ready_once_and_pods_without_the_condition_are_left_alone() {
        let cond = |status: &str| PodCondition { type_: READY.into(), status: status.into(), ..Default::default() };
        let mut pod = Pod {
            status: Some(PodStatus { conditions: Some(vec![cond("True")]), ..Default::default() }),
            ..Default::default()
        };
        assert!(crate::pod::is_ready(&pod));
        assert!(mark_pod_not_ready(&mut pod, ts(5)));
        assert!(!crate::pod::is_ready(&pod));
        let ready = &pod.status.as_ref().and_then(|s| s.conditions.as_ref()).expect("conditions")[0];
        assert_eq!((ready.status.as_str(), ready.last_transition_time.clone()), ("False", Some(Time(ts(5)))));
        assert!(!mark_pod_not_ready(&mut pod, ts(6)), "already false");
        let mut bare = Pod::default();
        assert!(!mark_pod_not_ready(&mut bare, ts(5)));
        assert_eq!(bare, Pod::default());
    }
}
