//! Create, get, list and update over HTTP: server-owned metadata, defaults, the
//! namespaced / cluster-scoped / cluster-wide URL forms, selectors, paging, optimistic
//! concurrency and dry runs — with upstream's status codes and Status bodies.

use axum::body::Body;
use axum::http::Method;
use serde_json::json;

use super::support::{configmap, deployment, labelled_configmap, names, node, pod, rv, Api};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test]
async fn create_stamps_identity_and_versions() {
    let api = Api::start().await;
    let d = api.create(DEPLOYS, deployment("web")).await;
    let m = &d["metadata"];
    assert_eq!(m["name"], "web");
    assert_eq!(m["namespace"], "default");
    assert_eq!(m["uid"].as_str().expect("uid").len(), 36, "{m}");
    assert!(m["creationTimestamp"].as_str().expect("creationTimestamp").ends_with('Z'), "{m}");
    assert_eq!(m["generation"], 1);
    assert!(rv(&d) > 0);
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["apiVersion"], "apps/v1");

    let cm = api.create(CMS, configmap("a", json!({"k": "v"}))).await;
    assert!(rv(&cm) > rv(&d), "resourceVersions grow with every write");
    assert_ne!(cm["metadata"]["uid"], d["metadata"]["uid"]);
    assert_eq!(api.read(&format!("{CMS}/a")).await, cm, "GET returns what create returned");
}

#[tokio::test]
async fn create_applies_upstream_defaults() {
    let api = Api::start().await;
    let p = api.create(PODS, pod("p")).await;
    assert_eq!(p["spec"]["restartPolicy"], "Always");
    assert_eq!(p["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(p["spec"]["schedulerName"], "default-scheduler");
    assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(p["status"]["phase"], "Pending");

    let d = api.create(DEPLOYS, deployment("d")).await;
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);

    let svc = json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "d"}, "ports": [{"port": 80}]}});
    let s = api.create("/api/v1/namespaces/default/services", svc).await;
    assert_eq!(s["spec"]["type"], "ClusterIP");
    assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);

    let secret = json!({"metadata": {"name": "s"}, "data": {"k": "dg=="}});
    let s = api.create("/api/v1/namespaces/default/secrets", secret).await;
    assert_eq!(s["type"], "Opaque");
}

