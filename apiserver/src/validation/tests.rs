//! End-to-end checks of the public entry points: defaulted, realistic objects of every
//! served resource validate cleanly, and errors come out shaped for a 422 Status.

use super::*;
use serde_json::json;

fn valid_objects() -> Vec<(&'static str, Value)> {
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}});
    vec![
        ("namespaces", json!({"metadata": {"name": "team-a"}})),
        ("nodes", json!({"metadata": {"name": "node-1"}, "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}})),
        ("pods", json!({"metadata": {"name": "web"}, "spec": template["spec"].clone()})),
        (
            "services",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        ),
        (
            "endpoints",
            json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"port": 80}]}]}),
        ),
        ("configmaps", json!({"metadata": {"name": "cfg"}, "data": {"app.properties": "a=1"}})),
        ("secrets", json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})),
        ("serviceaccounts", json!({"metadata": {"name": "builder"}})),
        (
            "events",
            json!({"metadata": {"name": "web.17a4", "namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web"}}),
        ),
        (
            "persistentvolumes",
            json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/d"}}}),
        ),
        (
            "persistentvolumeclaims",
            json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "deployments",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template.clone()}}),
        ),
        (
            "replicasets",
            json!({"metadata": {"name": "web-5d"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template.clone()}}),
        ),
        (
            "statefulsets",
            json!({"metadata": {"name": "web"}, "spec": {"serviceName": "web", "selector": {"matchLabels": {"app": "web"}}, "template": template.clone()}}),
        ),
        (
            "daemonsets",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template.clone()}}),
        ),
        ("controllerrevisions", json!({"metadata": {"name": "web-5d"}, "revision": 1, "data": {"spec": {}}})),
        (
            "jobs",
            json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}}),
        ),
        (
            "leases",
            json!({"metadata": {"name": "kube-scheduler"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
        ),
        ("storageclasses", json!({"metadata": {"name": "standard"}, "provisioner": "rancher.io/local-path"})),
        (
            "poddisruptionbudgets",
            json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
        ),
        (
            "roles",
            json!({"metadata": {"name": "pod-reader"}, "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            "clusterroles",
            json!({"metadata": {"name": "monitoring"}, "rules": [{"nonResourceURLs": ["/healthz", "/metrics"], "verbs": ["get"]}],
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}}]}}),
        ),
        (
            // apiGroups left out on purpose: defaulting fills roleRef's and the User's.
            "rolebindings",
            json!({"metadata": {"name": "read-pods"}, "roleRef": {"kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "builder"}]}),
        ),
        (
            "clusterrolebindings",
            json!({"metadata": {"name": "monitoring"}, "roleRef": {"kind": "ClusterRole", "name": "monitoring"},
                "subjects": [{"kind": "Group", "name": "system:monitoring"},
                    {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}]}),
        ),
    ]
}

#[test]
fn every_resource_validates_after_defaulting() {
    for (plural, mut obj) in valid_objects() {
        crate::defaults::apply_defaults(plural, &mut obj);
        if plural == "jobs" {
            crate::defaults::generate_job_selector(&mut obj, "uid-1");
        }
        assert_eq!(validate_create(plural, &obj), Vec::<FieldError>::new(), "{plural}");
        assert_eq!(validate_update(plural, &obj, &obj), Vec::<FieldError>::new(), "{plural} unchanged update");
        assert_eq!(strict::unknown_fields(plural, &obj), Ok(vec![]), "{plural} defaults are schema fields");
    }
    assert_eq!(valid_objects().len(), crate::resources::RESOURCES.len());
}

#[test]
fn errors_carry_reason_field_and_cause_body() {
    let pod = json!({"metadata": {"name": "Web"}, "spec": {"containers": [{"name": "web", "imagePullPolicy": "Always",
        "terminationMessagePolicy": "File"}], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}});
    let errs = validate_create("pods", &pod);
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].field, "metadata.name");
    assert_eq!(errs[0].reason, "FieldValueInvalid");
    assert!(errs[0].body().starts_with("Invalid value: \"Web\": a lowercase RFC 1123 subdomain"));
    assert_eq!(errs[1].field, "spec.containers[0].image");
    assert_eq!(errs[1].reason, "FieldValueRequired");
    assert_eq!(errs[1].body(), "Required value");
    assert!(errs[0].message.starts_with("metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain"));
    assert_eq!(errs[1].message, "spec.containers[0].image: Required value");
}

