//! Pod and pod-template rules (upstream `ValidatePodSpec`, `ValidatePodTemplateSpec`,
//! `ValidatePodUpdate`).
//!
//! A pod's spec is immutable after creation except container images, a lowered
//! `activeDeadlineSeconds`, added tolerations, removed scheduling gates and a
//! `terminationGracePeriodSeconds` raised to 1 from a negative value; anything else is the
//! well-known `pod updates may not change fields other than ...` error.

use std::collections::BTreeSet;

use serde_json::Value;

use super::container;
use super::meta::{validate_annotations, validate_labels, validate_meta};
use super::names::{is_dns1123_label, is_dns1123_subdomain, is_label_value, is_qualified_name, NameRule};
use super::{
    arr_field, field, field_or_null, int_field, obj_field, one_of, semantic_eq, str_field, Bad, Errors, Path, NULL,
};

/// The volume source fields of a `Volume`; exactly one must be set (defaulting adds
/// `emptyDir` when none is).
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Validates a Pod object.
pub(crate) fn validate_pod(obj: &Value, errs: &mut Errors) {
    validate_meta(obj, NameRule::Subdomain, errs);
    validate_pod_spec(field_or_null(obj, "spec"), &Path::root("spec"), &BTreeSet::new(), true, errs);
}

/// Validates a pod template (`spec.template` of workloads). `extra_volumes` are names that
/// mounts may use besides `spec.volumes` (a StatefulSet's `volumeClaimTemplates`).
pub(crate) fn validate_template(
    template: Option<&Value>,
    path: &Path,
    extra_volumes: &BTreeSet<String>,
    errs: &mut Errors,
) {
    let template = template.unwrap_or(&NULL);
    let meta = field_or_null(template, "metadata");
    // Upstream reports template labels under `template.labels`, not `template.metadata.labels`.
    validate_labels(obj_field(meta, "labels"), &path.child("labels"), errs);
    validate_annotations(obj_field(meta, "annotations"), &path.child("annotations"), errs);
    validate_pod_spec(field_or_null(template, "spec"), &path.child("spec"), extra_volumes, false, errs);
}

fn validate_pod_spec(spec: &Value, path: &Path, extra_volumes: &BTreeSet<String>, is_pod: bool, errs: &mut Errors) {
    let mut volumes = validate_volumes(arr_field(spec, "volumes"), &path.child("volumes"), errs);
    volumes.extend(extra_volumes.iter().cloned());
    container::validate_all(spec, path, &volumes, is_pod, errs);
    one_of(spec, "restartPolicy", path, &["Always", "OnFailure", "Never"], errs);
    one_of(spec, "dnsPolicy", path, &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"], errs);
    validate_labels(obj_field(spec, "nodeSelector"), &path.child("nodeSelector"), errs);
    for key in ["serviceAccountName", "nodeName"] {
        let v = str_field(spec, key);
        if !v.is_empty() {
            errs.invalid_each(&path.child(key), v, is_dns1123_subdomain(v));
        }
    }
    if let Some(v) = int_field(spec, "activeDeadlineSeconds") {
        if !(1..=i64::from(i32::MAX)).contains(&v) {
            errs.invalid(
                &path.child("activeDeadlineSeconds"),
                Bad::Int(v),
                "must be between 1 and 2147483647, inclusive",
            );
        }
    }
    for key in ["hostname", "subdomain"] {
        let v = str_field(spec, key);
        if !v.is_empty() {
            errs.invalid_each(&path.child(key), v, is_dns1123_label(v));
        }
    }
    validate_tolerations(arr_field(spec, "tolerations"), &path.child("tolerations"), errs);
}

/// Validates volumes and returns the names that validated (the ones mounts may use).
fn validate_volumes(volumes: &[Value], path: &Path, errs: &mut Errors) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, vol) in volumes.iter().enumerate() {
        let p = path.index(i);
        let mut local = Errors::default();
        validate_volume_source(vol, &p, &mut local);
        let name = str_field(vol, "name");
        if name.is_empty() {
            local.required(&p.child("name"), "");
        } else {
            local.invalid_each(&p.child("name"), name, is_dns1123_label(name));
        }
        if names.contains(name) {
            local.duplicate(&p.child("name"), Bad::str(name));
        }
        if local.0.is_empty() {
            names.insert(name.to_string());
        }
        errs.0.append(&mut local.0);
    }
    names
}

