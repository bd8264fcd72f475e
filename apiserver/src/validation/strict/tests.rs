//! Strict field validation tests, including upstream's own field-validation fixture.

use super::*;
use serde_json::json;

/// The body of upstream's `TestFieldValidation` (`invalidBodyJSON`), with its name filled in.
const UPSTREAM_INVALID_BODY: &str = r#"{
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "dupename",
        "name": "deployment",
        "labels": {"app": "nginx"},
        "unknownMeta": "metaVal"
    },
    "spec": {
        "unknown1": "val1",
        "unknownDupe": "valDupe",
        "unknownDupe": "valDupe2",
        "paused": true,
        "paused": false,
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {"containers": [{
                "name": "nginx",
                "image": "nginx:latest",
                "unknownNested": "val1",
                "imagePullPolicy": "Always",
                "imagePullPolicy": "Never"
            }]}
        }
    }
}"#;

#[test]
fn upstream_fixture_gives_upstream_errors_in_upstream_order() {
    let errs = strict_errors("deployments", UPSTREAM_INVALID_BODY.as_bytes()).expect("decodes");
    assert_eq!(
        errs,
        vec![
            r#"duplicate field "metadata.name""#,
            r#"unknown field "metadata.unknownMeta""#,
            r#"unknown field "spec.unknown1""#,
            r#"unknown field "spec.unknownDupe""#,
            r#"duplicate field "spec.paused""#,
            r#"unknown field "spec.template.spec.containers[0].unknownNested""#,
            r#"duplicate field "spec.template.spec.containers[0].imagePullPolicy""#,
        ]
    );
}

#[test]
fn unknown_fields_of_a_typo() {
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "creationTimestamp": null},
        "spec": {"replicass": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {}}]}}}});
    assert_eq!(unknown_fields("deployments", &d), Ok(vec![r#"unknown field "spec.replicass""#.to_string()]));
}

#[test]
fn nulls_and_empties_of_known_fields_are_fine_but_unknown_nulls_are_not() {
    let p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": null, "annotations": {}},
        "spec": {"containers": [{"name": "a", "image": "a", "env": [], "securityContext": null}], "volumes": null, "bogus": null},
        "status": {}});
    assert_eq!(unknown_fields("pods", &p), Ok(vec![r#"unknown field "spec.bogus""#.to_string()]));
}

#[test]
fn unknown_subtrees_are_not_descended() {
    let cm =
        json!({"metadata": {"name": "c", "extra": {"deeper": {"x": 1}}}, "data": {"any-key": "v"}, "dta": {"a": "b"}});
    assert_eq!(
        unknown_fields("configmaps", &cm),
        Ok(vec![r#"unknown field "dta""#.to_string(), r#"unknown field "metadata.extra""#.to_string(),])
    );
}

#[test]
fn free_form_fields_accept_anything() {
    let p = json!({"metadata": {"name": "p", "managedFields": [{"manager": "kubectl", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {}}}}]}, "spec": {"containers": []}});
    assert_eq!(unknown_fields("pods", &p), Ok(vec![]));
}

#[test]
fn type_errors_are_decode_errors_with_the_go_wording() {
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": "three"}});
    assert_eq!(
        unknown_fields("deployments", &d),
        Err("json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32".to_string())
    );
    let p = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80.5}]}]}});
    let err = unknown_fields("pods", &p).expect_err("float port");
    assert_eq!(err, "json: cannot unmarshal number into Go struct field ContainerPort.spec.containers[0].ports[0].containerPort of type int32");
    let c = json!({"metadata": {"name": "c"}, "data": "not a map"});
    assert_eq!(
        unknown_fields("configmaps", &c),
        Err("json: cannot unmarshal string into Go struct field ConfigMap.data of type map".to_string())
    );
    let s = json!({"metadata": {"name": "s"}, "data": {"k": "!!!"}});
    assert!(unknown_fields("secrets", &s).expect_err("bad base64").starts_with("error decoding \"data.k\": "));
}

#[test]
fn quantities_may_be_numbers_and_times_must_parse() {
    let p = json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]}});
    assert_eq!(unknown_fields("pods", &p), Ok(vec![]));
    let bad_time = json!({"metadata": {"name": "p", "creationTimestamp": "yesterday"}});
    assert!(unknown_fields("pods", &bad_time)
        .expect_err("time")
        .starts_with("error decoding \"metadata.creationTimestamp\""));
}

#[test]
fn subresources_and_unknown_plurals() {
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": 3, "replica": 1}});
    assert_eq!(unknown_fields("deployments/scale", &scale), Ok(vec![r#"unknown field "spec.replica""#.to_string()]));
    let eviction = json!({"metadata": {"name": "p"}, "deleteOptions": {"gracePeriodSeconds": 0, "force": true}});
    assert_eq!(
        unknown_fields("pods/eviction", &eviction),
        Ok(vec![r#"unknown field "deleteOptions.force""#.to_string()])
    );
    let binding = json!({"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    assert_eq!(unknown_fields("pods/binding", &binding), Ok(vec![]));
    let status = json!({"metadata": {"name": "p"}, "status": {"phase": "Running", "phaze": "x"}});
    assert_eq!(unknown_fields("pods/status", &status), Ok(vec![r#"unknown field "status.phaze""#.to_string()]));
    assert_eq!(unknown_fields("widgets", &json!({"anything": 1})), Ok(vec![]));
}

#[test]
fn every_served_resource_has_a_schema() {
    for r in crate::resources::RESOURCES {
        let obj = json!({"metadata": {"name": "x"}, "zzUnknown": 1});
        assert_eq!(
            unknown_fields(r.plural, &obj),
            Ok(vec![r#"unknown field "zzUnknown""#.to_string()]),
            "{}",
            r.plural
        );
    }
}

#[test]
fn duplicate_keys_in_raw_json() {
    let body = br#"{"metadata": {"name": "a", "labels": {"x": "1", "x": "2"}}, "data": {"k\u0041": "1", "kA": "2"}, "list": [{"a": 1, "a": 2}], "s": "{\"q\":1,\"q\":2}"}"#;
    assert_eq!(
        duplicate_fields(body),
        vec![
            r#"duplicate field "metadata.labels.x""#,
            r#"duplicate field "data.kA""#,
            r#"duplicate field "list[0].a""#,
        ]
    );
    assert_eq!(duplicate_fields(b"{\"a\": 1, \"b\": {\"a\": 2}}"), Vec::<String>::new());
    assert_eq!(duplicate_fields(b"{\"a\": 1, \"a\""), vec![r#"duplicate field "a""#]);
    assert_eq!(duplicate_fields(b"not json"), Vec::<String>::new());
}

#[test]
fn deep_nesting_is_bounded() {
    let body = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(duplicate_fields(body.as_bytes()), Vec::<String>::new());
    assert!(strict_errors("pods", b"{").is_err());
}
