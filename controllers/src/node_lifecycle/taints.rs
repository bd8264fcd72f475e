//! The taints a node's conditions call for, as upstream's node lifecycle controller sets
//! them: a pure function from a node to the taint list it should carry.
//!
//! | condition            | taints                                                    |
//! |----------------------|-----------------------------------------------------------|
//! | Ready=False          | `node.kubernetes.io/not-ready` NoSchedule + NoExecute      |
//! | Ready=Unknown        | `node.kubernetes.io/unreachable` NoSchedule + NoExecute    |
//! | MemoryPressure=True  | `node.kubernetes.io/memory-pressure` NoSchedule            |
//! | DiskPressure=True    | `node.kubernetes.io/disk-pressure` NoSchedule              |
//! | PIDPressure=True     | `node.kubernetes.io/pid-pressure` NoSchedule               |
//! | NetworkUnavailable=True | `node.kubernetes.io/network-unavailable` NoSchedule     |
//! | `spec.unschedulable` | `node.kubernetes.io/unschedulable` NoSchedule              |
//!
//! Invariants:
//! - Only these (key, effect) pairs are the controller's: it adds the ones called for and
//!   removes the others; every other taint is kept as it is, in place.
//! - A taint already present keeps its `timeAdded` (eviction clocks run from it); one added
//!   gets `timeAdded` = now. Not-ready and unreachable swap in one write as Ready moves
//!   between False and Unknown, so the node is never without a NoExecute taint meanwhile.
//! - A node without a Ready condition (a kubelet that has not reported yet) gets no
//!   readiness taint: the startup grace period decides when it turns Unknown.

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::conditions;

use flotilla_apiserver::selector::toleration::{
    NO_EXECUTE, NO_SCHEDULE, TAINT_NODE_DISK_PRESSURE, TAINT_NODE_MEMORY_PRESSURE, TAINT_NODE_NETWORK_UNAVAILABLE,
    TAINT_NODE_NOT_READY, TAINT_NODE_PID_PRESSURE, TAINT_NODE_UNREACHABLE, TAINT_NODE_UNSCHEDULABLE,
};

/// Conditions that, when True, call for a NoSchedule taint.
const PRESSURE: [(&str, &str); 4] = [
    ("MemoryPressure", TAINT_NODE_MEMORY_PRESSURE),
    ("DiskPressure", TAINT_NODE_DISK_PRESSURE),
    ("PIDPressure", TAINT_NODE_PID_PRESSURE),
    ("NetworkUnavailable", TAINT_NODE_NETWORK_UNAVAILABLE),
];

/// Whether the controller manages the taint `key:effect`.
fn managed(key: &str, effect: &str) -> bool {
    match effect {
        NO_EXECUTE => key == TAINT_NODE_NOT_READY || key == TAINT_NODE_UNREACHABLE,
        NO_SCHEDULE => {
            key == TAINT_NODE_NOT_READY
                || key == TAINT_NODE_UNREACHABLE
                || key == TAINT_NODE_UNSCHEDULABLE
                || PRESSURE.iter().any(|(_, k)| *k == key)
        }
        _ => false,
    }
}

