//! Node selectors on typed objects, compiled once and matched per node: a pod's
//! `nodeSelector` and required node affinity, preferred affinity terms, and a
//! PersistentVolume's `nodeAffinity`. Shared by the scheduler's filters and the DaemonSet
//! controller, which must agree on which nodes a pod may run on.
//!
//! Semantics follow apimachinery's `labels.Requirement` and upstream's `nodeaffinity`
//! helpers: `In` needs the key with one of the values, `NotIn` is true when the key is
//! absent, `Gt`/`Lt` compare integers and fail on an absent key or a non-integer value. A
//! malformed requirement (values where none belong, none where some must, an unknown
//! operator) makes its whole term match nothing, as upstream drops node selector terms that
//! fail to parse.
//!
//! Invariants: terms are ORed; inside a term the `matchExpressions` (on labels) and
//! `matchFields` (only `metadata.name`, with `In`/`NotIn` and exactly one value) are ANDed; a
//! term with neither matches nothing, and so does a selector without terms. A pod's
//! [`RequiredNodeAffinity`] is its `nodeSelector` AND its required terms.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

/// The one field `matchFields` may select on: the node's name.
pub const NODE_NAME_FIELD: &str = "metadata.name";

/// Something with labels to match against.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

/// One compiled requirement of a label selector or a node selector term.
#[derive(Debug, Clone)]
pub struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    /// A label selector requirement (no `Gt`/`Lt`); `None` when malformed.
    pub fn label(key: &str, operator: &str, values: &[String]) -> Option<Self> {
        Self::new(key, operator, values, false)
    }

    /// A node selector requirement (`Gt`/`Lt` allowed); `None` when malformed.
    pub fn node(key: &str, operator: &str, values: &[String]) -> Option<Self> {
        Self::new(key, operator, values, true)
    }

    /// `key` has exactly `value` (a `matchLabels` entry).
    pub fn equals(key: &str, value: &str) -> Self {
        Requirement { key: key.to_string(), op: Op::In, values: vec![value.to_string()] }
    }

    fn new(key: &str, operator: &str, values: &[String], numeric: bool) -> Option<Self> {
        let one_int = || if values.len() == 1 { values[0].parse::<i64>().ok() } else { None };
        let op = match operator {
            "In" if !values.is_empty() => Op::In,
            "NotIn" if !values.is_empty() => Op::NotIn,
            "Exists" if values.is_empty() => Op::Exists,
            "DoesNotExist" if values.is_empty() => Op::DoesNotExist,
            "Gt" if numeric => Op::Gt(one_int()?),
            "Lt" if numeric => Op::Lt(one_int()?),
            _ => return None,
        };
        Some(Requirement { key: key.to_string(), op, values: values.to_vec() })
    }

    /// Whether the value the requirement's key has (None: absent) satisfies it.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let number = || value.and_then(|v| v.parse::<i64>().ok());
        match self.op {
            Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Gt(bound) => number().is_some_and(|n| n > bound),
            Op::Lt(bound) => number().is_some_and(|n| n < bound),
        }
    }

    /// Whether `labels` satisfy it.
    pub fn matches_labels(&self, labels: &impl Labels) -> bool {
        self.matches(labels.label(&self.key))
    }
}

/// One compiled node selector term.
#[derive(Debug, Clone)]
pub struct NodeTerm {
    expressions: Vec<Requirement>,
    /// Requirements on `metadata.name`.
    names: Vec<Requirement>,
}

