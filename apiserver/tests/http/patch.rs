//! PATCH over HTTP: merge (kubectl label/annotate/scale), JSON patch (rollout undo),
//! strategic merge (apply, set image, the Python client) and apply (server-side apply,
//! kube-rs), their failure codes, and resourceVersion preconditions in patch bodies.

use axum::http::Method;
use serde_json::{json, Value};

use super::support::{configmap, deployment, rv, Api};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const JSON_PATCH: &str = "application/json-patch+json";
const SMP: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

fn containers(d: &Value) -> Vec<(String, String)> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["image"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn merge_patch_sets_a_label_and_keeps_the_rest() {
    let api = Api::start().await;
    let before = api.create(CMS, configmap("c", json!({"a": "1", "b": "2"}))).await;
    let url = format!("{CMS}/c");
    let after = api.merge_patch(&url, &json!({"metadata": {"labels": {"env": "prod"}}})).await.expect(200);
    assert_eq!(after["metadata"]["labels"], json!({"env": "prod"}));
    assert_eq!(after["data"], before["data"]);
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert!(rv(&after) > rv(&before));
    let after = api.merge_patch(&url, &json!({"data": {"a": null}})).await.expect(200);
    assert_eq!(after["data"], json!({"b": "2"}), "null removes a key");
    assert_eq!(api.read(&url).await, after);

    api.merge_patch(&format!("{CMS}/missing"), &json!({"data": {}})).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn json_patch_applies_operations_and_a_failing_test_is_422() {
    let api = Api::start().await;
    api.create(CMS, configmap("c", json!({"a": "1"}))).await;
    let url = format!("{CMS}/c");
    let ops = json!([{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
                     {"op": "replace", "path": "/data/a", "value": "2"}]);
    let after = api.patch(&url, JSON_PATCH, &ops).await.expect(200);
    assert_eq!(after["metadata"]["labels"], json!({"x": "y"}));
    assert_eq!(after["data"], json!({"a": "2"}));

    let failing = json!([{"op": "test", "path": "/data/a", "value": "1"},
                         {"op": "replace", "path": "/data/a", "value": "3"}]);
    let s = api.patch(&url, JSON_PATCH, &failing).await.expect_status(422, "Invalid");
    assert!(s["message"].is_string(), "{s}");
    assert_eq!(api.read(&url).await["data"], json!({"a": "2"}), "a failed patch changes nothing");

    api.patch(&url, JSON_PATCH, &json!({"op": "add"})).await.expect_status(400, "BadRequest");
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    let api = Api::start().await;
    let mut d = deployment("web");
    d["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "web", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "busybox:1"},
    ]);
    api.create(DEPLOYS, d).await;
    let url = format!("{DEPLOYS}/web");

    let set_image = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}});
    let after = api.patch(&url, SMP, &set_image).await.expect(200);
    assert_eq!(containers(&after), [("web".into(), "nginx:1.26".into()), ("sidecar".into(), "busybox:1".into())]);
    assert_eq!(after["spec"]["template"]["spec"]["containers"][0]["env"][1]["name"], "B");
    assert_eq!(after["metadata"]["generation"], 2);

    // kubectl apply's re-apply body (kubectl-api.md §1): directives for order and deletion.
    let reapply = json!({"spec": {"replicas": 3, "template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{"$setElementOrder/env": [{"name": "A"}], "env": [{"$patch": "delete", "name": "B"}],
                        "image": "nginx:1.27", "name": "web"}]}}}});
    let after = api.patch(&url, SMP, &reapply).await.expect(200);
    assert_eq!(after["spec"]["replicas"], 3);
    let web = &after["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(web["image"], "nginx:1.27");
    assert_eq!(web["env"], json!([{"name": "A", "value": "1"}]));

    let drop_sidecar =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
    let after = api.patch(&url, SMP, &drop_sidecar).await.expect(200);
    assert_eq!(containers(&after), [("web".into(), "nginx:1.27".into())]);
}

#[tokio::test]
async fn apply_patch_creates_a_missing_object_then_merges_into_it() {
    let api = Api::start().await;
    let url = format!("{CMS}/applied?fieldManager=kubectl&fieldValidation=Strict&force=false");
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: \"1\"\n  b: \"2\"\n";
    let r = api.send(Method::PATCH, &url, &[("content-type", APPLY)], yaml).await;
    let created = r.expect(201);
    assert_eq!(created["kind"], "ConfigMap");
    assert_eq!(created["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created["metadata"]["uid"].is_string());

    // kube-rs sends JSON (valid YAML) without metadata.name: the URL names the object.
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "10"}});
    let merged = api.patch(&url, APPLY, &body).await.expect(200);
    assert_eq!(merged["data"]["a"], "10");
    assert_eq!(merged["metadata"]["name"], "applied");
    assert_eq!(merged["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(api.read(&format!("{CMS}/applied")).await["data"]["a"], "10");
}

#[tokio::test]
async fn unsupported_patch_content_types_are_415() {
    let api = Api::start().await;
    api.create(CMS, configmap("c", json!({}))).await;
    for ct in ["application/json", "text/plain", "application/xml"] {
        let s = api.patch(&format!("{CMS}/c"), ct, &json!({"data": {"a": "b"}})).await;
        s.expect_status(415, "UnsupportedMediaType");
    }
    assert_eq!(api.read(&format!("{CMS}/c")).await["data"], json!({}));
}

#[tokio::test]
async fn a_stale_resource_version_in_a_patch_is_a_conflict() {
    let api = Api::start().await;
    let before = api.create(DEPLOYS, deployment("web")).await;
    let url = format!("{DEPLOYS}/web");
    let current = api.merge_patch(&url, &json!({"metadata": {"labels": {"a": "1"}}})).await.expect(200);

    let stale = json!({"metadata": {"resourceVersion": before["metadata"]["resourceVersion"], "labels": {"a": "2"}}});
    let s = api.merge_patch(&url, &stale).await.expect_status(409, "Conflict");
    assert_eq!(
        s["message"],
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply \
         your changes to the latest version and try again"
    );
    let fresh = json!({"metadata": {"resourceVersion": current["metadata"]["resourceVersion"], "labels": {"a": "3"}}});
    let after = api.merge_patch(&url, &fresh).await.expect(200);
    assert_eq!(after["metadata"]["labels"], json!({"a": "3"}));
}
