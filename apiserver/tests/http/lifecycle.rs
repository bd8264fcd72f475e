//! Deletion (finalizers, propagation policy, preconditions, graceful pods, deletecollection)
//! and the split between an object's main resource and its `/status` subresource.
//!
//! Upstream answers 200 to every DELETE that does not fail, whether the object is gone or
//! lingers with a `deletionTimestamp`; only a lingering delete that explicitly asked for
//! `orphanDependents=false` gets 202 (apiserver `handlers/delete.go`).

use axum::http::Method;
use serde_json::{json, Value};

use super::support::{configmap, deployment, labelled_configmap, names, pod, Api};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";

async fn delete_with(api: &Api, uri: &str, options: Value) -> super::support::Reply {
    api.send(Method::DELETE, uri, &[("content-type", "application/json")], options.to_string()).await
}

#[tokio::test]
async fn finalizers_keep_a_deleted_object_until_they_are_removed() {
    let api = Api::start().await;
    let mut cm = configmap("held", json!({}));
    cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.create(CMS, cm).await;
    let url = format!("{CMS}/held");

    let marked = api.delete(&url).await.expect_success();
    assert_eq!(marked["kind"], "ConfigMap", "a lingering object is returned itself: {marked}");
    assert!(marked["metadata"]["deletionTimestamp"].is_string(), "{marked}");
    assert_eq!(marked["metadata"]["finalizers"], json!(["example.com/hold"]));
    let still = api.read(&url).await;
    assert_eq!(still["metadata"]["deletionTimestamp"], marked["metadata"]["deletionTimestamp"]);

    // Deleting again changes nothing; adding a finalizer to a terminating object is refused.
    api.delete(&url).await.expect_success();
    let s = api
        .merge_patch(&url, &json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}))
        .await
        .expect_status(422, "Invalid");
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.finalizers");

    // Other writes still work while it lingers.
    let patched = api.merge_patch(&url, &json!({"data": {"k": "v"}})).await.expect(200);
    assert_eq!(patched["metadata"]["deletionTimestamp"], marked["metadata"]["deletionTimestamp"]);

    api.merge_patch(&url, &json!({"metadata": {"finalizers": null}})).await.expect(200);
    api.get(&url).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn propagation_policies_add_their_finalizers() {
    let api = Api::start().await;
    for name in ["orphan-q", "orphan-b", "fg", "bg"] {
        api.create(DEPLOYS, deployment(name)).await;
    }
    let d = api.delete(&format!("{DEPLOYS}/orphan-q?propagationPolicy=Orphan")).await.expect_success();
    assert_eq!(d["metadata"]["finalizers"], json!(["orphan"]));
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(api.read(&format!("{DEPLOYS}/orphan-q")).await["metadata"]["finalizers"], json!(["orphan"]));

    let options = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"});
    let d = delete_with(&api, &format!("{DEPLOYS}/orphan-b"), options).await.expect_success();
    assert_eq!(d["metadata"]["finalizers"], json!(["orphan"]));

    let d =
        delete_with(&api, &format!("{DEPLOYS}/fg"), json!({"propagationPolicy": "Foreground"})).await.expect_success();
    assert_eq!(d["metadata"]["finalizers"], json!(["foregroundDeletion"]));

    let s = delete_with(&api, &format!("{DEPLOYS}/bg"), json!({"propagationPolicy": "Background"})).await.expect(200);
    assert_eq!(s["kind"], "Status");
    assert_eq!(s["status"], "Success");
    assert_eq!(s["details"]["name"], "bg");
    assert_eq!(s["details"]["group"], "apps");
    assert_eq!(s["details"]["kind"], "deployments");
    api.get(&format!("{DEPLOYS}/bg")).await.expect_status(404, "NotFound");

    let s = api.delete(&format!("{DEPLOYS}/fg?propagationPolicy=Sideways")).await.expect_status(400, "BadRequest");
    assert!(s["message"].as_str().unwrap().contains("Sideways"), "{s}");
}

#[tokio::test]
async fn delete_preconditions_that_do_not_hold_are_conflicts() {
    let api = Api::start().await;
    let cm = api.create(CMS, configmap("x", json!({}))).await;
    let uid = cm["metadata"]["uid"].as_str().unwrap().to_string();
    let url = format!("{CMS}/x");

    let s =
        delete_with(&api, &url, json!({"preconditions": {"uid": "not-the-uid"}})).await.expect_status(409, "Conflict");
    assert_eq!(s["details"], json!({"name": "x", "kind": "configmaps"}));
    let message = s["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("Precondition failed: UID in precondition: not-the-uid, UID in object meta: {uid}")),
        "{message}"
    );

    let rv = cm["metadata"]["resourceVersion"].as_str().unwrap();
    api.merge_patch(&url, &json!({"data": {"a": "b"}})).await.expect(200);
    let stale = format!("{url}?preconditions.resourceVersion={rv}");
    api.delete(&stale).await.expect_status(409, "Conflict");
    api.read(&url).await;

    delete_with(&api, &url, json!({"preconditions": {"uid": uid}})).await.expect(200);
    api.get(&url).await.expect_status(404, "NotFound");
    let s = api.delete(&url).await.expect_status(404, "NotFound");
    assert_eq!(s["message"], "configmaps \"x\" not found");
}

/// Upstream wraps a failed precondition in a Conflict naming the object (`NewConflict`), so
/// kubectl prints `Operation cannot be fulfilled on configmaps "x": ...`.
#[tokio::test]
async fn precondition_conflicts_name_the_object_like_upstream() {
    let api = Api::start().await;
    api.create(CMS, configmap("x", json!({}))).await;
    let s = delete_with(&api, &format!("{CMS}/x"), json!({"preconditions": {"uid": "not-the-uid"}}))
        .await
        .expect_status(409, "Conflict");
    let message = s["message"].as_str().unwrap();
    assert!(message.starts_with("Operation cannot be fulfilled on configmaps \"x\": "), "{message}");
}

