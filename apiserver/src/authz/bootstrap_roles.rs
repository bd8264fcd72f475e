//! The roles and bindings every cluster starts with: upstream's user-facing ClusterRoles
//! (`cluster-admin`, `admin`, `edit`, `view`) over the resources this server serves, and the
//! system roles that let every client discover the API, learn who it is and probe health.
//!
//! Upstream builds `admin`, `edit` and `view` by aggregation; here their rules are written
//! out (aggregation of custom roles is not implemented). They are created when missing and
//! never overwritten, so an operator's edits stay.

use serde_json::{json, Value};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// Resources `view` reads, per API group (no Secrets: reading them is editing power).
const VIEWABLE: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "pods",
            "pods/log",
            "pods/status",
            "services",
            "services/status",
            "serviceaccounts",
            "events",
            "namespaces",
            "namespaces/status",
        ],
    ),
    (
        "apps",
        &[
            "controllerrevisions",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
        ],
    ),
    ("batch", &["jobs", "jobs/status"]),
    ("policy", &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
];

/// Resources `edit` may change, per API group.
const EDITABLE: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "pods",
            "pods/attach",
            "pods/exec",
            "pods/portforward",
            "pods/eviction",
            "secrets",
            "services",
            "serviceaccounts",
        ],
    ),
    (
        "apps",
        &[
            "daemonsets",
            "deployments",
            "deployments/scale",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
        ],
    ),
    ("batch", &["jobs"]),
    ("policy", &["poddisruptionbudgets"]),
];

fn rule(verbs: &[&str], group: &str, resources: &[&str]) -> Value {
    json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                     "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "rules": rules,
    })
}

fn binding_to_groups(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> =
        groups.iter().map(|g| json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g})).collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                     "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

fn view_rules() -> Vec<Value> {
    VIEWABLE.iter().map(|(group, resources)| rule(READ, group, resources)).collect()
}

fn edit_rules() -> Vec<Value> {
    let mut rules = view_rules();
    rules.push(rule(READ, "", &["secrets"]));
    rules.extend(EDITABLE.iter().map(|(group, resources)| rule(WRITE, group, resources)));
    rules.push(rule(&["get"], "", &["pods/attach", "pods/exec", "pods/portforward"]));
    rules
}

fn admin_rules() -> Vec<Value> {
    let mut rules = edit_rules();
    rules.push(rule(ALL_VERBS, "rbac.authorization.k8s.io", &["roles", "rolebindings"]));
    rules.push(rule(&["create"], "authorization.k8s.io", &["localsubjectaccessreviews"]));
    rules
}

/// The ClusterRoles, then the ClusterRoleBindings.
pub fn cluster_roles() -> Vec<Value> {
    let discovery = ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version", "/version/"];
    vec![
        cluster_role(
            "cluster-admin",
            vec![
                json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
                json!({"nonResourceURLs": ["*"], "verbs": ["*"]}),
            ],
        ),
        cluster_role("admin", admin_rules()),
        cluster_role("edit", edit_rules()),
        cluster_role("view", view_rules()),
        cluster_role("system:discovery", vec![json!({"nonResourceURLs": discovery, "verbs": ["get"]})]),
        cluster_role(
            "system:basic-user",
            vec![json!({"apiGroups": ["authentication.k8s.io", "authorization.k8s.io"],
                        "resources": ["selfsubjectreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                        "verbs": ["create"]})],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![json!({"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                        "verbs": ["get"]})],
        ),
        // Joining with a bootstrap token, and renewing (the handler narrows who gets what).
        cluster_role(
            NODE_CERTIFICATES,
            vec![json!({"nonResourceURLs": [crate::http::node_certificate::PATH], "verbs": ["post"]})],
        ),
    ]
}

/// The role that may ask for node certificates.
pub const NODE_CERTIFICATES: &str = "system:flotilla:node-certificates";

pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding_to_groups("cluster-admin", "cluster-admin", &[super::MASTERS]),
        binding_to_groups("system:discovery", "system:discovery", &["system:authenticated"]),
        binding_to_groups("system:basic-user", "system:basic-user", &["system:authenticated"]),
        binding_to_groups(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
        binding_to_groups(NODE_CERTIFICATES, NODE_CERTIFICATES, &["system:bootstrappers", "system:nodes"]),
    ]
}