fn validate_volume_source(vol: &Value, path: &Path, errs: &mut Errors) {
    let set: Vec<&str> = VOLUME_SOURCES.iter().copied().filter(|s| field(vol, s).is_some()).collect();
    match set.as_slice() {
        [] => errs.required(path, "must specify a volume type"),
        [_] => {}
        [_, second, ..] => errs.forbidden(&path.child(second), "may not specify more than 1 volume type"),
    }
    let required =
        [("secret", "secretName"), ("configMap", "name"), ("persistentVolumeClaim", "claimName"), ("hostPath", "path")];
    for (source, key) in required {
        if let Some(src) = field(vol, source) {
            if str_field(src, key).is_empty() {
                errs.required(&path.child(source).child(key), "");
            }
        }
    }
    if let Some(projected) = field(vol, "projected") {
        let sources = path.child("projected").child("sources");
        for (i, source) in arr_field(projected, "sources").iter().enumerate() {
            if let Some(token) = field(source, "serviceAccountToken") {
                validate_token_projection(token, &sources.index(i).child("serviceAccountToken"), errs);
            }
        }
    }
}

/// Upstream's checks of a projected `serviceAccountToken`: a path, and a lifetime the
/// TokenRequest the agent makes for it accepts (at least 10 minutes, below 2^32 seconds).
fn validate_token_projection(token: &Value, path: &Path, errs: &mut Errors) {
    if str_field(token, "path").is_empty() {
        errs.required(&path.child("path"), "");
    }
    let Some(v) = field(token, "expirationSeconds") else { return };
    let p = path.child("expirationSeconds");
    match v.as_i64() {
        Some(s) if s < 600 => {
            errs.invalid(&p, Bad::Raw(v.to_string()), "may not specify a duration less than 10 minutes")
        }
        Some(s) if s >= 1 << 32 => {
            errs.invalid(&p, Bad::Raw(v.to_string()), "may not specify a duration larger than 2^32 seconds")
        }
        Some(_) => {}
        None => errs.invalid(&p, Bad::Raw(v.to_string()), "must be an integer"),
    }
}

