//! `metadata` rules (upstream `ValidateObjectMeta` / `ValidateObjectMetaUpdate`) and label
//! selectors (`ValidateLabelSelector`, `LabelSelectorAsSelector(...).Matches`).
//!
//! Namespace presence is checked by the registry, not here. `resourceVersion`, `uid` and
//! `creationTimestamp` on update are the registry's business too (it copies them from the
//! stored object before validating), so only `name` and `namespace` immutability is checked.

use serde_json::{Map, Value};

use super::names::{is_label_value, is_qualified_name, NameRule};
use super::{arr_field, field, field_or_null, go_quote, obj_field, str_field, Bad, Errors, Path};

/// Upstream's `TotalAnnotationSizeLimitB`: 256 KiB of keys plus values.
pub(crate) const TOTAL_ANNOTATION_SIZE_LIMIT_B: usize = 256 * 1024;

/// Validates `obj.metadata` with the kind's name rule.
pub(crate) fn validate_meta(obj: &Value, rule: NameRule, errs: &mut Errors) {
    let path = Path::root("metadata");
    let meta = field_or_null(obj, "metadata");
    let generate_name = str_field(meta, "generateName");
    if !generate_name.is_empty() {
        errs.invalid_each(&path.child("generateName"), generate_name, rule.check(generate_name, true));
    }
    let name = str_field(meta, "name");
    if name.is_empty() {
        errs.required(&path.child("name"), "name or generateName is required");
    } else {
        errs.invalid_each(&path.child("name"), name, rule.check(name, false));
    }
    if let Some(g) = field(meta, "generation").and_then(Value::as_i64) {
        if g < 0 {
            errs.invalid(&path.child("generation"), Bad::Int(g), super::names::IS_NEGATIVE);
        }
    }
    validate_labels(obj_field(meta, "labels"), &path.child("labels"), errs);
    validate_annotations(obj_field(meta, "annotations"), &path.child("annotations"), errs);
    validate_owner_references(arr_field(meta, "ownerReferences"), &path.child("ownerReferences"), errs);
    validate_finalizers(arr_field(meta, "finalizers"), &path.child("finalizers"), errs);
}

/// The update-only metadata rules: `name` and `namespace` may not change.
pub(crate) fn validate_meta_update(new: &Value, old: &Value, errs: &mut Errors) {
    let new_meta = field_or_null(new, "metadata");
    let old_meta = field_or_null(old, "metadata");
    for key in ["name", "namespace"] {
        let (n, o) = (str_field(new_meta, key), str_field(old_meta, key));
        if n != o {
            errs.immutable(&Path::root("metadata").child(key), Bad::str(n));
        }
    }
}

/// Label keys must be qualified names, values valid label values.
pub(crate) fn validate_labels(labels: Option<&Map<String, Value>>, path: &Path, errs: &mut Errors) {
    for (k, v) in labels.into_iter().flatten() {
        errs.invalid_each(path, k, is_qualified_name(k));
        let v = v.as_str().unwrap_or("");
        errs.invalid_each(path, v, is_label_value(v));
    }
}

/// Annotation keys are qualified names (case-insensitive); keys plus values fit in 256 KiB.
pub(crate) fn validate_annotations(annotations: Option<&Map<String, Value>>, path: &Path, errs: &mut Errors) {
    let mut total = 0usize;
    for (k, v) in annotations.into_iter().flatten() {
        errs.invalid_each(path, k, is_qualified_name(&k.to_lowercase()));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B {
        errs.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT_B);
    }
}

fn validate_owner_references(refs: &[Value], path: &Path, errs: &mut Errors) {
    let mut first_controller: Option<String> = None;
    for r in refs {
        let api_version = str_field(r, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.invalid(&path.child("apiVersion"), Bad::str(api_version), "version must not be empty");
        }
        for (key, what) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            if str_field(r, key).is_empty() {
                errs.invalid(&path.child(key), Bad::str(""), &format!("{what} must not be empty"));
            }
        }
        if field(r, "controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{}/{}", str_field(r, "kind"), str_field(r, "name"));
            match &first_controller {
                Some(first) => errs.invalid(
                    path,
                    Bad::Raw(Value::Array(refs.to_vec()).to_string()),
                    &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"),
                ),
                None => first_controller = Some(current),
            }
        }
    }
}

