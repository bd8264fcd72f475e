//! Upstream rules a first review found missing: system namespaces cannot be deleted, only
//! `/finalize` changes what holds a namespace, a body's uid is a precondition, Tables carry
//! whole objects on request, list resourceVersion rules, create-on-update for leases,
//! warnings for unknown fields, and evictions of pods that are not running.

use axum::http::Method;
use serde_json::json;

use super::support::{configmap, pod, rv, Api, TABLE_ACCEPT};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn the_system_namespaces_cannot_be_deleted() {
    let api = Api::start().await;
    for ns in ["default", "kube-system", "kube-public"] {
        let s = api.delete(&format!("/api/v1/namespaces/{ns}")).await.expect_status(403, "Forbidden");
        assert_eq!(s["message"], format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted"));
        assert!(api.read(&format!("/api/v1/namespaces/{ns}")).await["metadata"].get("deletionTimestamp").is_none());
    }
}

#[tokio::test]
async fn only_finalize_changes_a_namespaces_finalizers() {
    let api = Api::start().await;
    api.namespace("held").await;
    api.delete("/api/v1/namespaces/held").await.expect(200);
    let mut ns = api.read("/api/v1/namespaces/held").await;
    assert_eq!(ns["status"]["phase"], "Terminating");
    ns["spec"]["finalizers"] = json!([]);
    let kept = api.put("/api/v1/namespaces/held", &ns).await.expect(200);
    assert_eq!(kept["spec"]["finalizers"], json!(["kubernetes"]), "a plain PUT may not release the namespace");
    let body = json!({"metadata": {"name": "held"}, "spec": {"finalizers": []}});
    api.put("/api/v1/namespaces/held/finalize", &body).await.expect(200);
    api.get("/api/v1/namespaces/held").await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn a_uid_in_the_body_is_a_precondition() {
    let api = Api::start().await;
    let mut cm = api.create(CMS, configmap("c", json!({"a": "1"}))).await;
    cm["metadata"]["uid"] = json!("00000000-0000-4000-8000-000000000000");
    let s = api.put(&format!("{CMS}/c"), &cm).await.expect_status(409, "Conflict");
    assert!(s["message"].as_str().unwrap().contains("Precondition failed: UID in precondition"), "{s}");
}

#[tokio::test]
async fn tables_carry_whole_objects_when_asked() {
    let api = Api::start().await;
    api.create(CMS, configmap("c", json!({"a": "1"}))).await;
    let t = api.get_with(&format!("{CMS}?includeObject=Object"), TABLE_ACCEPT).await.expect(200);
    assert_eq!(t["rows"][0]["object"]["data"]["a"], "1", "{t}");
    let t = api.get_with(&format!("{CMS}?includeObject=None"), TABLE_ACCEPT).await.expect(200);
    assert!(t["rows"][0].get("object").is_none(), "{t}");
    let t = api.get_with(&format!("{CMS}/c"), TABLE_ACCEPT).await.expect(200);
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn list_resource_versions_follow_upstream() {
    let api = Api::start().await;
    let first = api.create(CMS, configmap("one", json!({}))).await;
    api.create(CMS, configmap("two", json!({}))).await;
    let exact = api.read(&format!("{CMS}?resourceVersion={}&resourceVersionMatch=Exact", rv(&first))).await;
    assert_eq!(exact["items"].as_array().unwrap().len(), 1, "the list as it was at that revision: {exact}");
    assert_eq!(exact["metadata"]["resourceVersion"], rv(&first).to_string());
    api.get(&format!("{CMS}?resourceVersion=999999")).await.expect_status(504, "Timeout");
    api.get(&format!("{CMS}?resourceVersionMatch=Exact")).await.expect_status(400, "BadRequest");
}

#[tokio::test]
async fn a_put_creates_a_missing_lease_but_not_a_configmap() {
    let api = Api::start().await;
    let lease = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}});
    let created = api.put("/apis/coordination.k8s.io/v1/namespaces/default/leases/l", &lease).await.expect(201);
    assert_eq!(created["spec"]["holderIdentity"], "me");
    api.put(&format!("{CMS}/absent"), &configmap("absent", json!({}))).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn unknown_fields_are_warned_about_by_default() {
    let api = Api::start().await;
    let mut cm = configmap("w", json!({"a": "1"}));
    cm["bogus"] = json!(1);
    let r = api.post(CMS, &cm).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let warning = r.headers.get("warning").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert_eq!(warning, "299 - \"unknown field \\\"bogus\\\"\"");
    assert!(r.json().get("bogus").is_none(), "the unknown field is not stored");
    let r = api.post(&format!("{CMS}?fieldValidation=Ignore"), &configmap("i", json!({}))).await;
    assert!(r.headers.get("warning").is_none());
}

#[tokio::test]
async fn a_pending_pod_is_evicted_whatever_its_budget_says() {
    let api = Api::start().await;
    api.create("/api/v1/namespaces/default/pods", pod("p")).await;
    let pdb =
        json!({"metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "p"}}}});
    api.create("/apis/policy/v1/namespaces/default/poddisruptionbudgets", pdb).await;
    let eviction =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "default"}});
    api.send(
        Method::POST,
        "/api/v1/namespaces/default/pods/p/eviction",
        &[("content-type", "application/json")],
        eviction.to_string(),
    )
    .await
    .expect(201);
    api.get("/api/v1/namespaces/default/pods/p").await.expect_status(404, "NotFound");
}
