//! Workload rules: Deployment, ReplicaSet, StatefulSet, DaemonSet (upstream `apps`
//! validation) and Job (`batch`).
//!
//! Every workload's pod template must carry labels its selector matches; the selector is
//! immutable once created (apps/v1 and batch/v1). Jobs are validated as upstream sees them
//! after its `PrepareForCreate` generated the selector: a Job without a selector is only an
//! error when `manualSelector` is true (see `defaults::generate_job_selector`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::meta::{
    go_label_selector, go_string_map, selector_matches, validate_label_selector, validate_meta, Selection,
};
use super::names::{is_percent, NameRule, IS_NEGATIVE};
use super::pod::validate_template;
use super::{
    arr_field, field, field_or_null, int_field, nonnegative, obj_field, semantic_eq, str_field, Bad, Errors, Path,
};

/// Validates a workload (`deployments`, `replicasets`, `statefulsets`, `daemonsets`, `jobs`).
pub(crate) fn validate(plural: &str, obj: &Value, errs: &mut Errors) {
    validate_meta(obj, NameRule::Subdomain, errs);
    let spec = field_or_null(obj, "spec");
    let path = Path::root("spec");
    match plural {
        "deployments" => validate_deployment_spec(spec, &path, errs),
        "replicasets" => validate_replicated_spec(spec, &path, "deployment", &BTreeSet::new(), errs),
        "statefulsets" => validate_statefulset_spec(spec, &path, errs),
        "daemonsets" => validate_daemonset_spec(spec, &path, errs),
        _ => validate_job_spec(spec, &path, errs),
    }
}

/// The update rules: selectors are immutable, and more for StatefulSets and Jobs.
pub(crate) fn validate_update(plural: &str, new: &Value, old: &Value, errs: &mut Errors) {
    let (n, o) = (field_or_null(new, "spec"), field_or_null(old, "spec"));
    let path = Path::root("spec");
    match plural {
        "statefulsets" => {
            let mutable = [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            let keys: BTreeSet<&String> =
                n.as_object().into_iter().chain(o.as_object()).flat_map(|m| m.keys()).collect();
            if keys.into_iter().any(|k| !mutable.contains(&k.as_str()) && !semantic_eq(field(n, k), field(o, k))) {
                errs.forbidden(&path, "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden");
            }
        }
        "jobs" => validate_job_update(n, o, &path, errs),
        _ => immutable_selector(n, o, &path, errs),
    }
}

fn immutable_selector(n: &Value, o: &Value, path: &Path, errs: &mut Errors) {
    if !semantic_eq(field(n, "selector"), field(o, "selector")) {
        errs.immutable(&path.child("selector"), Bad::Raw(go_label_selector(field(n, "selector"))));
    }
}

/// Selector present, valid and non-empty; template labels match it.
fn validate_selector_and_template(
    spec: &Value,
    path: &Path,
    kind: &str,
    required: bool,
    errs: &mut Errors,
) -> Selection {
    let selector = field(spec, "selector");
    match selector {
        None if required => errs.required(&path.child("selector"), ""),
        None => {}
        Some(s) => {
            validate_label_selector(s, &path.child("selector"), errs);
            let labels = obj_field(s, "matchLabels").map_or(0, |m| m.len());
            if labels + arr_field(s, "matchExpressions").len() == 0 {
                let msg = format!("empty selector is invalid for {kind}");
                errs.invalid(&path.child("selector"), Bad::Raw(go_label_selector(Some(s))), &msg);
            }
        }
    }
    let template_labels =
        field(spec, "template").and_then(|t| field(t, "metadata")).and_then(|m| obj_field(m, "labels"));
    let (selection, matched) = selector_matches(selector, template_labels);
    if matches!(selection, Selection::Nothing | Selection::Some) && !matched {
        let p = path.child("template").child("metadata").child("labels");
        errs.invalid(&p, Bad::Raw(go_string_map(template_labels)), "`selector` does not match template `labels`");
    }
    selection
}

/// The restart policy of a controller's template must be `Always`, without a deadline;
/// each kind words the deadline error its own way upstream.
fn template_restart_always(spec: &Value, path: &Path, kind: &str, errs: &mut Errors) {
    let tspec = field_or_null(field_or_null(spec, "template"), "spec");
    let p = path.child("template").child("spec");
    let policy = str_field(tspec, "restartPolicy");
    if !policy.is_empty() && policy != "Always" {
        errs.not_supported(&p.child("restartPolicy"), Bad::str(policy), &["Always"]);
    }
    if let Some(d) = int_field(tspec, "activeDeadlineSeconds") {
        let dp = p.child("activeDeadlineSeconds");
        match kind {
            "statefulset" => errs.invalid(&dp, Bad::Int(d), "must not be specified"),
            "daemonset" => errs.invalid(&dp, Bad::Int(d), "activeDeadlineSeconds in DaemonSet is not Supported"),
            _ => errs.forbidden(&dp, "activeDeadlineSeconds in ReplicaSet is not Supported"),
        }
    }
}

/// ReplicaSet-shaped specs (also the core of Deployment and StatefulSet).
fn validate_replicated_spec(spec: &Value, path: &Path, kind: &str, volumes: &BTreeSet<String>, errs: &mut Errors) {
    nonnegative(spec, "replicas", path, errs);
    let selection = validate_selector_and_template(spec, path, kind, true, errs);
    if selection != Selection::Invalid {
        validate_template(field(spec, "template"), &path.child("template"), volumes, errs);
        template_restart_always(spec, path, kind, errs);
    }
    nonnegative(spec, "minReadySeconds", path, errs);
}

fn validate_deployment_spec(spec: &Value, path: &Path, errs: &mut Errors) {
    validate_replicated_spec(spec, path, "deployment", &BTreeSet::new(), errs);
    let strategy = field_or_null(spec, "strategy");
    let sp = path.child("strategy");
    match str_field(strategy, "type") {
        "Recreate" if field(strategy, "rollingUpdate").is_some() => {
            errs.forbidden(&sp.child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")
        }
        "Recreate" => {}
        "RollingUpdate" => match field(strategy, "rollingUpdate") {
            None => errs.required(&sp.child("rollingUpdate"), "this should be defaulted and never be nil"),
            Some(ru) => validate_rolling_update(ru, &sp.child("rollingUpdate"), true, errs),
        },
        other => errs.not_supported(&sp.child("type"), Bad::str(other), &["Recreate", "RollingUpdate"]),
    }
    nonnegative(spec, "revisionHistoryLimit", path, errs);
    if let Some(deadline) = int_field(spec, "progressDeadlineSeconds") {
        nonnegative(spec, "progressDeadlineSeconds", path, errs);
        if deadline <= int_field(spec, "minReadySeconds").unwrap_or(0) {
            errs.invalid(
                &path.child("progressDeadlineSeconds"),
                Bad::Int(deadline),
                "must be greater than minReadySeconds",
            );
        }
    }
}

/// An int-or-percent as (percent?, value), `None` when it is neither.
fn int_or_percent(v: Option<&Value>) -> Option<(bool, i64)> {
    match v? {
        Value::Number(n) => n.as_i64().map(|i| (false, i)),
        Value::String(s) => s.strip_suffix('%').and_then(|d| d.parse().ok()).map(|p| (true, p)),
        _ => None,
    }
}

/// Go's `%#v` of an `intstr.IntOrString`.
fn go_int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", super::go_quote(s)),
        Some(Value::Number(n)) => format!("intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}"),
        _ => "null".to_string(),
    }
}