#[tokio::test]
async fn a_job_without_a_selector_gets_one_generated() {
    let api = Api::start().await;
    // What `kubectl create job j --image=busybox` sends (as JSON here): no selector, no labels.
    let job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {
        "containers": [{"name": "j", "image": "busybox"}], "restartPolicy": "Never"}}}});
    let j = api.create("/apis/batch/v1/namespaces/default/jobs", job).await;
    let uid = j["metadata"]["uid"].as_str().unwrap();
    assert_eq!(j["spec"]["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
    let labels = &j["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
    assert_eq!(labels["batch.kubernetes.io/job-name"], "j");
}

#[tokio::test]
async fn create_takes_type_meta_from_the_url_and_a_missing_content_type_means_json() {
    let api = Api::start().await;
    let mut body = deployment("py");
    body.as_object_mut().unwrap().retain(|k, _| k != "apiVersion" && k != "kind");
    // The Python client sends create bodies without any Content-Type.
    let r = api.send(Method::POST, DEPLOYS, &[], body.to_string()).await;
    let d = r.expect(201);
    assert_eq!((&d["kind"], &d["apiVersion"]), (&json!("Deployment"), &json!("apps/v1")));
    assert_eq!(api.read(&format!("{DEPLOYS}/py")).await["kind"], "Deployment");
}

#[tokio::test]
async fn create_conflicts_are_upstream_statuses() {
    let api = Api::start().await;
    api.create(DEPLOYS, deployment("web")).await;
    let s = api.post(DEPLOYS, &deployment("web")).await.expect_status(409, "AlreadyExists");
    assert_eq!(s["message"], "deployments.apps \"web\" already exists");
    assert_eq!(s["details"], json!({"name": "web", "group": "apps", "kind": "deployments"}));

    let s = api
        .post("/api/v1/namespaces/missing/configmaps", &configmap("x", json!({})))
        .await
        .expect_status(404, "NotFound");
    assert_eq!(s["message"], "namespaces \"missing\" not found");
    assert_eq!(s["details"], json!({"name": "missing", "kind": "namespaces"}));
}

#[tokio::test]
async fn a_body_namespace_that_disagrees_with_the_url_is_a_bad_request() {
    let api = Api::start().await;
    let mut elsewhere = configmap("x", json!({}));
    elsewhere["metadata"]["namespace"] = json!("kube-system");
    let r = api.post(CMS, &elsewhere).await;
    api.get(&format!("{CMS}/x")).await.expect_status(404, "NotFound");
    api.get("/api/v1/namespaces/kube-system/configmaps/x").await.expect_status(404, "NotFound");
    let s = r.expect_status(400, "BadRequest");
    assert_eq!(s["message"], "the namespace of the provided object does not match the namespace sent on the request");
}

#[tokio::test]
async fn generate_name_gets_a_random_suffix() {
    let api = Api::start().await;
    let body = json!({"metadata": {"generateName": "web-"}, "data": {}});
    let a = api.create(CMS, body.clone()).await;
    let b = api.create(CMS, body).await;
    let name = a["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    assert_ne!(a["metadata"]["name"], b["metadata"]["name"]);
    assert_eq!(api.read(&format!("{CMS}/{name}")).await["metadata"]["generateName"], "web-");
}

#[tokio::test]
async fn get_of_a_missing_object_is_not_found() {
    let api = Api::start().await;
    let s = api.get(&format!("{DEPLOYS}/x")).await.expect_status(404, "NotFound");
    assert_eq!(s["message"], "deployments.apps \"x\" not found");
    assert_eq!(s["details"], json!({"name": "x", "group": "apps", "kind": "deployments"}));
    let s = api.get(&format!("{PODS}/x")).await.expect_status(404, "NotFound");
    assert_eq!(s["message"], "pods \"x\" not found");
    assert_eq!(s["details"], json!({"name": "x", "kind": "pods"}));
}

#[tokio::test]
async fn list_has_its_kind_items_and_a_resource_version() {
    let api = Api::start().await;
    let a = api.create(DEPLOYS, deployment("a")).await;
    let b = api.create(DEPLOYS, deployment("b")).await;
    let list = api.read(DEPLOYS).await;
    assert_eq!(list["kind"], "DeploymentList");
    assert_eq!(list["apiVersion"], "apps/v1");
    assert_eq!(names(&list), ["a", "b"]);
    assert!(rv(&list) >= rv(&b) && rv(&b) > rv(&a), "{list}");
    assert_eq!(list["items"][0]["metadata"]["uid"], a["metadata"]["uid"]);
}

#[tokio::test]
async fn pods_can_be_listed_across_namespaces() {
    let api = Api::start().await;
    let other = api.namespace("other").await;
    api.create(PODS, pod("here")).await;
    api.create(&format!("/api/v1/namespaces/{other}/pods"), pod("there")).await;
    let all = api.read("/api/v1/pods").await;
    assert_eq!(all["kind"], "PodList");
    let mut got = names(&all);
    got.sort();
    assert_eq!(got, ["here", "there"]);
    assert_eq!(names(&api.read(PODS).await), ["here"]);
    // A namespaced object has no cluster-level URL.
    api.get("/api/v1/pods/here").await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn cluster_scoped_namespaces_and_nodes() {
    let api = Api::start().await;
    let ns = api.create("/api/v1/namespaces", json!({"metadata": {"name": "team"}})).await;
    assert_eq!(ns["status"]["phase"], "Active");
    assert!(ns["metadata"].get("namespace").is_none(), "{ns}");
    let mut all = names(&api.read("/api/v1/namespaces").await);
    all.sort();
    assert_eq!(all, ["default", "kube-node-lease", "kube-public", "kube-system", "team"]);
    assert_eq!(api.read("/api/v1/namespaces/team").await["metadata"]["uid"], ns["metadata"]["uid"]);

    let n = api.create("/api/v1/nodes", node("n1")).await;
    assert_eq!(api.read("/api/v1/nodes/n1").await["metadata"]["uid"], n["metadata"]["uid"]);
    assert_eq!(names(&api.read("/api/v1/nodes?labelSelector=role%3Dworker").await), ["n1"]);
    api.get("/api/v1/namespaces/default/nodes/n1").await.expect_status(404, "NotFound");
    let s = api.delete("/api/v1/nodes/n1").await.expect(200);
    assert_eq!(s["kind"], "Status");
    assert_eq!(s["status"], "Success");
    assert_eq!(s["details"], json!({"name": "n1", "kind": "nodes", "uid": n["metadata"]["uid"]}));
    api.get("/api/v1/nodes/n1").await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn label_selectors_filter_lists() {
    let api = Api::start().await;
    api.create(CMS, labelled_configmap("web", json!({"app": "web", "tier": "front"}))).await;
    api.create(CMS, labelled_configmap("db", json!({"app": "db"}))).await;
    api.create(CMS, labelled_configmap("bare", json!({}))).await;
    let q = |sel: &str| format!("{CMS}?labelSelector={}", sel.replace(' ', "%20").replace('=', "%3D"));
    assert_eq!(names(&api.read(&q("app=web")).await), ["web"]);
    assert_eq!(names(&api.read(&q("app!=web")).await), ["bare", "db"]);
    assert_eq!(names(&api.read(&q("app in (web,db)")).await), ["db", "web"]);
    assert_eq!(names(&api.read(&q("!app")).await), ["bare"]);
    assert_eq!(names(&api.read(&q("app,tier=front")).await), ["web"]);
    api.get(&q("app in (")).await.expect_status(400, "BadRequest");
}

#[tokio::test]
async fn field_selectors_filter_lists_and_unknown_fields_are_refused() {
    let api = Api::start().await;
    api.create(CMS, configmap("a", json!({}))).await;
    api.create(CMS, configmap("b", json!({}))).await;
    assert_eq!(names(&api.read(&format!("{CMS}?fieldSelector=metadata.name%3Db")).await), ["b"]);
    assert_eq!(names(&api.read(&format!("{CMS}?fieldSelector=metadata.name!%3Db")).await), ["a"]);
    assert_eq!(names(&api.read("/api/v1/configmaps?fieldSelector=metadata.namespace%3Ddefault").await), ["a", "b"]);

    let mut bound = pod("bound");
    bound["spec"]["nodeName"] = json!("n1");
    api.create(PODS, bound).await;
    api.create(PODS, pod("free")).await;
    assert_eq!(names(&api.read("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1").await), ["bound"]);
    assert_eq!(names(&api.read("/api/v1/pods?fieldSelector=spec.nodeName%3D").await), ["free"]);

    let s = api.get(&format!("{CMS}?fieldSelector=spec.foo%3Dbar")).await.expect_status(400, "BadRequest");
    assert_eq!(s["message"], "field label not supported: spec.foo");
}

#[tokio::test]
async fn limit_and_continue_page_through_one_snapshot() {
    let api = Api::start().await;
    for i in 0..5 {
        api.create(CMS, configmap(&format!("cm-{i}"), json!({}))).await;
    }
    let first = api.read(&format!("{CMS}?limit=2")).await;
    assert_eq!(names(&first), ["cm-0", "cm-1"]);
    let snapshot = rv(&first);
    let mut token = first["metadata"]["continue"].as_str().expect("a continue token").to_string();
    // A write between pages must not show up in later pages of the same list.
    api.create(CMS, configmap("cm-5", json!({}))).await;
    let mut seen = names(&first);
    let mut versions = vec![snapshot];
    for _ in 0..5 {
        let page = api.read(&format!("{CMS}?limit=2&continue={token}")).await;
        versions.push(rv(&page));
        seen.extend(names(&page));
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    assert_eq!(seen, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"], "one snapshot, nothing missed or repeated");
    assert!(versions.iter().all(|v| *v == snapshot), "every page reports the snapshot's revision: {versions:?}");

    let s = api.get(&format!("{CMS}?limit=2&continue=not-a-token")).await.expect_status(400, "BadRequest");
    assert!(s["message"].as_str().unwrap().starts_with("invalid continue token"), "{s}");
}

#[tokio::test]
async fn put_with_a_stale_resource_version_is_a_conflict() {
    let api = Api::start().await;
    let d = api.create(DEPLOYS, deployment("web")).await;
    let url = format!("{DEPLOYS}/web");
    let mut v2 = d.clone();
    v2["metadata"]["labels"] = json!({"v": "2"});
    let updated = api.put(&url, &v2).await.expect(200);
    assert!(rv(&updated) > rv(&d));

    let mut stale = d.clone();
    stale["metadata"]["labels"] = json!({"v": "stale"});
    let s = api.put(&url, &stale).await.expect_status(409, "Conflict");
    assert_eq!(
        s["message"],
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply \
         your changes to the latest version and try again"
    );
    assert_eq!(s["details"], json!({"name": "web", "group": "apps", "kind": "deployments"}));
    assert_eq!(api.read(&url).await["metadata"]["labels"], json!({"v": "2"}));

    // Without a resourceVersion the update is unconditional.
    let mut blind = d.clone();
    blind["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    blind["metadata"]["labels"] = json!({"v": "3"});
    let r = api.put(&url, &blind).await.expect(200);
    assert_eq!(r["metadata"]["labels"], json!({"v": "3"}));
    assert_eq!(r["metadata"]["uid"], d["metadata"]["uid"]);
    assert!(rv(&r) > rv(&updated));
    api.put(&format!("{DEPLOYS}/missing"), &deployment("missing")).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn a_put_naming_another_object_is_a_bad_request() {
    let api = Api::start().await;
    let web = api.create(DEPLOYS, deployment("web")).await;
    api.create(DEPLOYS, deployment("other")).await;
    let s = api.put(&format!("{DEPLOYS}/other"), &web).await.expect_status(400, "BadRequest");
    assert_eq!(s["message"], "the name of the object (web) does not match the name on the URL (other)");
    // Upstream checks the name before it looks the object up.
    let s = api.put(&format!("{DEPLOYS}/absent"), &web).await.expect_status(400, "BadRequest");
    assert_eq!(s["message"], "the name of the object (web) does not match the name on the URL (absent)");
}

#[tokio::test]
async fn generation_moves_only_when_the_spec_changes() {
    let api = Api::start().await;
    let url = format!("{DEPLOYS}/web");
    api.create(DEPLOYS, deployment("web")).await;
    let d = api.merge_patch(&url, &json!({"metadata": {"labels": {"a": "b"}}})).await.expect(200);
    assert_eq!(d["metadata"]["generation"], 1, "a label change is not a spec change");
    let d = api.merge_patch(&url, &json!({"spec": {"replicas": 3}})).await.expect(200);
    assert_eq!(d["metadata"]["generation"], 2);
    let mut put = d.clone();
    put["metadata"]["generation"] = json!(40);
    put["spec"]["paused"] = json!(true);
    let d = api.put(&url, &put).await.expect(200);
    assert_eq!(d["metadata"]["generation"], 3, "clients cannot set generation");
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let api = Api::start().await;
    let r = api.post(&format!("{CMS}?dryRun=All"), &configmap("ghost", json!({"a": "1"}))).await;
    assert_eq!(r.expect(201)["data"], json!({"a": "1"}));
    api.get(&format!("{CMS}/ghost")).await.expect_status(404, "NotFound");

    let cm = api.create(CMS, configmap("real", json!({"a": "1"}))).await;
    let url = format!("{CMS}/real");
    let patched = api.merge_patch(&format!("{url}?dryRun=All"), &json!({"data": {"a": "2"}})).await.expect(200);
    assert_eq!(patched["data"], json!({"a": "2"}));
    let mut put = cm.clone();
    put["data"] = json!({"a": "3"});
    api.put(&format!("{url}?dryRun=All"), &put).await.expect(200);
    api.send(Method::DELETE, &format!("{url}?dryRun=All"), &[], Body::empty()).await.expect(200);
    assert_eq!(api.read(&url).await, cm, "nothing was written");

    api.get(&format!("{CMS}?dryRun=Some")).await.expect(200);
    api.post(&format!("{CMS}?dryRun=Some"), &configmap("x", json!({}))).await.expect_status(400, "BadRequest");
}
