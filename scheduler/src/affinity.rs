//! Required inter-pod affinity and anti-affinity (upstream's InterPodAffinity filter).
//!
//! A term names pods (label selector, namespaces) and a topology key; a node's domain is
//! the value of that key in its labels (for `kubernetes.io/hostname`, the node itself).
//! Before filtering, [`InterPodState::new`] walks the placed pods once and records, per
//! topology key, the domains that hold:
//! - pods matching *all* of the incoming pod's affinity terms (the node must be in such a
//!   domain for every term; if no pod anywhere matches and the pod matches its own terms,
//!   it may start the group anywhere the keys exist, so a self-affine deployment can begin);
//! - pods matching any of its anti-affinity terms (the node must not be in such a domain);
//! - existing pods whose own anti-affinity terms match the incoming pod — the symmetric
//!   check, so a pod cannot land next to one that refuses it.
//!
//! The anti-affinity domains are then resolved to their nodes through the snapshot's label
//! index, so filtering a node is one lookup (plus a few label lookups for pod affinity).
//! Walking every placed pod costs O(pods) only for pods that carry affinity terms; the
//! symmetric check walks just the pods with anti-affinity, which the snapshot indexes.
//!
//! A term's namespaces are its `namespaces` plus those matched by `namespaceSelector`; with
//! neither, the namespace of the pod that owns the term. Namespace labels come from the
//! snapshot; a namespace it does not know has only `kubernetes.io/metadata.name`, which the
//! API server puts on every namespace.

use std::collections::{BTreeMap, HashMap, HashSet};

use flotilla_apiserver::selector::node::Labels;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};

use crate::error::Reason;
use crate::selector::LabelSelectorMatcher;
use crate::snapshot::Snapshot;

/// The label the API server sets on every namespace to its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A namespace's labels as the selector sees them.
pub struct NamespaceLabels<'a> {
    pub name: &'a str,
    pub labels: Option<&'a BTreeMap<String, String>>,
}

impl Labels for NamespaceLabels<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        match self.labels.and_then(|l| l.get(key)) {
            Some(v) => Some(v),
            None if key == NAMESPACE_NAME_LABEL => Some(self.name),
            None => None,
        }
    }
}

/// A compiled pod affinity term.
#[derive(Debug, Clone)]
pub struct PodTerm {
    namespaces: Vec<String>,
    namespace_selector: Option<LabelSelectorMatcher>,
    selector: LabelSelectorMatcher,
    pub topology_key: String,
}

impl PodTerm {
    /// Compiles `term` of a pod in `owner_namespace`.
    pub fn new(owner_namespace: &str, term: &PodAffinityTerm) -> Self {
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.push(owner_namespace.to_string());
        }
        PodTerm {
            namespaces,
            namespace_selector: term.namespace_selector.as_ref().map(|s| LabelSelectorMatcher::new(Some(s))),
            selector: LabelSelectorMatcher::new(term.label_selector.as_ref()),
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether a pod in `namespace` with `labels` is one this term names.
    pub fn matches(&self, namespace: &str, labels: &BTreeMap<String, String>, snap: &Snapshot) -> bool {
        let in_namespace = self.namespaces.iter().any(|n| n == namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| s.matches(&snap.namespace_labels(namespace)));
        in_namespace && self.selector.matches(labels)
    }
}

/// The required affinity and anti-affinity terms of a pod.
pub fn required_terms(pod: &Pod) -> (Vec<PodTerm>, Vec<PodTerm>) {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let compile = |terms: Option<&Vec<PodAffinityTerm>>| {
        terms.into_iter().flatten().map(|t| PodTerm::new(namespace, t)).collect::<Vec<_>>()
    };
    let pod_affinity = affinity.and_then(|a| a.pod_affinity.as_ref());
    let anti = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
    (
        compile(pod_affinity.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())),
        compile(anti.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())),
    )
}

/// Topology domains: topology key → the values that are marked.
type Domains = HashMap<String, HashSet<String>>;

fn mark(domains: &mut Domains, key: &str, node_labels: &BTreeMap<String, String>) {
    if let Some(value) = node_labels.get(key) {
        domains.entry(key.to_string()).or_default().insert(value.clone());
    }
}