fn validate_finalizers(finalizers: &[Value], path: &Path, errs: &mut Errors) {
    let names: Vec<&str> = finalizers.iter().filter_map(Value::as_str).collect();
    for f in &names {
        errs.invalid_each(path, f, is_qualified_name(f));
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        let list: Vec<String> = names.iter().map(|n| go_quote(n)).collect();
        errs.invalid(
            path,
            Bad::Raw(format!("[]string{{{}}}", list.join(", "))),
            "finalizer orphan and foregroundDeletion cannot be both set",
        );
    }
}

/// Validates a `LabelSelector` (`matchLabels` and `matchExpressions`) at `path`.
pub(crate) fn validate_label_selector(selector: &Value, path: &Path, errs: &mut Errors) {
    validate_labels(obj_field(selector, "matchLabels"), &path.child("matchLabels"), errs);
    for (i, expr) in arr_field(selector, "matchExpressions").iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = arr_field(expr, "values");
        match str_field(expr, "operator") {
            "In" | "NotIn" if values.is_empty() => {
                errs.required(&p.child("values"), "must be specified when `operator` is 'In' or 'NotIn'")
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                errs.forbidden(&p.child("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.invalid(&p.child("operator"), Bad::str(other), "not a valid selector operator"),
        }
        let key = str_field(expr, "key");
        errs.invalid_each(&p.child("key"), key, is_qualified_name(key));
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            errs.invalid_each(&p.child("values").index(j), v, is_label_value(v));
        }
    }
}

/// How a selector matches: upstream's `LabelSelectorAsSelector` turns `nil` into "nothing"
/// and `{}` into "everything"; a selector it cannot convert is `Invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    Nothing,
    Everything,
    Some,
    Invalid,
}

/// Classifies a selector and, for `Selection::Some`, tells whether `labels` match it.
pub(crate) fn selector_matches(selector: Option<&Value>, labels: Option<&Map<String, Value>>) -> (Selection, bool) {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return (Selection::Nothing, false);
    };
    let match_labels = obj_field(selector, "matchLabels");
    let exprs = arr_field(selector, "matchExpressions");
    if match_labels.is_none_or(Map::is_empty) && exprs.is_empty() {
        return (Selection::Everything, true);
    }
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let mut ok = match_labels.into_iter().flatten().all(|(k, v)| label(k).is_some() && label(k) == v.as_str());
    for e in exprs {
        let key = str_field(e, "key");
        let values: Vec<&str> = arr_field(e, "values").iter().filter_map(Value::as_str).collect();
        ok &= match str_field(e, "operator") {
            "In" if !values.is_empty() => label(key).is_some_and(|v| values.contains(&v)),
            "NotIn" if !values.is_empty() => label(key).is_none_or(|v| !values.contains(&v)),
            "Exists" if values.is_empty() => label(key).is_some(),
            "DoesNotExist" if values.is_empty() => label(key).is_none(),
            _ => return (Selection::Invalid, false),
        };
    }
    (Selection::Some, ok)
}

/// Go's `%#v` of a `map[string]string`: `map[string]string{"app":"web"}` with sorted keys.
pub(crate) fn go_string_map(m: Option<&Map<String, Value>>) -> String {
    match m {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            // serde_json's map (without `preserve_order`) iterates in key order, like Go's fmt.
            let items: Vec<String> =
                m.iter().map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v.as_str().unwrap_or("")))).collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