impl NodeTerm {
    /// `None` when the term is malformed or empty (it can match no node).
    pub fn new(term: &NodeSelectorTerm) -> Option<Self> {
        let compile = |reqs: &Option<Vec<NodeSelectorRequirement>>, fields: bool| {
            let reqs = reqs.as_deref().unwrap_or(&[]);
            reqs.iter()
                .map(|r| {
                    let values = r.values.as_deref().unwrap_or(&[]);
                    if fields && (r.key != NODE_NAME_FIELD || values.len() != 1) {
                        return None;
                    }
                    if fields && r.operator != "In" && r.operator != "NotIn" {
                        return None;
                    }
                    Requirement::new(&r.key, &r.operator, values, !fields)
                })
                .collect::<Option<Vec<_>>>()
        };
        let expressions = compile(&term.match_expressions, false)?;
        let names = compile(&term.match_fields, true)?;
        if expressions.is_empty() && names.is_empty() {
            return None;
        }
        Some(NodeTerm { expressions, names })
    }

    pub fn matches(&self, labels: &impl Labels, node_name: &str) -> bool {
        self.expressions.iter().all(|r| r.matches_labels(labels))
            && self.names.iter().all(|r| r.matches(Some(node_name)))
    }
}

/// A compiled `NodeSelector`: its terms ORed.
#[derive(Debug, Clone)]
pub struct NodeSelectorMatcher(Vec<NodeTerm>);

impl NodeSelectorMatcher {
    pub fn new(selector: &NodeSelector) -> Self {
        NodeSelectorMatcher(selector.node_selector_terms.iter().filter_map(NodeTerm::new).collect())
    }

    pub fn matches(&self, labels: &impl Labels, node_name: &str) -> bool {
        self.0.iter().any(|t| t.matches(labels, node_name))
    }
}

/// What a pod requires of its node (upstream's `GetRequiredNodeAffinity`): every label of
/// its `nodeSelector`, and a match of its required node affinity when it has one.
#[derive(Debug, Clone)]
pub struct RequiredNodeAffinity<'a> {
    node_selector: Option<&'a BTreeMap<String, String>>,
    required: Option<NodeSelectorMatcher>,
}

impl<'a> RequiredNodeAffinity<'a> {
    pub fn new(spec: &'a PodSpec) -> Self {
        let node_affinity = spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
        RequiredNodeAffinity {
            node_selector: spec.node_selector.as_ref().filter(|s| !s.is_empty()),
            required: node_affinity
                .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
                .map(NodeSelectorMatcher::new),
        }
    }

