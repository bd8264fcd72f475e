//! Subresources kubectl and controllers use: `deployments/scale` (kubectl scale, the Python
//! client), `pods/binding` (the scheduler), `pods/eviction` (kubectl drain, with
//! PodDisruptionBudgets) and `pods/log`.

use axum::http::Method;
use serde_json::{json, Value};

use super::support::{deployment, pod, Api};

const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";
const PDBS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";

fn binding(pod: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
           "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
}

/// The body kubectl drain posts.
fn eviction(pod: &str) -> Value {
    json!({"kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": pod, "namespace": "default"},
           "deleteOptions": {}})
}

fn success_201() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

#[tokio::test]
async fn scale_reads_and_patches_a_deployments_replicas() {
    let api = Api::start().await;
    let mut d = deployment("web");
    d["spec"]["replicas"] = json!(2);
    let created = api.create(DEPLOYS, d).await;
    let url = format!("{DEPLOYS}/web/scale");

    let scale = api.read(&url).await;
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["metadata"]["name"], "web");
    assert_eq!(scale["metadata"]["namespace"], "default");
    assert_eq!(scale["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(scale["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=web");

    // What `kubectl scale --replicas=5` sends.
    let scaled = api.merge_patch(&url, &json!({"spec": {"replicas": 5}})).await.expect(200);
    assert_eq!(scaled["kind"], "Scale");
    assert_eq!(scaled["apiVersion"], "autoscaling/v1");
    assert_eq!(scaled["spec"]["replicas"], 5);
    let d = api.read(&format!("{DEPLOYS}/web")).await;
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(scaled["metadata"]["resourceVersion"], d["metadata"]["resourceVersion"]);

    // The Python client patches scale with a strategic merge patch.
    let scaled = api.patch(&url, "application/strategic-merge-patch+json", &json!({"spec": {"replicas": 1}})).await;
    assert_eq!(scaled.expect(200)["spec"]["replicas"], 1);

    let mut stale = scale.clone();
    stale["spec"]["replicas"] = json!(9);
    api.put(&url, &stale).await.expect_status(409, "Conflict");
    let mut fresh = api.read(&url).await;
    fresh["spec"]["replicas"] = json!(3);
    assert_eq!(api.put(&url, &fresh).await.expect(200)["spec"]["replicas"], 3);
    let s = api.merge_patch(&url, &json!({"spec": {"replicas": -1}})).await.expect_status(422, "Invalid");
    assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");
    api.get(&format!("{DEPLOYS}/missing/scale")).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn binding_assigns_a_node_once() {
    let api = Api::start().await;
    api.create(PODS, pod("p")).await;
    let r = api.post(&format!("{PODS}/p/binding"), &binding("p", "n1")).await;
    assert_eq!(r.expect(201), success_201());
    let p = api.read(&format!("{PODS}/p")).await;
    assert_eq!(p["spec"]["nodeName"], "n1");
    let scheduled = p["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "PodScheduled");
    assert_eq!(scheduled.expect("PodScheduled condition")["status"], "True");

    api.post(&format!("{PODS}/p/binding"), &binding("p", "n2")).await.expect_status(409, "Conflict");
    assert_eq!(api.read(&format!("{PODS}/p")).await["spec"]["nodeName"], "n1");
}

#[tokio::test]
async fn binding_an_assigned_pod_is_a_conflict() {
    let api = Api::start().await;
    let mut p = pod("p");
    p["spec"]["nodeName"] = json!("n1");
    api.create(PODS, p).await;
    let s = api.post(&format!("{PODS}/p/binding"), &binding("p", "n2")).await.expect_status(409, "Conflict");
    assert_eq!(
        s["message"],
        "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n1\""
    );
    assert_eq!(api.read(&format!("{PODS}/p")).await["spec"]["nodeName"], "n1");
    api.post(&format!("{PODS}/missing/binding"), &binding("missing", "n1")).await.expect_status(404, "NotFound");
    api.send(Method::GET, &format!("{PODS}/p/binding"), &[], "").await.expect_status(405, "MethodNotAllowed");
}

#[tokio::test]
async fn eviction_deletes_the_pod_with_a_success_status() {
    let api = Api::start().await;
    api.create(PODS, pod("p")).await;
    let r = api.post(&format!("{PODS}/p/eviction"), &eviction("p")).await;
    assert_eq!(r.expect(201), success_201());
    api.get(&format!("{PODS}/p")).await.expect_status(404, "NotFound");
    api.post(&format!("{PODS}/p/eviction"), &eviction("p")).await.expect_status(404, "NotFound");
}

/// Mark a pod Running, as its node's agent would (a Pending pod costs a budget nothing).
async fn running(api: &Api, name: &str) {
    api.merge_patch(&format!("{PODS}/{name}/status"), &json!({"status": {"phase": "Running"}})).await.expect(200);
}

/// A PDB over `app=<app>` whose status the disruption controller would have written.
async fn budget(api: &Api, app: &str, allowed: i64, healthy: i64) {
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"},
                     "spec": {"minAvailable": healthy, "selector": {"matchLabels": {"app": app}}}});
    api.create(PDBS, pdb).await;
    let status = json!({"status": {"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": healthy,
                                   "desiredHealthy": healthy, "expectedPods": healthy}});
    api.merge_patch(&format!("{PDBS}/pdb/status"), &status).await.expect(200);
}

#[tokio::test]
async fn eviction_blocked_by_a_budget_is_429_with_upstreams_cause() {
    let api = Api::start().await;
    api.create(PODS, pod("guarded")).await;
    running(&api, "guarded").await;
    budget(&api, "guarded", 0, 1).await;
    let s = api.post(&format!("{PODS}/guarded/eviction"), &eviction("guarded")).await;
    let s = s.expect_status(429, "TooManyRequests");
    api.read(&format!("{PODS}/guarded")).await;
    assert_eq!(s["message"], "Cannot evict pod as it would violate the pod's disruption budget.");
    assert_eq!(
        s["details"]["causes"],
        json!([{"reason": "DisruptionBudget", "message": "The disruption budget pdb needs 1 healthy pods and has 1 currently"}])
    );
}

#[tokio::test]
async fn an_eviction_consumes_the_budget_it_used() {
    let api = Api::start().await;
    let mut a = pod("a");
    a["metadata"]["labels"] = json!({"app": "shared"});
    let mut b = pod("b");
    b["metadata"]["labels"] = json!({"app": "shared"});
    api.create(PODS, a).await;
    api.create(PODS, b).await;
    running(&api, "a").await;
    running(&api, "b").await;
    budget(&api, "shared", 1, 2).await;

    api.post(&format!("{PODS}/a/eviction"), &eviction("a")).await.expect(201);
    let pdb = api.read(&format!("{PDBS}/pdb")).await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0, "upstream decrements the budget: {pdb}");
    assert!(pdb["status"]["disruptedPods"]["a"].is_string(), "{pdb}");
    // Until the disruption controller recomputes the budget, a second eviction must wait.
    api.post(&format!("{PODS}/b/eviction"), &eviction("b")).await.expect_status(429, "TooManyRequests");
    api.read(&format!("{PODS}/b")).await;
}

#[tokio::test]
async fn logs_of_an_unbound_pod_are_a_bad_request() {
    let api = Api::start().await;
    api.create(PODS, pod("p")).await;
    let s = api.get(&format!("{PODS}/p/log?container=main")).await.expect_status(400, "BadRequest");
    assert!(s["message"].as_str().unwrap().contains('p'), "{s}");
    api.get(&format!("{PODS}/missing/log")).await.expect_status(404, "NotFound");
    api.get(&format!("{PODS}/p/nonsense")).await.expect_status(404, "NotFound");
}
