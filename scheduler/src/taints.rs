//! Taints and tolerations, and the taints a node's conditions imply.
//!
//! Matching is upstream's `Toleration.ToleratesTaint`: an empty toleration effect matches
//! every effect, an empty key (with `Exists`) every key; `Equal` (or no operator) compares
//! values, `Exists` ignores them.
//!
//! Upstream's scheduler has no "node is Ready" filter: the node lifecycle controller taints
//! a node whose Ready condition is False with `node.kubernetes.io/not-ready:NoSchedule` and
//! one whose condition is Unknown with `node.kubernetes.io/unreachable:NoSchedule`, and the
//! taint filter does the rest. The snapshot adds those same taints from the condition itself
//! (a node with no Ready condition yet counts as not ready, as a freshly registered kubelet
//! taints itself), so a not-ready node is rejected with upstream's message, and a pod that
//! tolerates the taint (a DaemonSet pod) still lands there.

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";

/// Whether one toleration tolerates `key=value:effect`.
pub fn tolerates(toleration: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    if toleration.effect.as_deref().is_some_and(|e| !e.is_empty() && e != effect) {
        return false;
    }
    if toleration.key.as_deref().is_some_and(|k| !k.is_empty() && k != key) {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => toleration.value.as_deref().unwrap_or("") == value,
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    let value = taint.value.as_deref().unwrap_or("");
    tolerations.iter().any(|t| tolerates(t, &taint.key, value, &taint.effect))
}

/// The node's own taints, then the one its Ready condition implies if not already there.
pub fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let ready = conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str());
    let implied = match ready {
        Some("True") => None,
        Some("Unknown") => Some(TAINT_UNREACHABLE),
        _ => Some(TAINT_NOT_READY),
    };
    if let Some(key) = implied {
        if !taints.iter().any(|t| t.key == key && t.effect == NO_SCHEDULE) {
            taints.push(Taint { key: key.to_string(), effect: NO_SCHEDULE.to_string(), ..Default::default() });
        }
    }
    taints
}

/// The first taint with a `NoSchedule` or `NoExecute` effect that no toleration tolerates
/// (upstream `FindMatchingUntoleratedTaint`, whose first hit names the failure).
pub fn first_untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints.iter().find(|t| (t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE) && !tolerated(tolerations, t))
}

/// How many `PreferNoSchedule` taints the pod does not tolerate; only tolerations whose
/// effect is empty or `PreferNoSchedule` count, as upstream's score does.
pub fn untolerated_preferences(taints: &[Taint], tolerations: &[Toleration]) -> i64 {
    let mut count = 0;
    for taint in taints.iter().filter(|t| t.effect == PREFER_NO_SCHEDULE) {
        let value = taint.value.as_deref().unwrap_or("");
        let ok = tolerations.iter().any(|t| {
            matches!(t.effect.as_deref(), None | Some("") | Some(PREFER_NO_SCHEDULE))
                && tolerates(t, &taint.key, value, PREFER_NO_SCHEDULE)
        });
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
    fn toleration_matching_rules() {
        let t = taint("dedicated", "gpu", NO_SCHEDULE);
        assert!(tolerated(&[toleration("dedicated", "Equal", "gpu", NO_SCHEDULE)], &t));
        assert!(tolerated(&[toleration("dedicated", "", "gpu", "")], &t), "no operator means Equal; no effect = any");
        assert!(tolerated(&[toleration("dedicated", "Exists", "", "")], &t));
        assert!(tolerated(&[toleration("", "Exists", "", "")], &t), "empty key with Exists tolerates everything");
        assert!(!tolerated(&[toleration("dedicated", "Equal", "cpu", NO_SCHEDULE)], &t), "value differs");
        assert!(!tolerated(&[toleration("dedicated", "Exists", "", NO_EXECUTE)], &t), "effect differs");
        assert!(!tolerated(&[toleration("other", "Exists", "", "")], &t), "key differs");
        assert!(!tolerated(&[toleration("dedicated", "Gt", "gpu", "")], &t), "unknown operator");
        assert!(!tolerated(&[], &t));
    }

    #[test]
    fn first_untolerated_skips_prefer_no_schedule_and_tolerated() {
        let taints =
            vec![taint("soft", "", PREFER_NO_SCHEDULE), taint("a", "1", NO_SCHEDULE), taint("b", "", NO_EXECUTE)];
        assert_eq!(first_untolerated(&taints, &[]).map(|t| t.key.as_str()), Some("a"));
        let tol = [toleration("a", "Exists", "", "")];
        assert_eq!(first_untolerated(&taints, &tol).map(|t| t.key.as_str()), Some("b"));
        let tol = [toleration("a", "Exists", "", ""), toleration("b", "Exists", "", NO_EXECUTE)];
        assert_eq!(first_untolerated(&taints, &tol), None);
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
        assert_eq!(keys(&node_with(Some("False"), vec![])), [TAINT_NOT_READY]);
        assert_eq!(keys(&node_with(Some("Unknown"), vec![])), [TAINT_UNREACHABLE]);
        assert_eq!(keys(&node_with(None, vec![])), [TAINT_NOT_READY]);
        // Not duplicated when the lifecycle controller already put it there.
        let existing = node_with(Some("False"), vec![taint(TAINT_NOT_READY, "", NO_SCHEDULE)]);
        assert_eq!(keys(&existing), [TAINT_NOT_READY]);
    }
}