fn marked(domains: &Domains, key: &str, node_labels: &BTreeMap<String, String>) -> Option<bool> {
    let value = node_labels.get(key)?;
    Some(domains.get(key).is_some_and(|values| values.contains(value)))
}

/// Why a node is blocked by anti-affinity, per slot (0: it is not).
const NOT_BLOCKED: u8 = 0;
const BLOCKED_BY_OWN_TERMS: u8 = 1;
const BLOCKED_BY_EXISTING_PODS: u8 = 2;

/// What the inter-pod filter needs, computed once per scheduling attempt.
#[derive(Debug, Default)]
pub struct InterPodState {
    affinity_terms: Vec<PodTerm>,
    affinity_domains: Domains,
    matches_own_affinity: bool,
    /// Per node slot: which anti-affinity rule rules it out. Domains are turned into their
    /// nodes through the snapshot's label index, so the per-node check is one load.
    blocked: Vec<u8>,
}

impl InterPodState {
    pub fn new(pod: &Pod, snap: &Snapshot) -> Self {
        let (affinity_terms, anti_terms) = required_terms(pod);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let empty = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let mut state = InterPodState { affinity_terms, ..Default::default() };

        let mut existing_anti_domains = Domains::new();
        for existing in snap.pods_with_anti_affinity() {
            let Some(node) = snap.node_of(existing) else { continue };
            for term in existing.anti_affinity.iter().filter(|t| t.matches(namespace, labels, snap)) {
                mark(&mut existing_anti_domains, &term.topology_key, &node.labels);
            }
        }
        let mut anti_domains = Domains::new();
        if !state.affinity_terms.is_empty() || !anti_terms.is_empty() {
            state.matches_own_affinity = state.affinity_terms.iter().all(|t| t.matches(namespace, labels, snap));
            for existing in snap.placed_pods() {
                let Some(node) = snap.node_of(existing) else { continue };
                let matches = |t: &PodTerm| t.matches(&existing.namespace, &existing.labels, snap);
                if !state.affinity_terms.is_empty() && state.affinity_terms.iter().all(matches) {
                    for term in &state.affinity_terms {
                        mark(&mut state.affinity_domains, &term.topology_key, &node.labels);
                    }
                }
                for term in anti_terms.iter().filter(|t| matches(t)) {
                    mark(&mut anti_domains, &term.topology_key, &node.labels);
                }
            }
        }
        // The pod's own terms are checked first upstream, so they name the reason when both hit.
        for (domains, why) in
            [(&existing_anti_domains, BLOCKED_BY_EXISTING_PODS), (&anti_domains, BLOCKED_BY_OWN_TERMS)]
        {
            for (key, values) in domains {
                for slot in values.iter().flat_map(|v| snap.nodes_with_label(key, v)) {
                    if state.blocked.is_empty() {
                        state.blocked = vec![NOT_BLOCKED; snap.slot_count()];
                    }
                    state.blocked[*slot as usize] = why;
                }
            }
        }
        state
    }

    /// True when no node can fail this filter (the common case: skip it).
    pub fn is_trivial(&self) -> bool {
        self.affinity_terms.is_empty() && self.blocked.is_empty()
    }

    /// Upstream's order: the pod's affinity, its anti-affinity, then existing pods'.
    pub fn check(&self, slot: u32, node_labels: &BTreeMap<String, String>) -> Option<Reason<'static>> {
        if !self.affinity_terms.is_empty() {
            let mut all_present = true;
            for term in &self.affinity_terms {
                match marked(&self.affinity_domains, &term.topology_key, node_labels) {
                    None => return Some(Reason::PodAffinity),
                    Some(present) => all_present &= present,
                }
            }
            // The first pod of a self-affine group may start anywhere the keys exist.
            let starts_group = self.affinity_domains.is_empty() && self.matches_own_affinity;
            if !(all_present || starts_group) {
                return Some(Reason::PodAffinity);
            }
        }
        match self.blocked.get(slot as usize).copied().unwrap_or(NOT_BLOCKED) {
            BLOCKED_BY_OWN_TERMS => Some(Reason::PodAntiAffinity),
            BLOCKED_BY_EXISTING_PODS => Some(Reason::ExistingPodsAntiAffinity),
            _ => None,
        }
    }
}
