//! NodeRestriction's rule on the labels a node writes on its own Node: it may not add,
//! change or remove a label under `node-restriction.kubernetes.io/` (a prefix kept for
//! admins, e.g. to steer sensitive workloads), nor a `kubernetes.io` or `k8s.io` label
//! outside the set the kubelet itself sets (`kubernetes.io/hostname`, os, arch, zone,
//! region, instance type, and anything under `kubelet.kubernetes.io/` or
//! `node.kubernetes.io/`). So a node cannot make itself `node-role.kubernetes.io/master` to
//! attract the workloads meant for control-plane machines. Other labels are the node's to
//! set.
//!
//! And a node may not change its taints once its Node exists: they are the node lifecycle
//! controller's and the admins' (the agent, like the kubelet, sets them at registration).

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The labels the kubelet sets itself (upstream's `kubeletapis.KubeletLabels`).
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];
/// Label namespaces wholly the kubelet's.
const KUBELET_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];
/// The namespace no node may write.
const RESTRICTED_NAMESPACE: &str = "node-restriction.kubernetes.io";

/// Whether `namespace` is `domain` or a subdomain of it.
fn within(namespace: &str, domain: &str) -> bool {
    namespace == domain || namespace.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.'))
}

/// Whether a node may not write label `key` on its own Node.
fn forbidden(key: &str) -> bool {
    let Some((namespace, _)) = key.split_once('/') else { return false };
    if within(namespace, RESTRICTED_NAMESPACE) {
        return true;
    }
    let kubernetes = within(namespace, "kubernetes.io") || within(namespace, "k8s.io");
    let kubelets = KUBELET_LABELS.contains(&key) || KUBELET_NAMESPACES.iter().any(|ns| within(namespace, ns));
    kubernetes && !kubelets
}

fn labels(node: &Value) -> Map<String, Value> {
    node["metadata"]["labels"].as_object().cloned().unwrap_or_default()
}

/// `Ok` unless node `node`, writing its Node as `new` over `old` (none: a create), adds,
/// changes or removes a label it may not write, or changes its taints; 403 with upstream's
/// message otherwise.
pub fn check(node: &str, old: Option<&Value>, new: &Value) -> Result<(), ApiError> {
    if let Some(old) = old {
        let taints = |n: &Value| n["spec"]["taints"].as_array().cloned().unwrap_or_default();
        if taints(old) != taints(new) {
            let why = format!("node {node:?} is not allowed to modify taints");
            return Err(ApiError::Forbidden(super::restriction_message("", "nodes", node, &why)));
        }
    }
    let (before, after) = (old.map(labels).unwrap_or_default(), labels(new));
    let mut touched: Vec<&String> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    touched.extend(before.keys().filter(|k| !after.contains_key(*k)));
    let mut refused: Vec<&str> = touched.into_iter().map(String::as_str).filter(|k| forbidden(k)).collect();
    if refused.is_empty() {
        return Ok(());
    }
    refused.sort_unstable();
    let what = match old {
        None => format!("node {node:?} is not allowed to set the following labels: {}", refused.join(", ")),
        Some(_) => format!("is not allowed to modify labels: {}", refused.join(", ")),
    };
    Err(ApiError::Forbidden(super::restriction_message("", "nodes", node, &what)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(labels: Value) -> Value {
        json!({"metadata": {"name": "n1", "labels": labels}})
    }

    #[test]
    fn kubelet_labels_and_unrelated_ones_are_the_nodes() {
        let new = node(json!({
            "kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux", "node.kubernetes.io/exclude": "x",
            "kubelet.kubernetes.io/any": "y", "example.com/rack": "r1", "plain": "z",
        }));
        assert!(check("n1", None, &new).is_ok());
        assert!(check("n1", Some(&node(json!({}))), &new).is_ok());
    }

    #[test]
    fn restricted_and_other_kubernetes_labels_are_refused() {
        let err = check("n1", None, &node(json!({"node-role.kubernetes.io/master": ""}))).unwrap_err();
        assert!(err.to_string().contains("not allowed to set the following labels: node-role.kubernetes.io/master"));
        let old = node(json!({"node-restriction.kubernetes.io/pci": "true", "keep": "1"}));
        let removed = node(json!({"keep": "1"}));
        let err = check("n1", Some(&old), &removed).unwrap_err().to_string();
        assert!(err.contains("not allowed to modify labels: node-restriction.kubernetes.io/pci"), "{err}");
        let changed = node(json!({"node-restriction.kubernetes.io/pci": "false", "keep": "1"}));
        assert!(check("n1", Some(&old), &changed).is_err());
        assert!(check("n1", None, &node(json!({"sub.k8s.io/x": "1"}))).is_err());
        assert!(check("n1", None, &node(json!({"a.node-restriction.kubernetes.io/x": "1"}))).is_err());
    }

    #[test]
    fn labels_an_admin_set_may_stay_untouched() {
        let old = node(json!({"node-role.kubernetes.io/master": "", "node-restriction.kubernetes.io/pci": "true"}));
        let mut new = old.clone();
        new["metadata"]["labels"]["example.com/rack"] = json!("r2");
        assert!(check("n1", Some(&old), &new).is_ok(), "a node's update that keeps them as they are");
    }

    #[test]
    fn taints_are_set_at_registration_and_kept_after() {
        let taint = json!([{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]);
        let mut registered = node(json!({}));
        registered["spec"]["taints"] = taint.clone();
        assert!(check("n1", None, &registered).is_ok(), "a new Node may carry taints");
        let mut relabelled = registered.clone();
        relabelled["metadata"]["labels"]["example.com/rack"] = json!("r1");
        assert!(check("n1", Some(&registered), &relabelled).is_ok(), "taints left as they are");
        let untainted = node(json!({}));
        let err = check("n1", Some(&registered), &untainted).unwrap_err().to_string();
        assert!(err.contains("is not allowed to modify taints"), "{err}");
        assert!(check("n1", Some(&untainted), &registered).is_err(), "nor add one");
    }

    #[test]
    fn namespaces_match_whole_domains() {
        assert!(!forbidden("notkubernetes.io/x"));
        assert!(forbidden("kubernetes.io/x"));
        assert!(forbidden("x.kubernetes.io/y"));
        assert!(!forbidden("example.com/kubernetes.io"));
    }
}
