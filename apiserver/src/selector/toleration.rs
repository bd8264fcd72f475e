//! Taints and tolerations: whether a toleration tolerates a taint, and the first taint a pod
//! does not tolerate. Shared by the scheduler's filters, the DaemonSet controller's node
//! eligibility and the node lifecycle controller's evictions, which must agree on it.
//!
//! Matching is upstream's `Toleration.ToleratesTaint`: an empty toleration effect matches
//! every effect, an empty key (with `Exists`) every key; `Equal` (or no operator) compares
//! values, `Exists` ignores them, any other operator tolerates nothing. A taint without a
//! value has the empty value.
//!
//! Also the well-known taint keys (upstream's `well_known_taints.go`) and the effects.

use k8s_openapi::api::core::v1::{Taint, Toleration};

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// A node whose Ready condition is False.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// A node whose Ready condition is Unknown: the controller no longer hears from it.
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// A cordoned node (`spec.unschedulable`).
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_NODE_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_NODE_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_NODE_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NODE_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Whether `toleration` tolerates `taint` (upstream's `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    if toleration.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first of `taints` that `include` picks and no toleration tolerates (upstream's
/// `FindMatchingUntoleratedTaint`, whose first hit names a scheduling failure).
pub fn find_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    include: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints.iter().find(|t| include(t) && !tolerated(tolerations, t))
}

/// A `NoSchedule` or `NoExecute` taint: one that keeps an intolerant pod off the node.
pub fn forbids_scheduling(taint: &Taint) -> bool {
    taint.effect == NO_SCHEDULE || taint.effect == NO_EXECUTE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        let value = (!value.is_empty()).then(|| value.to_string());
        Taint { key: key.into(), value, effect: effect.into(), ..Default::default() }
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
    fn toleration_matching_of_valueless_and_valued_no_execute_taints() {
        let t = taint(TAINT_NODE_UNREACHABLE, "", NO_EXECUTE);
        let valued = taint("gpu", "a100", NO_EXECUTE);
        for (tol, on, expected) in [
            (toleration(TAINT_NODE_UNREACHABLE, "Exists", "", NO_EXECUTE), &t, true),
            (toleration(TAINT_NODE_UNREACHABLE, "Exists", "", ""), &t, true),
            (toleration("", "Exists", "", ""), &t, true),
            (toleration(TAINT_NODE_UNREACHABLE, "Exists", "", NO_SCHEDULE), &t, false),
            (toleration(TAINT_NODE_NOT_READY, "Exists", "", NO_EXECUTE), &t, false),
            // `Equal` (also the default operator) compares values; the taint here has none.
            (toleration(TAINT_NODE_UNREACHABLE, "", "", NO_EXECUTE), &t, true),
            (toleration(TAINT_NODE_UNREACHABLE, "Equal", "elsewhere", NO_EXECUTE), &t, false),
            (toleration("gpu", "Equal", "a100", NO_EXECUTE), &valued, true),
            (toleration("gpu", "Equal", "h100", NO_EXECUTE), &valued, false),
            (toleration("gpu", "Exists", "", NO_EXECUTE), &valued, true),
            (toleration("gpu", "Near", "a100", NO_EXECUTE), &valued, false),
        ] {
            assert_eq!(tolerates(&tol, on), expected, "{tol:?} vs {on:?}");
        }
    }

    #[test]
    fn the_first_untolerated_taint_skips_prefer_no_schedule_and_tolerated_ones() {
        let taints =
            vec![taint("soft", "", PREFER_NO_SCHEDULE), taint("a", "1", NO_SCHEDULE), taint("b", "", NO_EXECUTE)];
        let first = |tols: &[Toleration]| find_untolerated(&taints, tols, forbids_scheduling).map(|t| t.key.clone());
        assert_eq!(first(&[]), Some("a".into()));
        assert_eq!(first(&[toleration("a", "Exists", "", "")]), Some("b".into()));
        assert_eq!(first(&[toleration("a", "Exists", "", ""), toleration("b", "Exists", "", NO_EXECUTE)]), None);
        let no_execute = find_untolerated(&taints, &[], |t| t.effect == NO_EXECUTE);
        assert_eq!(no_execute.map(|t| t.key.as_str()), Some("b"), "the filter picks which taints count");
    }
}