fn go_string_slice(values: Option<&Value>) -> String {
    match values.and_then(Value::as_array) {
        None => "[]string(nil)".to_string(),
        Some(a) => {
            let items: Vec<String> = a.iter().map(|v| go_quote(v.as_str().unwrap_or(""))).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector`, as upstream prints it in `field is immutable`
/// and `empty selector` errors.
pub(crate) fn go_label_selector(selector: Option<&Value>) -> String {
    let Some(s) = selector.filter(|s| s.is_object()) else {
        return "null".to_string();
    };
    let exprs = match field(s, "matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(str_field(e, "key")),
                        go_quote(str_field(e, "operator")),
                        go_string_slice(field(e, "values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}", go_string_map(obj_field(s, "matchLabels")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::messages;
    use serde_json::json;

    fn meta_errs(obj: Value, rule: NameRule) -> Vec<String> {
        messages(|errs| validate_meta(&obj, rule, errs))
    }

    #[test]
    fn invalid_name_message_matches_upstream() {
        let errs = meta_errs(json!({"metadata": {"name": "k8s_is_so_hard_name"}}), NameRule::Subdomain);
        assert_eq!(errs, vec!["metadata.name: Invalid value: \"k8s_is_so_hard_name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]);
    }

    #[test]
    fn name_or_generate_name_is_required() {
        let errs = meta_errs(json!({"metadata": {}}), NameRule::Subdomain);
        assert_eq!(errs, vec!["metadata.name: Required value: name or generateName is required"]);
        let errs = meta_errs(json!({"metadata": {"generateName": "Web-"}}), NameRule::Subdomain);
        assert!(errs[0].starts_with("metadata.generateName: Invalid value: \"Web-\": a lowercase RFC 1123"));
    }

    #[test]
    fn label_and_annotation_rules() {
        let obj = json!({"metadata": {"name": "a", "labels": {"INVALID.EXAMPLE.COM/hello": "there", "ok": "-bad"},
            "annotations": {"Example.com/Note": "fine"}}});
        let errs = meta_errs(obj, NameRule::Subdomain);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with(
            "metadata.labels: Invalid value: \"INVALID.EXAMPLE.COM/hello\": prefix part a lowercase RFC 1123 subdomain"
        ));
        assert!(errs[1].starts_with("metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string"));
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B);
        let errs = meta_errs(json!({"metadata": {"name": "a", "annotations": {"k": big}}}), NameRule::Subdomain);
        assert_eq!(errs, vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]);
    }

    #[test]
    fn owner_references_and_finalizers() {
        let obj = json!({"metadata": {"name": "a", "finalizers": ["orphan", "foregroundDeletion"], "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1", "controller": true},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs2", "uid": "", "controller": true}]}});
        let errs = meta_errs(obj, NameRule::Subdomain);
        assert_eq!(errs[0], "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty");
        assert!(errs[1].ends_with("Found \"true\" in references for ReplicaSet/rs and ReplicaSet/rs2"));
        assert_eq!(errs[2], "metadata.finalizers: Invalid value: []string{\"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set");
    }

    #[test]
    fn name_and_namespace_are_immutable() {
        let mut errs = Errors::default();
        let old = json!({"metadata": {"name": "a", "namespace": "default"}});
        validate_meta_update(&json!({"metadata": {"name": "b", "namespace": "default"}}), &old, &mut errs);
        assert_eq!(errs.0[0].message, "metadata.name: Invalid value: \"b\": field is immutable");
    }

    #[test]
    fn selectors_match_like_upstream() {
        let labels = json!({"app": "web", "tier": "fe"});
        let l = labels.as_object();
        assert_eq!(selector_matches(None, l), (Selection::Nothing, false));
        assert_eq!(selector_matches(Some(&json!({})), l), (Selection::Everything, true));
        assert_eq!(selector_matches(Some(&json!({"matchLabels": {"app": "web"}})), l), (Selection::Some, true));
        assert_eq!(selector_matches(Some(&json!({"matchLabels": {"app": "db"}})), l), (Selection::Some, false));
        let expr = json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        assert_eq!(selector_matches(Some(&expr), l), (Selection::Some, true));
        let bad = json!({"matchExpressions": [{"key": "tier", "operator": "Near"}]});
        assert_eq!(selector_matches(Some(&bad), l).0, Selection::Invalid);
        let mut errs = Errors::default();
        validate_label_selector(&bad, &Path::root("spec").child("selector"), &mut errs);
        assert_eq!(
            errs.0[0].message,
            "spec.selector.matchExpressions[0].operator: Invalid value: \"Near\": not a valid selector operator"
        );
    }

    #[test]
    fn go_syntax_of_selectors_and_maps() {
        let s = json!({"matchLabels": {"app": "nginx2"}});
        assert_eq!(
            go_label_selector(Some(&s)),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"nginx2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        let e = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]});
        assert!(go_label_selector(Some(&e)).contains("[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"a\", Operator:\"In\", Values:[]string{\"x\"}}}"));
        assert_eq!(
            go_string_map(json!({"b": "2", "a": "1"}).as_object()),
            "map[string]string{\"a\":\"1\", \"b\":\"2\"}"
        );
    }
}