    pub fn matches(&self, labels: &impl Labels, node_name: &str) -> bool {
        self.node_selector.is_none_or(|s| s.iter().all(|(k, v)| labels.label(k) == Some(v.as_str())))
            && self.required.as_ref().is_none_or(|r| r.matches(labels, node_name))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity};

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        let values = (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect());
        NodeSelectorRequirement { key: key.into(), operator: op.into(), values }
    }

    fn term(exprs: Vec<NodeSelectorRequirement>, fields: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm { match_expressions: Some(exprs), match_fields: Some(fields) }
    }

    fn matches(t: NodeSelectorTerm, l: &BTreeMap<String, String>, name: &str) -> bool {
        NodeSelectorMatcher::new(&NodeSelector { node_selector_terms: vec![t] }).matches(l, name)
    }

    #[test]
    fn node_selector_operators() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        assert!(matches(term(vec![expr("zone", "In", &["a", "b"])], vec![]), &l, "n"));
        assert!(!matches(term(vec![expr("zone", "In", &["b"])], vec![]), &l, "n"));
        assert!(matches(term(vec![expr("zone", "NotIn", &["b"])], vec![]), &l, "n"));
        assert!(matches(term(vec![expr("rack", "NotIn", &["b"])], vec![]), &l, "n"), "NotIn on a missing key");
        assert!(matches(term(vec![expr("zone", "Exists", &[])], vec![]), &l, "n"));
        assert!(matches(term(vec![expr("rack", "DoesNotExist", &[])], vec![]), &l, "n"));
        assert!(matches(term(vec![expr("cores", "Gt", &["4"])], vec![]), &l, "n"));
        assert!(!matches(term(vec![expr("cores", "Lt", &["8"])], vec![]), &l, "n"));
        assert!(!matches(term(vec![expr("zone", "Gt", &["1"])], vec![]), &l, "n"), "non-integer label");
        assert!(!matches(term(vec![expr("rack", "Lt", &["9"])], vec![]), &l, "n"), "missing label");
        // Expressions within a term are ANDed.
        assert!(!matches(term(vec![expr("zone", "In", &["a"]), expr("cores", "Gt", &["9"])], vec![]), &l, "n"));
    }

    #[test]
    fn match_fields_on_the_node_name() {
        let l = labels(&[]);
        assert!(matches(term(vec![], vec![expr("metadata.name", "In", &["n1"])]), &l, "n1"));
        assert!(!matches(term(vec![], vec![expr("metadata.name", "In", &["n1"])]), &l, "n2"));
        assert!(matches(term(vec![], vec![expr("metadata.name", "NotIn", &["n1"])]), &l, "n2"));
        // Only metadata.name with one value and In/NotIn is valid; anything else never matches.
        assert!(!matches(term(vec![], vec![expr("metadata.uid", "In", &["n1"])]), &l, "n1"));
        assert!(!matches(term(vec![], vec![expr("metadata.name", "In", &["n1", "n2"])]), &l, "n1"));
        assert!(!matches(term(vec![], vec![expr("metadata.name", "Exists", &[])]), &l, "n1"));
    }

    #[test]
    fn terms_are_ored_and_bad_or_empty_terms_match_nothing() {
        let l = labels(&[("zone", "a")]);
        let selector = NodeSelector {
            node_selector_terms: vec![
                term(vec![expr("zone", "In", &["b"])], vec![]),
                term(vec![expr("zone", "Exists", &[])], vec![]),
            ],
        };
        assert!(NodeSelectorMatcher::new(&selector).matches(&l, "n"));
        assert!(!matches(term(vec![], vec![]), &l, "n"), "empty term");
        assert!(!matches(term(vec![expr("zone", "In", &[])], vec![]), &l, "n"), "In without values");
        assert!(!matches(term(vec![expr("zone", "Exists", &["a"])], vec![]), &l, "n"), "Exists with values");
        assert!(!matches(term(vec![expr("zone", "Like", &["a"])], vec![]), &l, "n"), "unknown operator");
        assert!(!NodeSelectorMatcher::new(&NodeSelector { node_selector_terms: vec![] }).matches(&l, "n"));
    }

    #[test]
    fn a_pods_required_affinity_is_its_node_selector_and_its_required_terms() {
        let l = labels(&[("zone", "a"), ("disk", "ssd")]);
        let mut spec = PodSpec::default();
        assert!(RequiredNodeAffinity::new(&spec).matches(&l, "n"), "no requirement: every node");
        spec.node_selector = Some(labels(&[("disk", "ssd")]));
        assert!(RequiredNodeAffinity::new(&spec).matches(&l, "n"));
        assert!(!RequiredNodeAffinity::new(&spec).matches(&labels(&[("zone", "a")]), "n"));
        let required = |terms| {
            let node_affinity = NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector { node_selector_terms: terms }),
                ..Default::default()
            };
            Some(Affinity { node_affinity: Some(node_affinity), ..Default::default() })
        };
        spec.affinity = required(vec![term(vec![], vec![expr(NODE_NAME_FIELD, "In", &["n1"])])]);
        assert!(RequiredNodeAffinity::new(&spec).matches(&l, "n1"));
        assert!(!RequiredNodeAffinity::new(&spec).matches(&l, "n2"), "the terms are ANDed with the nodeSelector");
        spec.node_selector = Some(labels(&[("disk", "hdd")]));
        assert!(!RequiredNodeAffinity::new(&spec).matches(&l, "n1"));
        spec.node_selector = None;
        spec.affinity = required(vec![]);
        assert!(!RequiredNodeAffinity::new(&spec).matches(&l, "n1"), "required affinity without terms");
    }
}