fn validate_tolerations(tolerations: &[Value], path: &Path, errs: &mut Errors) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let (key, operator, value, effect) =
            (str_field(t, "key"), str_field(t, "operator"), str_field(t, "value"), str_field(t, "effect"));
        if !key.is_empty() {
            errs.invalid_each(&p.child("key"), key, is_qualified_name(key));
        }
        if key.is_empty() && operator != "Exists" {
            let msg = "operator must be Exists when `key` is empty, which means \"match all values and all keys\"";
            errs.invalid(&p.child("operator"), Bad::str(operator), msg);
        }
        if field(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.invalid(
                &p.child("effect"),
                Bad::str(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
        match operator {
            "Equal" | "" => {
                let msgs = is_label_value(value);
                if !msgs.is_empty() {
                    errs.invalid(&p.child("operator"), Bad::str(value), &msgs.join(";"));
                }
            }
            "Exists" if !value.is_empty() => errs.invalid(
                &p.child("operator"),
                Bad::Raw(t.to_string()),
                "value must be empty when `operator` is 'Exists'",
            ),
            "Exists" => {}
            other => errs.not_supported(&p.child("operator"), Bad::str(other), &["Equal", "Exists"]),
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            errs.not_supported(&p.child("effect"), Bad::str(effect), &["NoSchedule", "PreferNoSchedule", "NoExecute"]);
        }
    }
}

/// The update rules of a pod's spec.
pub(crate) fn validate_pod_update(new: &Value, old: &Value, errs: &mut Errors) {
    let path = Path::root("spec");
    let (new_spec, old_spec) = (field_or_null(new, "spec"), field_or_null(old, "spec"));
    for key in ["containers", "initContainers"] {
        if arr_field(new_spec, key).len() != arr_field(old_spec, key).len() {
            errs.forbidden(&path.child(key), "pod updates may not add or remove containers");
            return;
        }
    }
    match (int_field(new_spec, "activeDeadlineSeconds"), int_field(old_spec, "activeDeadlineSeconds")) {
        (Some(n), Some(o)) if n > o => {
            errs.invalid(
                &path.child("activeDeadlineSeconds"),
                Bad::Int(n),
                "must be less than or equal to previous value",
            );
            return;
        }
        (None, Some(_)) => errs.invalid(
            &path.child("activeDeadlineSeconds"),
            Bad::Raw("null".to_string()),
            "must not update from a positive integer to nil value",
        ),
        _ => {}
    }
    validate_only_added_tolerations(new_spec, old_spec, &path.child("tolerations"), errs);
    let munged = munge_pod_spec(new_spec, old_spec);
    if !semantic_eq(Some(&munged), Some(old_spec)) {
        let mut lines = Vec::new();
        diff_lines(Some(old_spec), Some(&munged), "spec", &mut lines);
        let detail =
            format!("pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n{}", lines.join("\n"));
        errs.forbidden(&path, &detail);
    }
}

/// Every old toleration must still be there; only `tolerationSeconds` may change.
fn validate_only_added_tolerations(new_spec: &Value, old_spec: &Value, path: &Path, errs: &mut Errors) {
    let new = arr_field(new_spec, "tolerations");
    for old in arr_field(old_spec, "tolerations") {
        let found = new.iter().any(|n| {
            let mut o = old.clone();
            if let Some(m) = o.as_object_mut() {
                m.remove("tolerationSeconds");
            }
            let mut n = n.clone();
            if let Some(m) = n.as_object_mut() {
                m.remove("tolerationSeconds");
            }
            semantic_eq(Some(&o), Some(&n))
        });
        if !found {
            errs.forbidden(path, "existing toleration can not be modified except its tolerationSeconds");
            return;
        }
    }
}

/// The new spec with every field that may change put back to its old value.
fn munge_pod_spec(new_spec: &Value, old_spec: &Value) -> Value {
    let mut munged = new_spec.clone();
    let Some(m) = munged.as_object_mut() else { return munged };
    for key in ["containers", "initContainers"] {
        if let Some(list) = m.get_mut(key).and_then(Value::as_array_mut) {
            for (c, old) in list.iter_mut().zip(arr_field(old_spec, key)) {
                if let (Some(c), Some(image)) = (c.as_object_mut(), field(old, "image")) {
                    c.insert("image".to_string(), image.clone());
                }
            }
        }
    }
    for key in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
        match field(old_spec, key) {
            Some(v) => m.insert(key.to_string(), v.clone()),
            None => m.remove(key),
        };
    }
    let old_grace = int_field(old_spec, "terminationGracePeriodSeconds");
    if old_grace.is_some_and(|g| g < 0) && int_field(new_spec, "terminationGracePeriodSeconds") == Some(1) {
        m.insert("terminationGracePeriodSeconds".to_string(), old_spec["terminationGracePeriodSeconds"].clone());
    }
    munged
}

