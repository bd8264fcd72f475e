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
//! Node selectors and toleration matching are the scheduler's, shared through
//! `flotilla_apiserver::selector::{node, toleration}`, so the DaemonSet never decides a node
//! fits that the scheduler then rejects (or the other way round).

use flotilla_apiserver::selector::node::{RequiredNodeAffinity, NODE_NAME_FIELD};
use flotilla_apiserver::selector::toleration::{
    find_untolerated, forbids_scheduling, NO_EXECUTE, NO_SCHEDULE, TAINT_NODE_DISK_PRESSURE,
    TAINT_NODE_MEMORY_PRESSURE, TAINT_NODE_NETWORK_UNAVAILABLE, TAINT_NODE_NOT_READY, TAINT_NODE_PID_PRESSURE,
    TAINT_NODE_UNREACHABLE, TAINT_NODE_UNSCHEDULABLE,
};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Toleration,
};

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
        (TAINT_NODE_NOT_READY, NO_EXECUTE),
        (TAINT_NODE_UNREACHABLE, NO_EXECUTE),
        (TAINT_NODE_DISK_PRESSURE, NO_SCHEDULE),
        (TAINT_NODE_MEMORY_PRESSURE, NO_SCHEDULE),
        (TAINT_NODE_PID_PRESSURE, NO_SCHEDULE),
        (TAINT_NODE_UNSCHEDULABLE, NO_SCHEDULE),
    ];
    if spec.host_network == Some(true) {
        wanted.push((TAINT_NODE_NETWORK_UNAVAILABLE, NO_SCHEDULE));
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
    if !RequiredNodeAffinity::new(spec).matches(&labels, name) {
        return no;
    }
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[]);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    Fit {
        should_run: find_untolerated(taints, tolerations, forbids_scheduling).is_none(),
        may_continue: find_untolerated(taints, tolerations, |t| t.effect == NO_EXECUTE).is_none(),
    }
}

#[cfg(test)]
#[path = "eligibility_tests.rs"]
mod tests;
