//! Which nodes a DaemonSet's pods belong on, and how a daemon pod is pinned to its node.
//! Pure functions, after upstream's `NodeShouldRunDaemonPod`, `AddOrUpdateDaemonPodTolerations`
//! and `ReplaceDaemonSetPodNodeNameNodeAffinity`.
//!
//! A node *should run* the daemon pod when the template's `nodeName` (if any) names it, it
//! matches the template's `nodeSelector` and required node affinity, and the pod — with the
//! default daemon tolerations added — tolerates every `NoSchedule`/`NoExecute` taint in the
//! node's `spec.taints`. A pod already there *may continue running* when only `NoSchedule`
//! taints are untolerated (a node turning unschedulable does not evict its daemons).
//!
//! Node selector semantics (apimachinery's): terms are ORed, the requirements inside a term
//! ANDed; `In` needs the label with one of the values, `NotIn` holds when the label is
//! absent, `Gt`/`Lt` compare integers; `matchFields` supports `metadata.name` with
//! `In`/`NotIn` and one value. A malformed or empty term matches no node.
//!
//! This duplicates a small part of `flotilla-scheduler`'s filters, which depend on this
//! crate and so cannot be called from it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint,
    Toleration,
};

const NO_SCHEDULE: &str = "NoSchedule";
const NO_EXECUTE: &str = "NoExecute";
/// The field a daemon pod's node affinity pins it by.
pub const NODE_NAME_FIELD: &str = "metadata.name";

/// Whether a node should run the daemon pod, and whether a pod already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub should_run: bool,
    pub may_continue: bool,
}

/// The tolerations every daemon pod gets (upstream's list): it survives node problems and
/// lands on nodes under pressure or cordoned.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", NO_EXECUTE),
        ("node.kubernetes.io/unreachable", NO_EXECUTE),
        ("node.kubernetes.io/disk-pressure", NO_SCHEDULE),
        ("node.kubernetes.io/memory-pressure", NO_SCHEDULE),
        ("node.kubernetes.io/pid-pressure", NO_SCHEDULE),
        ("node.kubernetes.io/unschedulable", NO_SCHEDULE),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", NO_SCHEDULE));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let t = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Default::default()
        };
        if !tolerations.contains(&t) {
            tolerations.push(t);
        }
    }
}

/// Replace the required node affinity with one term selecting exactly `node`, so the
/// scheduler places the pod there (the DaemonSet already checked the node fits).
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: NODE_NAME_FIELD.into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution =
        Some(NodeSelector { node_selector_terms: vec![term] });
}

/// The node a daemon pod is for: its `spec.nodeName` once bound, else the single node its
/// required affinity pins it to.
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(node);
    }
    let required =
        spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()?;
    required.node_selector_terms.iter().find_map(|term| {
        let fields = term.match_fields.as_deref()?;
        let r = fields.iter().find(|r| r.key == NODE_NAME_FIELD && r.operator == "In")?;
        match r.values.as_deref() {
            Some([one]) => Some(one.as_str()),
            _ => None,
        }
    })
}

/// Whether `node` fits a daemon pod with `spec` (the template's, daemon tolerations added).
pub fn fit(spec: &PodSpec, node: &Node) -> Fit {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let no = Fit { should_run: false, may_continue: false };
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty() && n != name) {
        return no;
    }
    let selector = spec.node_selector.as_ref();
    if !selector.is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v))) {
        return no;
    }
    let affinity = spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
    let required = affinity.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref());
    if required.is_some_and(|r| !r.node_selector_terms.iter().any(|t| term_matches(t, &labels, name))) {
        return no;
    }
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[]);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let untolerated = |effects: &[&str]| {
        taints.iter().any(|t| effects.contains(&t.effect.as_str()) && !tolerations.iter().any(|tol| tolerates(tol, t)))
    };
    Fit { should_run: !untolerated(&[NO_SCHEDULE, NO_EXECUTE]), may_continue: !untolerated(&[NO_EXECUTE]) }
}

/// Upstream's `Toleration.ToleratesTaint`.
fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    if t.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, node: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let field_ok = |r: &NodeSelectorRequirement| {
        r.key == NODE_NAME_FIELD
            && r.values.as_ref().is_some_and(|v| v.len() == 1)
            && matches!(r.operator.as_str(), "In" | "NotIn")
            && requirement_matches(r, Some(node)) == Some(true)
    };
    exprs.iter().all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)) == Some(true))
        && fields.iter().all(field_ok)
}

/// One requirement against the value it selects on; None when the requirement is malformed.
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> Option<bool> {
    let values = r.values.as_deref().unwrap_or(&[]);
    let bound = || match values {
        [one] => one.parse::<i64>().ok(),
        _ => None,
    };
    let number = value.and_then(|v| v.parse::<i64>().ok());
    match r.operator.as_str() {
        "In" if !values.is_empty() => Some(value.is_some_and(|v| values.iter().any(|x| x == v))),
        "NotIn" if !values.is_empty() => Some(value.is_none_or(|v| !values.iter().any(|x| x == v))),
        "Exists" if values.is_empty() => Some(value.is_some()),
        "DoesNotExist" if values.is_empty() => Some(value.is_none()),
        "Gt" => bound().map(|b| number.is_some_and(|n| n > b)),
        "Lt" => bound().map(|b| number.is_some_and(|n| n < b)),
        _ => None,
    }
}

#[cfg(test)]
#[path = "eligibility_tests.rs"]
mod tests;