/// A positive int or a percentage of at most 100% (`ValidatePositiveIntOrPercent` and
/// `IsNotMoreThan100Percent`).
pub(crate) fn validate_int_or_percent(v: Option<&Value>, path: &Path, errs: &mut Errors) {
    match v {
        Some(Value::String(s)) => {
            for m in is_percent(s) {
                errs.invalid(path, Bad::Raw(go_int_or_string(v)), &m);
            }
        }
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i < 0) => {
            errs.invalid(path, Bad::Int(n.as_i64().unwrap_or(0)), IS_NEGATIVE)
        }
        _ => {}
    }
    if let Some((true, p)) = int_or_percent(v) {
        if p > 100 {
            errs.invalid(path, Bad::Raw(go_int_or_string(v)), "must not be greater than 100%");
        }
    }
}

fn validate_rolling_update(ru: &Value, path: &Path, deployment: bool, errs: &mut Errors) {
    let (unavailable, surge) = (field(ru, "maxUnavailable"), field(ru, "maxSurge"));
    validate_int_or_percent(unavailable, &path.child("maxUnavailable"), errs);
    validate_int_or_percent(surge, &path.child("maxSurge"), errs);
    let zero = |v: Option<&Value>| int_or_percent(v).is_none_or(|(_, n)| n == 0);
    if (deployment || surge.is_some()) && zero(unavailable) && zero(surge) {
        let msg = "may not be 0 when `maxSurge` is 0";
        errs.invalid(&path.child("maxUnavailable"), Bad::Raw(go_int_or_string(unavailable)), msg);
    }
}

