//! Why a pod could not be placed, worded as upstream's kube-scheduler words it.
//!
//! [`FitError`]'s `Display` is the text of the `FailedScheduling` event, so it follows
//! upstream exactly: `0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient
//! cpu.` Each failing node contributes every reason its first failing filter gave (one node
//! short of both cpu and memory counts under both), and the `"<count> <reason>"` strings are
//! sorted as strings, as upstream's `sortReasonsHistogram` does. Upstream appends a
//! preemption verdict; Flotilla does not preempt, so that tail is absent.

use std::collections::BTreeMap;
use std::fmt;

/// A quantity string that is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}")]
    Invalid(String),
}

/// No node can take the pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    /// The snapshot has no nodes at all.
    #[error("no nodes available to schedule pods")]
    NoNodes,
    /// The pod cannot run anywhere whatever the node (upstream's PreFilter failures), e.g.
    /// `persistentvolumeclaim "data" not found`.
    #[error("0/{num_all_nodes} nodes are available: {message}.")]
    PreFilter { num_all_nodes: usize, message: String },
    /// Every node failed a filter; `reasons` counts the nodes that gave each reason.
    #[error("{}", render_histogram(*.num_all_nodes, reasons))]
    Unschedulable { num_all_nodes: usize, reasons: BTreeMap<String, usize> },
}

fn render_histogram(num_all_nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    let mut entries: Vec<String> = reasons.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
    entries.sort();
    format!("0/{num_all_nodes} nodes are available: {}.", entries.join(", "))
}

/// Why one node was filtered out, borrowing from the snapshot so that filtering thousands
/// of nodes allocates nothing per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Reason<'a> {
    Unschedulable,
    NodeName,
    UntoleratedTaint { key: &'a str, value: &'a str },
    NodeAffinity,
    HostPorts,
    TooManyPods,
    Insufficient(&'a str),
    VolumeNodeAffinityConflict,
    BoundToMissingPv,
    PodAffinity,
    PodAntiAffinity,
    ExistingPodsAntiAffinity,
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::NodeName => f.write_str("node(s) didn't match the requested node name"),
            Reason::UntoleratedTaint { key, value } => write!(f, "node(s) had untolerated taint {{{key}: {value}}}"),
            Reason::NodeAffinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Reason::HostPorts => f.write_str("node(s) didn't have free ports for the requested pod ports"),
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::Insufficient(resource) => write!(f, "Insufficient {resource}"),
            Reason::VolumeNodeAffinityConflict => f.write_str("node(s) had volume node affinity conflict"),
            Reason::BoundToMissingPv => {
                f.write_str("node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)")
            }
            Reason::PodAffinity => f.write_str("node(s) didn't match pod affinity rules"),
            Reason::PodAntiAffinity => f.write_str("node(s) didn't match pod anti-affinity rules"),
            Reason::ExistingPodsAntiAffinity => f.write_str("node(s) didn't satisfy existing pods anti-affinity rules"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unschedulable(n: usize, reasons: &[(&str, usize)]) -> FitError {
        let reasons = reasons.iter().map(|(r, c)| (r.to_string(), *c)).collect();
        FitError::Unschedulable { num_all_nodes: n, reasons }
    }

    #[test]
    fn histogram_is_sorted_by_count_then_text_like_upstream() {
        let err = unschedulable(3, &[("node(s) were unschedulable", 1), ("Insufficient cpu", 2)]);
        assert_eq!(err.to_string(), "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.");
        // Upstream sorts the "<count> <reason>" strings, so "10 ..." sorts before "2 ...".
        let err = unschedulable(12, &[("Insufficient cpu", 2), ("Too many pods", 10)]);
        assert_eq!(err.to_string(), "0/12 nodes are available: 10 Too many pods, 2 Insufficient cpu.");
        let err = unschedulable(2, &[("Insufficient memory", 1), ("Insufficient cpu", 1)]);
        assert_eq!(err.to_string(), "0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.");
    }

    #[test]
    fn other_forms() {
        assert_eq!(FitError::NoNodes.to_string(), "no nodes available to schedule pods");
        let err = FitError::PreFilter { num_all_nodes: 2, message: "persistentvolumeclaim \"data\" not found".into() };
        assert_eq!(err.to_string(), "0/2 nodes are available: persistentvolumeclaim \"data\" not found.");
    }

    #[test]
    fn reason_texts_match_upstream() {
        let taint = Reason::UntoleratedTaint { key: "node.kubernetes.io/not-ready", value: "" };
        assert_eq!(taint.to_string(), "node(s) had untolerated taint {node.kubernetes.io/not-ready: }");
        let taint = Reason::UntoleratedTaint { key: "dedicated", value: "gpu" };
        assert_eq!(taint.to_string(), "node(s) had untolerated taint {dedicated: gpu}");
        assert_eq!(Reason::Insufficient("memory").to_string(), "Insufficient memory");
        assert_eq!(Reason::NodeAffinity.to_string(), "node(s) didn't match Pod's node affinity/selector");
        assert_eq!(Reason::PodAntiAffinity.to_string(), "node(s) didn't match pod anti-affinity rules");
    }
}