/// Up to a handful of `- path: old` / `+ path: new` lines, standing in for upstream's
/// `cmp.Diff` so the user sees which field blocked the update.
fn diff_lines(old: Option<&Value>, new: Option<&Value>, path: &str, out: &mut Vec<String>) {
    const MAX_DIFF_LINES: usize = 20;
    if out.len() >= MAX_DIFF_LINES || semantic_eq(old, new) {
        return;
    }
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                diff_lines(o.get(k), n.get(k), &format!("{path}.{k}"), out);
            }
        }
        (Some(Value::Array(o)), Some(Value::Array(n))) if o.len() == n.len() => {
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                diff_lines(Some(a), Some(b), &format!("{path}[{i}]"), out);
            }
        }
        _ => {
            let show = |v: Option<&Value>| v.map_or("null".to_string(), Value::to_string);
            out.push(format!("- {path}: {}", show(old)));
            out.push(format!("+ {path}: {}", show(new)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{create, update};
    use serde_json::json;

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                "terminationMessagePolicy": "File", "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]}})
    }

    #[test]
    fn a_defaulted_pod_is_valid() {
        assert_eq!(create("pods", &pod()), Vec::<String>::new());
    }

    #[test]
    fn restart_and_dns_policies_are_checked() {
        let mut p = pod();
        p["spec"]["restartPolicy"] = json!("Sometimes");
        p["spec"]["dnsPolicy"] = json!("");
        assert_eq!(create("pods", &p), vec![
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.dnsPolicy: Required value",
        ]);
    }

    #[test]
    fn volumes_need_one_source_and_unique_names() {
        let mut p = pod();
        p["spec"]["volumes"] = json!([{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}},
            {"name": "b"}, {"name": "c", "emptyDir": {}, "hostPath": {"path": "/x"}}, {"name": "d", "secret": {}}]);
        assert_eq!(
            create("pods", &p),
            vec![
                "spec.volumes[1].name: Duplicate value: \"a\"",
                "spec.volumes[2]: Required value: must specify a volume type",
                "spec.volumes[3].hostPath: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[4].secret.secretName: Required value",
            ]
        );
    }

    #[test]
    fn tolerations_follow_upstream_rules() {
        let mut p = pod();
        p["spec"]["tolerations"] = json!([{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"},
            {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}, {"key": "k", "operator": "Near", "effect": "Never"}]);
        let errs = create("pods", &p);
        assert_eq!(errs[0], "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"");
        assert!(errs[1].ends_with("value must be empty when `operator` is 'Exists'"), "{errs:?}");
        assert_eq!(errs[2], "spec.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set");
        assert_eq!(
            errs[3],
            "spec.tolerations[3].operator: Unsupported value: \"Near\": supported values: \"Equal\", \"Exists\""
        );
        assert!(errs[4].starts_with("spec.tolerations[3].effect: Unsupported value: \"Never\""));
    }

    #[test]
    fn deadline_and_names_in_spec() {
        let mut p = pod();
        p["spec"]["activeDeadlineSeconds"] = json!(0);
        p["spec"]["serviceAccountName"] = json!("Bad_SA");
        let errs = create("pods", &p);
        assert!(errs[0].starts_with("spec.serviceAccountName: Invalid value: \"Bad_SA\""));
        assert_eq!(
            errs[1],
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"
        );
    }

    #[test]
    fn image_and_added_tolerations_may_change() {
        let old = pod();
        let mut new = pod();
        new["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        if let Some(t) = new["spec"]["tolerations"].as_array_mut() {
            t.push(json!({"key": "gpu", "operator": "Exists"}));
        }
        new["spec"]["tolerations"][0]["tolerationSeconds"] = json!(60);
        new["spec"]["activeDeadlineSeconds"] = json!(30);
        new["spec"]["hostNetwork"] = json!(false);
        assert_eq!(update("pods", &new, &old), Vec::<String>::new());
    }

    #[test]
    fn other_spec_changes_are_forbidden_with_upstream_message() {
        let old = pod();
        let mut new = pod();
        new["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
        let errs = update("pods", &new, &old);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"));
        assert!(errs[0].contains(
            "- spec.containers[0].ports[0].containerPort: 80\n+ spec.containers[0].ports[0].containerPort: 8080"
        ));
    }

    #[test]
    fn containers_may_not_be_added_and_tolerations_not_removed() {
        let old = pod();
        let mut new = pod();
        if let Some(c) = new["spec"]["containers"].as_array_mut() {
            c.push(json!({"name": "b", "image": "b"}));
        }
        assert_eq!(
            update("pods", &new, &old),
            vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        let mut new = pod();
        new["spec"]["tolerations"] = json!([]);
        assert_eq!(
            update("pods", &new, &old),
            vec!["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
        );
    }

    #[test]
    fn active_deadline_may_only_shrink() {
        let mut old = pod();
        old["spec"]["activeDeadlineSeconds"] = json!(30);
        let mut new = old.clone();
        new["spec"]["activeDeadlineSeconds"] = json!(60);
        assert_eq!(
            update("pods", &new, &old),
            vec!["spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"]
        );
    }
}