/// A delete that leaves the object in place (finalizers, a propagation policy's finalizer,
/// a graceful pod deletion) is still 200 upstream; 202 only with `orphanDependents=false`.
#[tokio::test]
async fn lingering_deletes_answer_200_like_upstream() {
    let api = Api::start().await;
    let mut held = configmap("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.create(CMS, held).await;
    api.create(DEPLOYS, deployment("d")).await;
    let mut bound = pod("bound");
    bound["spec"]["nodeName"] = json!("n1");
    api.create(PODS, bound).await;
    let cases = [format!("{CMS}/held"), format!("{DEPLOYS}/d?propagationPolicy=Orphan"), format!("{PODS}/bound")];
    for uri in &cases {
        let r = api.delete(uri).await;
        assert!(r.json()["metadata"]["deletionTimestamp"].is_string(), "{uri} lingers: {}", r.text());
        assert_eq!(r.status, 200, "{uri}");
    }
    let mut held = configmap("held-too", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.create(CMS, held).await;
    let r = api.delete(&format!("{CMS}/held-too?orphanDependents=false")).await;
    assert_eq!(r.status, 202, "the one case upstream answers 202: {}", r.text());
}

#[tokio::test]
async fn a_bound_pod_is_deleted_gracefully_and_an_unbound_one_at_once() {
    let api = Api::start().await;
    let mut bound = pod("bound");
    bound["spec"]["nodeName"] = json!("n1");
    api.create(PODS, bound).await;
    api.create(PODS, pod("free")).await;

    let p = api.delete(&format!("{PODS}/bound")).await.expect_success();
    assert_eq!(p["kind"], "Pod");
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(api.read(&format!("{PODS}/bound")).await["metadata"]["deletionTimestamp"].is_string());

    // The node agent finishes the deletion with a zero grace period.
    let gone = api.delete(&format!("{PODS}/bound?gracePeriodSeconds=0")).await.expect(200);
    assert_eq!(gone["metadata"]["name"], "bound");
    api.get(&format!("{PODS}/bound")).await.expect_status(404, "NotFound");

    let p = api.delete(&format!("{PODS}/free")).await.expect(200);
    assert_eq!(p["kind"], "Pod", "pods return the deleted object: {p}");
    assert_eq!(p["metadata"]["name"], "free");
    api.get(&format!("{PODS}/free")).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn deletecollection_deletes_what_the_selector_matches() {
    let api = Api::start().await;
    api.create(CMS, labelled_configmap("a1", json!({"app": "a"}))).await;
    api.create(CMS, labelled_configmap("a2", json!({"app": "a"}))).await;
    api.create(CMS, labelled_configmap("b1", json!({"app": "b"}))).await;
    let other = api.namespace("other").await;
    api.create(&format!("/api/v1/namespaces/{other}/configmaps"), labelled_configmap("a3", json!({"app": "a"}))).await;

    let deleted = api.delete(&format!("{CMS}?labelSelector=app%3Da")).await.expect(200);
    assert_eq!(deleted["kind"], "ConfigMapList");
    assert_eq!(names(&deleted), ["a1", "a2"]);
    assert_eq!(names(&api.read(CMS).await), ["b1"]);
    assert_eq!(names(&api.read(&format!("/api/v1/namespaces/{other}/configmaps")).await), ["a3"]);
}

#[tokio::test]
async fn status_writes_change_only_status_and_main_writes_never_do() {
    let api = Api::start().await;
    let created = api.create(DEPLOYS, deployment("web")).await;
    let url = format!("{DEPLOYS}/web");

    let mut body = created.clone();
    body["spec"]["replicas"] = json!(7);
    body["metadata"]["labels"] = json!({"sneaky": "yes"});
    body["status"] = json!({"replicas": 2, "observedGeneration": 1});
    let d = api.put(&format!("{url}/status"), &body).await.expect(200);
    assert_eq!(d["status"], json!({"replicas": 2, "observedGeneration": 1}));
    assert_eq!(d["spec"]["replicas"], 1, "a status write leaves the spec alone");
    assert!(d["metadata"].get("labels").is_none(), "{d}");
    assert_eq!(d["metadata"]["generation"], 1);

    let d = api.merge_patch(&format!("{url}/status"), &json!({"status": {"readyReplicas": 2}})).await.expect(200);
    assert_eq!(d["status"]["readyReplicas"], 2);
    assert_eq!(d["status"]["replicas"], 2);

    let d = api.merge_patch(&url, &json!({"spec": {"replicas": 4}, "status": {"replicas": 99}})).await.expect(200);
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["status"]["replicas"], 2, "a main-resource write keeps the stored status");
    let mut put = d.clone();
    put["status"] = json!({});
    let d = api.put(&url, &put).await.expect(200);
    assert_eq!(d["status"]["readyReplicas"], 2);
    assert_eq!(api.read(&format!("{url}/status")).await["status"]["readyReplicas"], 2);

    api.create(PODS, pod("p")).await;
    let p = api.merge_patch(&format!("{PODS}/p/status"), &json!({"status": {"phase": "Running"}})).await.expect(200);
    assert_eq!(p["status"]["phase"], "Running");
    api.send(Method::POST, &format!("{PODS}/p/status"), &[], "{}").await.expect_status(405, "MethodNotAllowed");
}