fn validate_statefulset_spec(spec: &Value, path: &Path, errs: &mut Errors) {
    match str_field(spec, "podManagementPolicy") {
        "" => errs.required(&path.child("podManagementPolicy"), ""),
        "OrderedReady" | "Parallel" => {}
        other => {
            errs.invalid(&path.child("podManagementPolicy"), Bad::str(other), "must be 'OrderedReady' or 'Parallel'")
        }
    }
    let strategy = field_or_null(spec, "updateStrategy");
    let sp = path.child("updateStrategy");
    match str_field(strategy, "type") {
        "" => errs.required(&sp, ""),
        "OnDelete" if field(strategy, "rollingUpdate").is_some() => {
            let bad = Bad::Raw(strategy["rollingUpdate"].to_string());
            errs.invalid(&sp.child("rollingUpdate"), bad, "only allowed for updateStrategy 'RollingUpdate'")
        }
        "OnDelete" => {}
        "RollingUpdate" => {
            if let Some(ru) = field(strategy, "rollingUpdate") {
                nonnegative(ru, "partition", &sp.child("rollingUpdate"), errs);
            }
        }
        _ => errs.invalid(&sp, Bad::Raw(strategy.to_string()), "must be 'RollingUpdate' or 'OnDelete'"),
    }
    let claims: BTreeSet<String> = arr_field(spec, "volumeClaimTemplates")
        .iter()
        .filter_map(|c| field(c, "metadata").map(|m| str_field(m, "name").to_string()))
        .collect();
    validate_replicated_spec(spec, path, "statefulset", &claims, errs);
    nonnegative(spec, "revisionHistoryLimit", path, errs);
}

fn validate_daemonset_spec(spec: &Value, path: &Path, errs: &mut Errors) {
    // Upstream has no explicit `Required` here: a nil selector just matches nothing.
    let selection = validate_selector_and_template(spec, path, "daemonset", false, errs);
    if selection != Selection::Invalid {
        validate_template(field(spec, "template"), &path.child("template"), &BTreeSet::new(), errs);
        template_restart_always(spec, path, "daemonset", errs);
    }
    nonnegative(spec, "minReadySeconds", path, errs);
    let strategy = field_or_null(spec, "updateStrategy");
    let sp = path.child("updateStrategy");
    match str_field(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match field(strategy, "rollingUpdate") {
            None => errs.required(&sp.child("rollingUpdate"), ""),
            Some(ru) => validate_rolling_update(ru, &sp.child("rollingUpdate"), false, errs),
        },
        other => errs.not_supported(&sp.child("type"), Bad::str(other), &["OnDelete", "RollingUpdate"]),
    }
    nonnegative(spec, "revisionHistoryLimit", path, errs);
}

fn validate_job_spec(spec: &Value, path: &Path, errs: &mut Errors) {
    for key in ["parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"] {
        nonnegative(spec, key, path, errs);
    }
    let mode = str_field(spec, "completionMode");
    if !mode.is_empty() && mode != "NonIndexed" && mode != "Indexed" {
        errs.not_supported(&path.child("completionMode"), Bad::str(mode), &["NonIndexed", "Indexed"]);
    }
    if mode == "Indexed" && field(spec, "completions").is_none() {
        errs.required(&path.child("completions"), "when completion mode is Indexed");
    }
    let manual = field(spec, "manualSelector").and_then(Value::as_bool) == Some(true);
    validate_selector_and_template(spec, path, "job", manual, errs);
    // Upstream defaults a missing restartPolicy to Always before validating; we leave it
    // unset (see `defaults`), so validate as if it were Always to give upstream's message.
    let mut template = field(spec, "template").cloned().unwrap_or(Value::Null);
    if let Some(tspec) = template.get_mut("spec").and_then(Value::as_object_mut) {
        if tspec.get("restartPolicy").and_then(Value::as_str).unwrap_or("").is_empty() {
            tspec.insert("restartPolicy".to_string(), Value::String("Always".to_string()));
        }
    }
    validate_template(Some(&template), &path.child("template"), &BTreeSet::new(), errs);
    let policy = field(&template, "spec").map_or("Always", |s| str_field(s, "restartPolicy"));
    if policy != "OnFailure" && policy != "Never" {
        let p = path.child("template").child("spec").child("restartPolicy");
        errs.not_supported(&p, Bad::str(policy), &["OnFailure", "Never"]);
    }
}

fn validate_job_update(n: &Value, o: &Value, path: &Path, errs: &mut Errors) {
    let elastic =
        str_field(n, "completionMode") == "Indexed" && int_field(n, "completions") == int_field(n, "parallelism");
    if !elastic && !semantic_eq(field(n, "completions"), field(o, "completions")) {
        errs.immutable(&path.child("completions"), Bad::json(field(n, "completions")));
    }
    immutable_selector(n, o, path, errs);
    if !semantic_eq(field(n, "template"), field(o, "template")) {
        errs.immutable(&path.child("template"), Bad::json(field(n, "template")));
    }
    for key in ["completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"] {
        if !semantic_eq(field(n, key), field(o, key)) {
            errs.immutable(&path.child(key), Bad::json(field(n, key)));
        }
    }
}

#[cfg(test)]
mod tests;
