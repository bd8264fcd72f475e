//! The taints a node's conditions imply, and how many soft taints a pod does not tolerate.
//!
//! Toleration matching itself (upstream's `Toleration.ToleratesTaint`) is shared with the
//! controllers: [`flotilla_apiserver::selector::toleration`].
//!
//! Upstream's scheduler has no "node is Ready" filter: the node lifecycle controller taints
//! a node whose Ready condition is False with `node.kubernetes.io/not-ready:NoSchedule` and
//! one whose condition is Unknown with `node.kubernetes.io/unreachable:NoSchedule`, and the
//! taint filter does the rest. The snapshot adds those same taints from the condition itself
//! (a node with no Ready condition yet counts as not ready, as a freshly registered kubelet
//! taints itself), so a not-ready node is rejected with upstream's message, and a pod that
//! tolerates the taint (a DaemonSet pod) still lands there.

use flotilla_apiserver::selector::toleration::{
    tolerates, NO_SCHEDULE, PREFER_NO_SCHEDULE, TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE,
};
use flotilla_controllers::node_lifecycle::conditions;
use k8s_openapi::api::core::v1::{Node, Taint, Toleration};

/// The node's own taints, then the one its Ready condition implies if not already there.
pub fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let implied = match conditions::status(node, conditions::READY) {
        Some("True") => None,
        Some("Unknown") => Some(TAINT_NODE_UNREACHABLE),
        _ => Some(TAINT_NODE_NOT_READY),
    };
    if let Some(key) = implied {
        if !taints.iter().any(|t| t.key == key && t.effect == NO_SCHEDULE) {
            taints.push(Taint { key: key.to_string(), effect: NO_SCHEDULE.to_string(), ..Default::default() });
        }
    }
    taints
}

/// How many `PreferNoSchedule` taints the pod does not tolerate; only tolerations whose
/// effect is empty or `PreferNoSchedule` count, as upstream's score does.
pub fn untolerated_preferences(taints: &[Taint], tolerations: &[Toleration]) -> i64 {
    let mut count = 0;
    for taint in taints.iter().filter(|t| t.effect == PREFER_NO_SCHEDULE) {
        let ok = tolerations
            .iter()
            .any(|t| matches!(t.effect.as_deref(), None | Some("") | Some(PREFER_NO_SCHEDULE)) && tolerates(t, taint));
        if !ok {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint { key: key.into(), value: Some(value.into()), effect: effect.into(), ..Default::default() }
    }

    fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration { key: opt(key), operator: opt(op), value: opt(value), effect: opt(effect), ..Default::default() }
    }

    #[test]
    fn prefer_no_schedule_counting_ignores_no_schedule_tolerations() {
        let taints =
            vec![taint("x", "", PREFER_NO_SCHEDULE), taint("y", "", PREFER_NO_SCHEDULE), taint("z", "", NO_SCHEDULE)];
        assert_eq!(untolerated_preferences(&taints, &[]), 2);
        assert_eq!(untolerated_preferences(&taints, &[toleration("x", "Exists", "", PREFER_NO_SCHEDULE)]), 1);
        // A toleration limited to NoSchedule does not count for the preference.
        assert_eq!(untolerated_preferences(&taints, &[toleration("x", "Exists", "", NO_SCHEDULE)]), 2);
        assert_eq!(untolerated_preferences(&taints, &[toleration("", "Exists", "", "")]), 0);
    }

    fn node_with(ready: Option<&str>, taints: Vec<Taint>) -> Node {
        let conditions =
            ready.map(|s| vec![NodeCondition { type_: "Ready".into(), status: s.into(), ..Default::default() }]);
        Node {
            spec: Some(NodeSpec { taints: Some(taints), ..Default::default() }),
            status: Some(NodeStatus { conditions, ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn ready_condition_implies_taints() {
        let keys = |n: &Node| effective_taints(n).into_iter().map(|t| t.key).collect::<Vec<_>>();
        assert!(keys(&node_with(Some("True"), vec![])).is_empty());
        assert_eq!(keys(&node_with(Some("False"), vec![])), [TAINT_NODE_NOT_READY]);
        assert_eq!(keys(&node_with(Some("Unknown"), vec![])), [TAINT_NODE_UNREACHABLE]);
        assert_eq!(keys(&node_with(None, vec![])), [TAINT_NODE_NOT_READY]);
        // Not duplicated when the lifecycle controller already put it there.
        let existing = node_with(Some("False"), vec![taint(TAINT_NODE_NOT_READY, "", NO_SCHEDULE)]);
        assert_eq!(keys(&existing), [TAINT_NODE_NOT_READY]);
    }
}
