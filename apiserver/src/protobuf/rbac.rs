//! Schema tables for `rbac.authorization.k8s.io/v1`: Role, ClusterRole, RoleBinding and
//! ClusterRoleBinding, which `kubectl create role|clusterrole|rolebinding|clusterrolebinding`
//! send as protobuf.
//!
//! Field numbers and names are those of upstream `generated.proto` (k8s.io/api v0.32.4);
//! `one`/`ptr` follow whether the Go field is a pointer (see `schema.rs`): only a
//! ClusterRole's `aggregationRule` is one, so `roleRef` and every subject string are
//! non-pointers whose empty values gogo writes and the walk drops.

use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::schema::Kind::*;
use super::schema::{msg, one, ptr, rep, Message};

/// `Role` (rbac/v1).
pub(super) static ROLE: Message =
    msg("Role", &[one(1, "metadata", Msg(&OBJECT_META)), rep(2, "rules", Msg(&POLICY_RULE))]);

/// `ClusterRole` (rbac/v1).
pub(super) static CLUSTER_ROLE: Message = msg(
    "ClusterRole",
    &[
        one(1, "metadata", Msg(&OBJECT_META)),
        rep(2, "rules", Msg(&POLICY_RULE)),
        ptr(3, "aggregationRule", Msg(&AGGREGATION_RULE)),
    ],
);

/// `PolicyRule` (rbac/v1).
pub(super) static POLICY_RULE: Message = msg(
    "PolicyRule",
    &[
        rep(1, "verbs", Str),
        rep(2, "apiGroups", Str),
        rep(3, "resources", Str),
        rep(4, "resourceNames", Str),
        rep(5, "nonResourceURLs", Str),
    ],
);

/// `AggregationRule` (rbac/v1).
pub(super) static AGGREGATION_RULE: Message =
    msg("AggregationRule", &[rep(1, "clusterRoleSelectors", Msg(&LABEL_SELECTOR))]);

/// `RoleBinding` (rbac/v1).
pub(super) static ROLE_BINDING: Message = msg(
    "RoleBinding",
    &[one(1, "metadata", Msg(&OBJECT_META)), rep(2, "subjects", Msg(&SUBJECT)), one(3, "roleRef", Msg(&ROLE_REF))],
);

/// `ClusterRoleBinding` (rbac/v1).
pub(super) static CLUSTER_ROLE_BINDING: Message = msg(
    "ClusterRoleBinding",
    &[one(1, "metadata", Msg(&OBJECT_META)), rep(2, "subjects", Msg(&SUBJECT)), one(3, "roleRef", Msg(&ROLE_REF))],
);

/// `Subject` (rbac/v1).
pub(super) static SUBJECT: Message =
    msg("Subject", &[one(1, "kind", Str), one(2, "apiGroup", Str), one(3, "name", Str), one(4, "namespace", Str)]);

/// `RoleRef` (rbac/v1).
pub(super) static ROLE_REF: Message =
    msg("RoleRef", &[one(1, "apiGroup", Str), one(2, "kind", Str), one(3, "name", Str)]);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::encode::{body, meta, object, Pb};
    use super::super::{decode, ProtobufError};

    const V1: &str = "rbac.authorization.k8s.io/v1";

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str], urls: &[&str]) -> Pb {
        let lists = [(1, verbs), (2, groups), (3, resources), (4, names), (5, urls)];
        lists.iter().fold(Pb::default(), |pb, (n, values)| values.iter().fold(pb, |pb, v| pb.str(*n, v)))
    }

    fn subject(kind: &str, api_group: &str, name: &str, namespace: &str) -> Pb {
        Pb::default().str(1, kind).str(2, api_group).str(3, name).str(4, namespace)
    }

    fn role_ref(kind: &str, name: &str) -> Pb {
        Pb::default().str(1, "rbac.authorization.k8s.io").str(2, kind).str(3, name)
    }

    #[test]
    fn role_with_two_rules() {
        // kubectl create role pod-reader --verb=get,list --resource=pods,deployments.apps
        //   --resource-name=web (as two rules, one per API group); "" is the core group.
        let raw = Pb::default()
            .msg(1, meta("pod-reader").str(3, "default"))
            .msg(2, rule(&["get", "list"], &[""], &["pods"], &["web"], &[]))
            .msg(2, rule(&["get", "list"], &["apps"], &["deployments", "deployments/scale"], &[], &[]));
        let want = json!({
            "apiVersion": V1, "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": "default"},
            "rules": [
                {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]},
                {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"]},
            ],
        });
        assert_eq!(decode(&body(V1, "Role", raw)).unwrap(), want);
    }

    #[test]
    fn cluster_role_with_aggregation_rule() {
        // kubectl create clusterrole monitoring --aggregation-rule=rbac.example.com/aggregate-to-monitoring=true
        // plus a non-resource rule.
        let selector = Pb::default().entry(1, "rbac.example.com/aggregate-to-monitoring", "true");
        let raw = object("monitoring")
            .msg(2, rule(&["get"], &[], &[], &[], &["/healthz", "/metrics"]))
            .msg(3, Pb::default().msg(1, selector).msg(1, Pb::default()));
        let want = json!({
            "apiVersion": V1, "kind": "ClusterRole",
            "metadata": {"name": "monitoring"},
            "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/metrics"]}],
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}},
                {},
            ]},
        });
        assert_eq!(decode(&body(V1, "ClusterRole", raw)).unwrap(), want);

        // An empty aggregationRule is a pointer that was set: kept, for validation to judge.
        let raw = object("empty").msg(3, Pb::default());
        let got = decode(&body(V1, "ClusterRole", raw)).unwrap();
        assert_eq!(
            got,
            json!({"apiVersion": V1, "kind": "ClusterRole", "metadata": {"name": "empty"}, "aggregationRule": {}})
        );
    }

    #[test]
    fn role_binding_with_user_and_service_account() {
        // kubectl create rolebinding read-pods --role=pod-reader --user=jane --serviceaccount=ci:builder;
        // gogo writes every Subject string, empty ones included.
        let raw = Pb::default()
            .msg(1, meta("read-pods").str(3, "default"))
            .msg(2, subject("User", "rbac.authorization.k8s.io", "jane", ""))
            .msg(2, subject("ServiceAccount", "", "builder", "ci"))
            .msg(3, role_ref("Role", "pod-reader"));
        let want = json!({
            "apiVersion": V1, "kind": "RoleBinding",
            "metadata": {"name": "read-pods", "namespace": "default"},
            "subjects": [
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"},
                {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"},
            ],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        });
        assert_eq!(decode(&body(V1, "RoleBinding", raw)).unwrap(), want);
    }

    #[test]
    fn cluster_role_binding_with_group() {
        // kubectl create clusterrolebinding view-all --clusterrole=view --group=devs
        let raw = object("view-all")
            .msg(2, subject("Group", "rbac.authorization.k8s.io", "devs", ""))
            .msg(3, role_ref("ClusterRole", "view"));
        let got = decode(&body(V1, "ClusterRoleBinding", raw)).unwrap();
        assert_eq!(
            got,
            json!({
                "apiVersion": V1, "kind": "ClusterRoleBinding", "metadata": {"name": "view-all"},
                "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            })
        );
    }

    #[test]
    fn unknown_rbac_fields_are_refused() {
        let raw = object("r").msg(2, rule(&["get"], &[""], &["pods"], &[], &[]).str(9, "new"));
        let err = decode(&body(V1, "Role", raw)).unwrap_err();
        assert_eq!(err, ProtobufError::UnknownField { path: "rules[0]".into(), message: "PolicyRule", number: 9 });
    }
}
