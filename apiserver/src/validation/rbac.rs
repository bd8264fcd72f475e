//! `rbac.authorization.k8s.io/v1` rules: Role, ClusterRole, RoleBinding and ClusterRoleBinding
//! (upstream `pkg/apis/rbac/validation`).
//!
//! Names of all four kinds only need to be usable as a path segment (upstream's
//! `ValidateRBACName`), as does `roleRef.name`. A rule grants either resources or
//! non-resource URLs, never both, and a namespaced Role cannot grant URLs at all. A binding
//! points at a role of this API group, and its `roleRef` never changes once created: upstream
//! makes users delete and recreate a binding instead, so a binding cannot silently start
//! granting a different role. Runs after defaulting, which fills `roleRef.apiGroup` and the
//! User/Group subjects' `apiGroup` (see `crate::defaults`).

use serde_json::Value;

use super::meta::{selector_matches, validate_label_selector, validate_meta, Selection};
use super::names::{is_dns1123_subdomain, is_path_segment_name, NameRule};
use super::{arr_field, field, field_or_null, go_quote, str_field, Bad, Errors, Path};

/// The API group of this module's kinds, and the one a `roleRef` (and a User or Group
/// subject) must name.
pub(crate) const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The subject kinds a binding may name, in upstream's order (for `supported values`).
const SUBJECT_KINDS: &[&str] = &["ServiceAccount", "User", "Group"];

/// Validates `roles`, `clusterroles`, `rolebindings` or `clusterrolebindings`.
pub(crate) fn validate(plural: &str, obj: &Value, errs: &mut Errors) {
    validate_meta(obj, NameRule::PathSegment, errs);
    match plural {
        "roles" => validate_rules(obj, true, errs),
        "clusterroles" => {
            validate_rules(obj, false, errs);
            validate_aggregation_rule(obj, errs);
        }
        "rolebindings" => validate_binding(obj, &["Role", "ClusterRole"], true, errs),
        "clusterrolebindings" => validate_binding(obj, &["ClusterRole"], false, errs),
        _ => {}
    }
}

/// The update rule of bindings (`ValidateRoleBindingUpdate`): `roleRef` is immutable.
/// Roles have no update rule of their own.
pub(crate) fn validate_update(plural: &str, new: &Value, old: &Value, errs: &mut Errors) {
    if !matches!(plural, "rolebindings" | "clusterrolebindings") {
        return;
    }
    let (new_ref, old_ref) = (field_or_null(new, "roleRef"), field_or_null(old, "roleRef"));
    // Upstream compares the Go structs, so an absent roleRef equals one of empty strings.
    let parts = |r: &Value| ["apiGroup", "kind", "name"].map(|k| str_field(r, k).to_string());
    if parts(new_ref) != parts(old_ref) {
        errs.invalid(&Path::root("roleRef"), Bad::Raw(go_role_ref(new_ref)), "cannot change roleRef");
    }
}

/// `ValidatePolicyRule` on every entry of `rules`; `namespaced` for a Role.
fn validate_rules(obj: &Value, namespaced: bool, errs: &mut Errors) {
    for (i, rule) in arr_field(obj, "rules").iter().enumerate() {
        let path = Path::root("rules").index(i);
        if arr_field(rule, "verbs").is_empty() {
            errs.required(&path.child("verbs"), "verbs must contain at least one value");
        }
        let urls = arr_field(rule, "nonResourceURLs");
        if !urls.is_empty() {
            let urls_path = path.child("nonResourceURLs");
            if namespaced {
                errs.invalid(
                    &urls_path,
                    Bad::Raw(go_strings(urls)),
                    "namespaced rules cannot apply to non-resource URLs",
                );
            }
            let has_resources =
                ["apiGroups", "resources", "resourceNames"].iter().any(|k| !arr_field(rule, k).is_empty());
            if has_resources {
                let msg = "rules cannot apply to both regular resources and non-resource URLs";
                errs.invalid(&urls_path, Bad::Raw(go_strings(urls)), msg);
            }
            continue;
        }
        if arr_field(rule, "apiGroups").is_empty() {
            errs.required(&path.child("apiGroups"), "resource rules must supply at least one api group");
        }
        if arr_field(rule, "resources").is_empty() {
            errs.required(&path.child("resources"), "resource rules must supply at least one resource");
        }
    }
}