#[test]
fn the_invalid_status_summarises_the_errors_like_upstream() {
    let pod = json!({"metadata": {"name": "Web"}, "spec": {"containers": [{"name": "web", "imagePullPolicy": "Always",
        "terminationMessagePolicy": "File"}], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}});
    let res = crate::resources::lookup("", "v1", "pods").expect("pods are served");
    let message = |errs: Vec<FieldError>| {
        let err = crate::registry::check_valid(res, "Web", errs).expect_err("errors make a 422");
        err.status().1["message"].as_str().expect("a Status message").to_string()
    };
    let errs = validate_create("pods", &pod);
    let joined = message(errs.clone());
    assert!(joined.starts_with("Pod \"Web\" is invalid: [metadata.name: Invalid value: \"Web\""), "{joined}");
    assert!(joined.ends_with(", spec.containers[0].image: Required value]"), "{joined}");
    let one = "Pod \"Web\" is invalid: spec.containers[0].image: Required value";
    assert_eq!(message(errs[1..].to_vec()), one);
    assert_eq!(message(vec![errs[1].clone(), errs[1].clone()]), one, "duplicates are dropped");
}

#[test]
fn updates_check_metadata_and_kind_rules() {
    let mut old = json!({"metadata": {"name": "cfg", "namespace": "default"}, "immutable": true, "data": {"a": "1"}});
    crate::defaults::apply_defaults("configmaps", &mut old);
    let mut new = old.clone();
    new["metadata"]["name"] = json!("cfg2");
    new["data"]["a"] = json!("2");
    let msgs: Vec<String> = validate_update("configmaps", &new, &old).into_iter().map(|e| e.message).collect();
    assert_eq!(
        msgs,
        vec![
            "metadata.name: Invalid value: \"cfg2\": field is immutable",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
}

#[test]
fn semantic_equality_ignores_zero_values() {
    assert!(semantic_eq(Some(&json!({"a": [], "b": ""})), Some(&json!({}))));
    assert!(semantic_eq(None, Some(&json!(false))));
    assert!(!semantic_eq(Some(&json!({"a": 1})), Some(&json!({"a": 2}))));
    assert!(!semantic_eq(Some(&json!([1])), Some(&json!([1, 2]))));
    assert!(semantic_eq(Some(&json!({"x": {"y": null}})), None));
}

#[test]
fn go_quoting_and_paths() {
    assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    assert_eq!(Path::root("data").key("a.b").as_str(), "data[a.b]");
    assert_eq!(Path::root("").child("type").as_str(), "type");
    assert_eq!(Path::root("spec").child("ports").index(2).child("name").as_str(), "spec.ports[2].name");
}

#[test]
fn not_found_and_too_long_format() {
    let mut errs = Errors::default();
    errs.not_found(&Path::root("x"), Bad::str("y"));
    errs.too_long(&Path::root("data"), 10);
    assert_eq!(errs.0[0].message, "x: Not found: \"y\"");
    assert_eq!(errs.0[0].reason, "FieldValueNotFound");
    assert_eq!(errs.0[1].message, "data: Too long: may not be more than 10 bytes");
    assert_eq!(errs.0[1].reason, "FieldValueTooLong");
}

#[test]
fn a_projected_token_needs_a_path_and_a_lifetime_its_request_accepts() {
    let pod = |token: Value| {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox",
            "imagePullPolicy": "Always", "terminationMessagePolicy": "File"}], "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst", "volumes": [{"name": "t", "projected": {"sources": [
                {"serviceAccountToken": token}]}}]}})
    };
    assert!(validate_create("pods", &pod(json!({"path": "token", "expirationSeconds": 600}))).is_empty());
    let field = "spec.volumes[0].projected.sources[0].serviceAccountToken";
    let short = validate_create("pods", &pod(json!({"path": "token", "expirationSeconds": 60})));
    assert_eq!(short[0].field, format!("{field}.expirationSeconds"));
    assert!(short[0].body().contains("less than 10 minutes"), "{}", short[0].body());
    let long = validate_create("pods", &pod(json!({"path": "token", "expirationSeconds": 1_i64 << 32})));
    assert!(long[0].body().contains("larger than 2^32"), "{}", long[0].body());
    let pathless = validate_create("pods", &pod(json!({})));
    assert_eq!(pathless[0].field, format!("{field}.path"));
}
