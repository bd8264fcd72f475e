//! Workload validation tests with realistic, defaulted objects.

use super::*;
use crate::validation::testing::{create, update};
use serde_json::json;

fn deployment() -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}});
    crate::defaults::apply_defaults("deployments", &mut d);
    d
}

#[test]
fn a_defaulted_deployment_is_valid() {
    assert_eq!(create("deployments", &deployment()), Vec::<String>::new());
}

#[test]
fn negative_replicas_message_matches_upstream() {
    let mut d = deployment();
    d["spec"]["replicas"] = json!(-1);
    assert_eq!(create("deployments", &d), vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]);
}

#[test]
fn selector_mismatch_message_matches_upstream() {
    let mut d = deployment();
    d["spec"]["selector"] = json!({"matchLabels": {"app": "nginx"}});
    assert_eq!(create("deployments", &d), vec![
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
    ]);
}

#[test]
fn missing_and_empty_selectors() {
    let mut d = deployment();
    d["spec"].as_object_mut().map(|s| s.remove("selector"));
    assert_eq!(create("deployments", &d), vec![
        "spec.selector: Required value",
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
    ]);
    d["spec"]["selector"] = json!({});
    assert_eq!(create("deployments", &d), vec![
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
    ]);
}

#[test]
fn template_must_restart_always_and_have_valid_containers() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(10);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    d["spec"]["template"]["metadata"]["labels"]["bad key!"] = json!("x");
    assert_eq!(create("deployments", &d), vec![
        "spec.template.labels: Invalid value: \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        "spec.template.spec.containers[0].image: Required value",
        "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
        "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
    ]);
}

#[test]
fn rolling_update_parameters() {
    let mut d = deployment();
    d["spec"]["strategy"]["rollingUpdate"] = json!({"maxUnavailable": "120%", "maxSurge": 0});
    assert_eq!(create("deployments", &d), vec![
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"120%\"}: must not be greater than 100%",
    ]);
    d["spec"]["strategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": "0%"});
    assert_eq!(create("deployments", &d), vec![
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
    ]);
    d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}});
    assert_eq!(
        create("deployments", &d),
        vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
    );
    d["spec"]["strategy"] = json!({"type": "BlueGreen"});
    assert_eq!(
        create("deployments", &d),
        vec!["spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\""]
    );
}

#[test]
fn progress_deadline_exceeds_min_ready() {
    let mut d = deployment();
    d["spec"]["minReadySeconds"] = json!(600);
    assert_eq!(
        create("deployments", &d),
        vec!["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"]
    );
}

#[test]
fn selector_is_immutable_with_upstream_message() {
    let old = deployment();
    let mut new = deployment();
    new["spec"]["selector"] = json!({"matchLabels": {"app": "nginx2"}});
    assert_eq!(update("deployments", &new, &old), vec![
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"nginx2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
    ]);
    let mut scaled = deployment();
    scaled["spec"]["replicas"] = json!(5);
    assert_eq!(update("deployments", &scaled, &old), Vec::<String>::new());
}

#[test]
fn replicasets_share_the_rules() {
    let mut rs = deployment();
    rs["kind"] = json!("ReplicaSet");
    rs["spec"].as_object_mut().map(|s| s.remove("strategy"));
    rs["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]});
    let errs = create("replicasets", &rs);
    assert_eq!(errs, vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"]);
}

fn statefulset() -> Value {
    let mut s = json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "postgres:16",
            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}});
    crate::defaults::apply_defaults("statefulsets", &mut s);
    s
}

#[test]
fn statefulsets_mount_claim_templates_and_freeze_most_of_the_spec() {
    assert_eq!(create("statefulsets", &statefulset()), Vec::<String>::new());
    let mut bad = statefulset();
    bad["spec"]["podManagementPolicy"] = json!("Random");
    bad["spec"]["selector"] = json!({});
    let errs = create("statefulsets", &bad);
    assert_eq!(errs[0], "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'");
    assert!(errs[1].ends_with("empty selector is invalid for statefulset"));
    let old = statefulset();
    let mut new = statefulset();
    new["spec"]["replicas"] = json!(3);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:17");
    assert_eq!(update("statefulsets", &new, &old), Vec::<String>::new());
    new["spec"]["serviceName"] = json!("db2");
    assert_eq!(update("statefulsets", &new, &old), vec!["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]);
}

#[test]
fn daemonsets() {
    let mut ds = json!({"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}},
        "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}});
    crate::defaults::apply_defaults("daemonsets", &mut ds);
    assert_eq!(create("daemonsets", &ds), Vec::<String>::new());
    let mut bad = ds.clone();
    bad["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    bad["spec"]["updateStrategy"] = json!({"type": "Sometimes"});
    assert_eq!(create("daemonsets", &bad), vec![
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
        "spec.updateStrategy.type: Unsupported value: \"Sometimes\": supported values: \"OnDelete\", \"RollingUpdate\"",
    ]);
    let mut moved = ds.clone();
    moved["spec"]["selector"]["matchLabels"]["app"] = json!("x");
    assert_eq!(update("daemonsets", &moved, &ds).len(), 1);
}

fn job() -> Value {
    let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}}}});
    crate::defaults::apply_defaults("jobs", &mut j);
    crate::defaults::generate_job_selector(&mut j, "8b0cd0a6-1c5e-4f1e-9a9f-0d5f3c6f2b11");
    j
}

#[test]
fn jobs_need_on_failure_or_never() {
    assert_eq!(create("jobs", &job()), Vec::<String>::new());
    let mut j = job();
    j["spec"]["template"]["spec"].as_object_mut().map(|s| s.remove("restartPolicy"));
    j["spec"]["backoffLimit"] = json!(-1);
    assert_eq!(
        create("jobs", &j),
        vec![
        "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
        "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
    ]
    );
    let manual = json!({"metadata": {"name": "m"}, "spec": {"manualSelector": true, "template": {"spec": {"restartPolicy": "Never",
        "dnsPolicy": "ClusterFirst", "containers": [{"name": "a", "image": "a:1", "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File"}]}}}});
    assert_eq!(create("jobs", &manual)[0], "spec.selector: Required value");
}

#[test]
fn job_selector_and_template_are_immutable() {
    let old = job();
    let mut new = job();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5.36");
    let errs = update("jobs", &new, &old);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("spec.template: Invalid value: {") && errs[0].ends_with("field is immutable"),
        "{errs:?}"
    );
    let mut suspended = job();
    suspended["spec"]["suspend"] = json!(true);
    suspended["spec"]["parallelism"] = json!(4);
    assert_eq!(update("jobs", &suspended, &old), Vec::<String>::new());
    let mut resel = job();
    resel["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
    assert!(update("jobs", &resel, &old)[0]
        .starts_with("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"a\":\"b\"}"));
}