/// The managed taints (key, effect) the node's conditions and spec call for.
pub fn called_for(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut wanted = Vec::new();
    let readiness = match conditions::status(node, conditions::READY) {
        Some("False") => Some(TAINT_NODE_NOT_READY),
        Some("Unknown") => Some(TAINT_NODE_UNREACHABLE),
        _ => None,
    };
    if let Some(key) = readiness {
        wanted.extend([(key, NO_SCHEDULE), (key, NO_EXECUTE)]);
    }
    for (condition, key) in PRESSURE {
        if conditions::status(node, condition) == Some("True") {
            wanted.push((key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push((TAINT_NODE_UNSCHEDULABLE, NO_SCHEDULE));
    }
    wanted
}

/// The node's taints as they should be at `now`, or None when they already are.
pub fn reconcile(node: &Node, now: Timestamp) -> Option<Vec<Taint>> {
    let current = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[]);
    let wanted = called_for(node);
    let is_wanted = |t: &Taint| wanted.iter().any(|(k, e)| t.key == *k && t.effect == *e);
    let mut taints: Vec<Taint> =
        current.iter().filter(|t| !managed(&t.key, &t.effect) || is_wanted(t)).cloned().collect();
    let removed = taints.len() != current.len();
    let mut added = false;
    for (key, effect) in wanted {
        if !taints.iter().any(|t| t.key == key && t.effect == effect) {
            let time_added = Some(Time(now));
            taints.push(Taint { key: key.into(), effect: effect.into(), time_added, value: None });
            added = true;
        }
    }
    (removed || added).then_some(taints)
}

/// The node's NoExecute taints (from whoever set them).
pub fn no_execute(node: &Node) -> Vec<&Taint> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[]);
    taints.iter().filter(|t| t.effect == NO_EXECUTE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("valid")
    }

    fn taint(key: &str, effect: &str, added: i64) -> Taint {
        Taint { key: key.into(), effect: effect.into(), time_added: Some(Time(ts(added))), value: None }
    }

    fn node(conditions: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        let conditions = conditions
            .iter()
            .map(|(t, s)| NodeCondition { type_: t.to_string(), status: s.to_string(), ..Default::default() })
            .collect();
        Node {
            spec: Some(NodeSpec { taints: Some(taints), ..Default::default() }),
            status: Some(NodeStatus { conditions: Some(conditions), ..Default::default() }),
            ..Default::default()
        }
    }

    fn keys(taints: &[Taint]) -> Vec<(String, String)> {
        taints.iter().map(|t| (t.key.clone(), t.effect.clone())).collect()
    }

    #[test]
    fn unknown_calls_for_unreachable_and_false_for_not_ready() {
        let foreign = taint("dedicated", NO_SCHEDULE, 0);
        let unknown = node(&[("Ready", "Unknown")], vec![foreign.clone()]);
        let taints = reconcile(&unknown, ts(10)).expect("taints to add");
        assert_eq!(taints[0], foreign, "other taints stay first, untouched");
        assert_eq!(
            keys(&taints[1..]),
            [(TAINT_NODE_UNREACHABLE.into(), NO_SCHEDULE.into()), (TAINT_NODE_UNREACHABLE.into(), NO_EXECUTE.into())]
        );
        assert!(taints[1..].iter().all(|t| t.time_added == Some(Time(ts(10)))));

        let not_ready = node(&[("Ready", "False")], vec![]);
        assert_eq!(
            keys(&reconcile(&not_ready, ts(10)).expect("taints")),
            [(TAINT_NODE_NOT_READY.into(), NO_SCHEDULE.into()), (TAINT_NODE_NOT_READY.into(), NO_EXECUTE.into())]
        );
    }

    #[test]
    fn present_taints_keep_their_time_and_a_healthy_node_loses_them() {
        let tainted = vec![taint(TAINT_NODE_UNREACHABLE, NO_SCHEDULE, 1), taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE, 1)];
        assert_eq!(reconcile(&node(&[("Ready", "Unknown")], tainted.clone()), ts(50)), None, "nothing to do");
        let recovered = node(&[("Ready", "True")], tainted.clone());
        assert_eq!(reconcile(&recovered, ts(50)), Some(vec![]));
        // No Ready condition yet: no readiness taint either way.
        assert_eq!(reconcile(&node(&[], vec![]), ts(50)), None);
        assert_eq!(reconcile(&node(&[], tainted), ts(50)), Some(vec![]));
    }

    #[test]
    fn not_ready_and_unreachable_swap_in_one_edit() {
        let was_unknown =
            vec![taint(TAINT_NODE_UNREACHABLE, NO_SCHEDULE, 1), taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE, 1)];
        let now_false = node(&[("Ready", "False")], was_unknown);
        let taints = reconcile(&now_false, ts(9)).expect("swap");
        assert_eq!(
            keys(&taints),
            [(TAINT_NODE_NOT_READY.into(), NO_SCHEDULE.into()), (TAINT_NODE_NOT_READY.into(), NO_EXECUTE.into())]
        );
        assert!(taints.iter().all(|t| t.time_added == Some(Time(ts(9)))));
    }

    #[test]
    fn pressure_and_cordon_call_for_no_schedule_only() {
        let mut n = node(&[("Ready", "True"), ("MemoryPressure", "True"), ("DiskPressure", "Unknown")], vec![]);
        n.spec.as_mut().expect("spec").unschedulable = Some(true);
        let taints = reconcile(&n, ts(0)).expect("taints");
        assert_eq!(
            keys(&taints),
            [
                ("node.kubernetes.io/memory-pressure".into(), NO_SCHEDULE.into()),
                (TAINT_NODE_UNSCHEDULABLE.into(), NO_SCHEDULE.into())
            ]
        );
        assert!(no_execute(&n).is_empty());
        // A managed key with an effect the controller does not manage is someone else's.
        let foreign = node(&[("Ready", "True")], vec![taint(TAINT_NODE_UNREACHABLE, "PreferNoSchedule", 0)]);
        assert_eq!(reconcile(&foreign, ts(0)), None);
    }
}