/// A ClusterRole's `aggregationRule`, when set, needs at least one valid label selector.
fn validate_aggregation_rule(obj: &Value, errs: &mut Errors) {
    let Some(rule) = field(obj, "aggregationRule") else { return };
    let path = Path::root("aggregationRule").child("clusterRoleSelectors");
    let selectors = arr_field(rule, "clusterRoleSelectors");
    if selectors.is_empty() {
        errs.required(&path, "at least one clusterRoleSelector required if aggregationRule is non-nil");
    }
    for (i, selector) in selectors.iter().enumerate() {
        validate_label_selector(selector, &path.index(i), errs);
        // Upstream also converts each selector and reports a failure with the nil result.
        // `selector_matches` finds the operator/values mismatches that make conversion fail;
        // bad keys and values were already reported above.
        if selector_matches(Some(selector), None).0 == Selection::Invalid {
            errs.invalid(&path.index(i), Bad::Raw("null".to_string()), "invalid label selector.");
        }
    }
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding`: the role reference, then each subject.
fn validate_binding(obj: &Value, role_kinds: &[&str], namespaced: bool, errs: &mut Errors) {
    let role_ref = field_or_null(obj, "roleRef");
    let path = Path::root("roleRef");
    let api_group = str_field(role_ref, "apiGroup");
    if api_group != RBAC_GROUP {
        errs.not_supported(&path.child("apiGroup"), Bad::str(api_group), &[RBAC_GROUP]);
    }
    let kind = str_field(role_ref, "kind");
    if !role_kinds.contains(&kind) {
        errs.not_supported(&path.child("kind"), Bad::str(kind), role_kinds);
    }
    let name = str_field(role_ref, "name");
    if name.is_empty() {
        errs.required(&path.child("name"), "");
    } else {
        errs.invalid_each(&path.child("name"), name, is_path_segment_name(name));
    }
    for (i, subject) in arr_field(obj, "subjects").iter().enumerate() {
        validate_subject(subject, namespaced, &Path::root("subjects").index(i), errs);
    }
}

/// `ValidateRoleBindingSubject`. A ClusterRoleBinding (`namespaced == false`) has no
/// namespace to resolve a ServiceAccount in, so the subject must name one.
fn validate_subject(subject: &Value, namespaced: bool, path: &Path, errs: &mut Errors) {
    let name = str_field(subject, "name");
    if name.is_empty() {
        errs.required(&path.child("name"), "");
    }
    let api_group = str_field(subject, "apiGroup");
    match str_field(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                errs.invalid_each(&path.child("name"), name, is_dns1123_subdomain(name));
            }
            if !api_group.is_empty() {
                errs.not_supported(&path.child("apiGroup"), Bad::str(api_group), &[""]);
            }
            if !namespaced && str_field(subject, "namespace").is_empty() {
                errs.required(&path.child("namespace"), "");
            }
        }
        "User" | "Group" => {
            if api_group != RBAC_GROUP {
                errs.not_supported(&path.child("apiGroup"), Bad::str(api_group), &[RBAC_GROUP]);
            }
        }
        other => errs.not_supported(&path.child("kind"), Bad::str(other), SUBJECT_KINDS),
    }
}

/// Go's `%#v` of a `[]string` built from a JSON array (non-strings read as `""`).
fn go_strings(values: &[Value]) -> String {
    let items: Vec<String> = values.iter().map(|v| go_quote(v.as_str().unwrap_or(""))).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// Go's `%#v` of the internal `rbac.RoleRef`, as upstream prints it in `cannot change roleRef`.
fn go_role_ref(role_ref: &Value) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        go_quote(str_field(role_ref, "apiGroup")),
        go_quote(str_field(role_ref, "kind")),
        go_quote(str_field(role_ref, "name"))
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::validation::testing::{create, update};
    use crate::validation::{validate_create, FieldError};

    fn role(rules: Value) -> Value {
        json!({"metadata": {"name": "pod-reader", "namespace": "default"}, "rules": rules})
    }

    fn binding(role_ref: Value, subjects: Value) -> Value {
        json!({"metadata": {"name": "read-pods", "namespace": "default"}, "roleRef": role_ref, "subjects": subjects})
    }

    fn cluster_role_ref() -> Value {
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"})
    }

    #[test]
    fn names_only_need_to_be_path_segments() {
        let r = role(json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]));
        let mut named = r.clone();
        named["metadata"]["name"] = json!("system:Pod_Reader");
        assert_eq!(create("roles", &named), Vec::<String>::new());
        for plural in ["roles", "clusterroles", "rolebindings", "clusterrolebindings"] {
            let mut bad = if plural.ends_with("bindings") { binding(cluster_role_ref(), json!([])) } else { r.clone() };
            bad["metadata"]["name"] = json!("a/b");
            assert_eq!(
                create(plural, &bad),
                vec!["metadata.name: Invalid value: \"a/b\": may not contain '/'"],
                "{plural}"
            );
        }
    }

    #[test]
    fn rules_need_verbs_and_resources() {
        let r = role(json!([{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"]}]));
        assert_eq!(
            create("roles", &r),
            vec![
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[1].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[1].resources: Required value: resource rules must supply at least one resource",
            ]
        );
        let errs = validate_create("roles", &r);
        assert_eq!((errs[0].field.as_str(), errs[0].reason), ("rules[0].verbs", "FieldValueRequired"));
    }

    #[test]
    fn only_cluster_roles_grant_non_resource_urls() {
        let urls = json!([{"nonResourceURLs": ["/healthz", "/metrics"], "verbs": ["get"]}]);
        let namespaced = role(urls.clone());
        let errs = validate_create("roles", &namespaced);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "rules[0].nonResourceURLs");
        assert_eq!(errs[0].reason, "FieldValueInvalid");
        assert_eq!(
            errs[0].body(),
            "Invalid value: []string{\"/healthz\", \"/metrics\"}: namespaced rules cannot apply to non-resource URLs"
        );
        let cluster = json!({"metadata": {"name": "health"}, "rules": urls});
        assert_eq!(create("clusterroles", &cluster), Vec::<String>::new());
    }

    #[test]
    fn a_rule_is_either_resources_or_urls() {
        let both = json!({"metadata": {"name": "mixed"}, "rules": [
            {"nonResourceURLs": ["/api"], "resources": ["pods"], "verbs": ["get"]},
            {"nonResourceURLs": ["/api"], "resourceNames": ["x"], "verbs": ["get"]}]});
        assert_eq!(
            create("clusterroles", &both),
            vec![
                "rules[0].nonResourceURLs: Invalid value: []string{\"/api\"}: rules cannot apply to both regular resources and non-resource URLs",
                "rules[1].nonResourceURLs: Invalid value: []string{\"/api\"}: rules cannot apply to both regular resources and non-resource URLs",
            ]
        );
        // In a Role both problems are reported, and the resource checks are skipped.
        let r = role(json!([{"nonResourceURLs": ["/api"], "apiGroups": [""]}]));
        assert_eq!(
            create("roles", &r),
            vec![
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[0].nonResourceURLs: Invalid value: []string{\"/api\"}: namespaced rules cannot apply to non-resource URLs",
                "rules[0].nonResourceURLs: Invalid value: []string{\"/api\"}: rules cannot apply to both regular resources and non-resource URLs",
            ]
        );
    }

    #[test]
    fn aggregation_rules_hold_valid_selectors() {
        let agg = |selectors: Value| json!({"metadata": {"name": "monitoring"}, "aggregationRule": {"clusterRoleSelectors": selectors}});
        let good = agg(json!([{"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}}]));
        assert_eq!(create("clusterroles", &good), Vec::<String>::new());
        assert_eq!(
            create("clusterroles", &agg(json!([]))),
            vec!["aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"]
        );
        let bad =
            agg(json!([{"matchLabels": {"bad key": "x"}}, {"matchExpressions": [{"key": "a", "operator": "In"}]}]));
        let errs = create("clusterroles", &bad);
        assert_eq!(errs.len(), 3, "{errs:?}");
        let bad_key = "aggregationRule.clusterRoleSelectors[0].matchLabels: Invalid value: \"bad key\": name part must";
        assert!(errs[0].starts_with(bad_key), "{errs:?}");
        assert_eq!(errs[1], "aggregationRule.clusterRoleSelectors[1].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'");
        assert_eq!(errs[2], "aggregationRule.clusterRoleSelectors[1]: Invalid value: null: invalid label selector.");
    }

    #[test]
    fn role_refs_name_a_role_of_this_group() {
        let b = binding(json!({"apiGroup": "example.com", "kind": "Pod"}), json!([]));
        assert_eq!(
            create("rolebindings", &b),
            vec![
                "roleRef.apiGroup: Unsupported value: \"example.com\": supported values: \"rbac.authorization.k8s.io\"",
                "roleRef.kind: Unsupported value: \"Pod\": supported values: \"Role\", \"ClusterRole\"",
                "roleRef.name: Required value",
            ]
        );
        let errs = validate_create("rolebindings", &b);
        let reasons: Vec<&str> = errs.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, ["FieldValueNotSupported", "FieldValueNotSupported", "FieldValueRequired"]);

        let to_role = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "a/b"});
        assert_eq!(
            create("rolebindings", &binding(to_role.clone(), json!([]))),
            vec!["roleRef.name: Invalid value: \"a/b\": may not contain '/'"]
        );
        let mut cluster = binding(to_role, json!([]));
        cluster["roleRef"]["name"] = json!("pod-reader");
        cluster["metadata"] = json!({"name": "read-pods"});
        assert_eq!(
            create("clusterrolebindings", &cluster),
            vec!["roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""]
        );
    }

    #[test]
    fn subjects_are_service_accounts_users_or_groups() {
        let subjects = json!([
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"},
            {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:authenticated"},
            {"kind": "ServiceAccount", "name": "builder"},
            {"kind": "Robot", "name": "r2"},
            {"kind": "User", "apiGroup": "", "name": ""},
        ]);
        assert_eq!(
            create("rolebindings", &binding(cluster_role_ref(), subjects)),
            vec![
                "subjects[3].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
                "subjects[4].name: Required value",
                "subjects[4].apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
            ]
        );
    }

    #[test]
    fn service_account_subjects() {
        let subjects = json!([
            {"kind": "ServiceAccount", "name": "Builder", "namespace": "ci"},
            {"kind": "ServiceAccount", "apiGroup": "rbac.authorization.k8s.io", "name": "deployer"},
        ]);
        let b = binding(cluster_role_ref(), subjects.clone());
        let errs: Vec<FieldError> = validate_create("rolebindings", &b);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].field, "subjects[0].name");
        assert!(errs[0].body().starts_with("Invalid value: \"Builder\": a lowercase RFC 1123 subdomain"), "{errs:?}");
        assert_eq!(
            errs[1].message,
            "subjects[1].apiGroup: Unsupported value: \"rbac.authorization.k8s.io\": supported values: \"\""
        );

        // A ClusterRoleBinding has no namespace to find a ServiceAccount in.
        let mut cluster = binding(cluster_role_ref(), json!([{"kind": "ServiceAccount", "name": "builder"}]));
        cluster["metadata"] = json!({"name": "builders"});
        assert_eq!(create("clusterrolebindings", &cluster), vec!["subjects[0].namespace: Required value"]);
        cluster["subjects"][0]["namespace"] = json!("ci");
        assert_eq!(create("clusterrolebindings", &cluster), Vec::<String>::new());
    }

    #[test]
    fn role_refs_are_immutable() {
        let old = binding(
            cluster_role_ref(),
            json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}]),
        );
        let mut more_subjects = old.clone();
        more_subjects["subjects"][0]["name"] = json!("john");
        assert_eq!(update("rolebindings", &more_subjects, &old), Vec::<String>::new());

        let mut changed = old.clone();
        changed["roleRef"]["name"] = json!("edit");
        for plural in ["rolebindings", "clusterrolebindings"] {
            assert_eq!(
                update(plural, &changed, &old),
                vec!["roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"],
                "{plural}"
            );
        }
        assert_eq!(update("roles", &changed, &old), Vec::<String>::new(), "roles have no roleRef rule");
    }
}
