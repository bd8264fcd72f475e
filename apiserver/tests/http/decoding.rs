//! Request bodies and response representations: `fieldValidation=Strict` (kubectl create
//! and apply send it), protobuf bodies exactly as kubectl 1.32's `create <generator>` sends
//! them (golden fixtures in `tests/fixtures/`), and Table output for `kubectl get`.

use axum::http::Method;
use serde_json::{json, Value};

use super::support::{configmap, deployment, names, pod, Api, PROTOBUF, TABLE_ACCEPT};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";
/// The query kubectl create adds.
const CREATE_QUERY: &str = "fieldManager=kubectl-create&fieldValidation=Strict";

#[tokio::test]
async fn strict_validation_refuses_unknown_fields() {
    let api = Api::start().await;
    let mut d = deployment("web");
    d["spec"]["foo"] = json!(1);
    let s = api.post(&format!("{DEPLOYS}?fieldValidation=Strict"), &d).await.expect_status(400, "BadRequest");
    assert_eq!(
        s["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.foo\""
    );
    api.get(&format!("{DEPLOYS}/web")).await.expect_status(404, "NotFound");

    let created = api.create(DEPLOYS, deployment("web")).await;
    let mut put = created.clone();
    put["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyTypo"] = json!("Always");
    let s = api.put(&format!("{DEPLOYS}/web?fieldValidation=Strict"), &put).await.expect_status(400, "BadRequest");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .ends_with("strict decoding error: unknown field \"spec.template.spec.containers[0].imagePullPolicyTypo\""),
        "{s}"
    );
}

#[tokio::test]
async fn strict_validation_refuses_duplicate_fields() {
    let api = Api::start().await;
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"d"},"data":{}}"#;
    let r = api
        .send(Method::POST, &format!("{CMS}?fieldValidation=Strict"), &[("content-type", "application/json")], body)
        .await;
    let s = r.expect_status(400, "BadRequest");
    assert_eq!(
        s["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: duplicate field \
         \"metadata.name\""
    );
    api.get(&format!("{CMS}/d")).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn without_strict_an_unknown_field_is_dropped() {
    let api = Api::start().await;
    let mut d = deployment("web");
    d["spec"]["foo"] = json!(1);
    d["spec"]["template"]["spec"]["containers"][0]["bogus"] = json!("x");
    let created = api.create(&format!("{DEPLOYS}?fieldValidation=Ignore"), d.clone()).await;
    assert!(created["spec"].get("foo").is_none(), "{created}");
    assert!(created["spec"]["template"]["spec"]["containers"][0].get("bogus").is_none(), "{created}");

    d["metadata"]["name"] = json!("web2");
    let created = api.create(DEPLOYS, d).await;
    assert!(created["spec"].get("foo").is_none(), "the default (Warn) drops it too: {created}");
    let stored = api.read(&format!("{DEPLOYS}/web2")).await;
    assert!(stored["spec"].get("foo").is_none(), "{stored}");
}

/// POST a kubectl 1.32 protobuf body the way kubectl does.
async fn create_protobuf(api: &Api, collection: &str, body: &'static [u8]) -> Value {
    let accept = "application/vnd.kubernetes.protobuf,application/json";
    let r = api
        .send(
            Method::POST,
            &format!("{collection}?{CREATE_QUERY}"),
            &[("content-type", PROTOBUF), ("accept", accept)],
            body,
        )
        .await;
    assert!(r.content_type().starts_with("application/json"), "{}", r.content_type());
    r.expect(201)
}

#[tokio::test]
async fn protobuf_configmap_secret_and_namespace() {
    let api = Api::start().await;
    let cm = create_protobuf(&api, CMS, include_bytes!("../fixtures/kubectl-1.32-create-configmap.pb")).await;
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "cm1");
    assert_eq!(cm["metadata"]["namespace"], "default");
    assert_eq!(cm["data"], json!({"a": "b"}));
    assert!(cm["metadata"]["creationTimestamp"].as_str().is_some_and(|t| !t.starts_with("1970")), "{cm}");
    assert_eq!(api.read(&format!("{CMS}/cm1")).await, cm);

    let secrets = "/api/v1/namespaces/default/secrets";
    let s = create_protobuf(&api, secrets, include_bytes!("../fixtures/kubectl-1.32-create-secret.pb")).await;
    assert_eq!(s["metadata"]["name"], "s1");
    assert_eq!(s["data"], json!({"password": "czNjcjN0"}), "bytes become base64 of s3cr3t");
    assert_eq!(s["type"], "Opaque", "kubectl sends an empty type");

    let ns =
        create_protobuf(&api, "/api/v1/namespaces", include_bytes!("../fixtures/kubectl-1.32-create-namespace.pb"))
            .await;
    assert_eq!(ns["metadata"]["name"], "ns1");
    assert_eq!(ns["status"]["phase"], "Active");
    api.read("/api/v1/namespaces/ns1").await;
}

#[tokio::test]
async fn protobuf_deployment_service_and_job() {
    let api = Api::start().await;
    let d = create_protobuf(&api, DEPLOYS, include_bytes!("../fixtures/kubectl-1.32-create-deployment.pb")).await;
    assert_eq!(d["metadata"]["name"], "hello");
    assert_eq!(d["metadata"]["labels"], json!({"app": "hello"}));
    assert_eq!(d["spec"]["replicas"], 2, "the fixture was made with --replicas=2");
    assert_eq!(d["spec"]["selector"], json!({"matchLabels": {"app": "hello"}}));
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!((&c["name"], &c["image"]), (&json!("nginx"), &json!("nginx:1.25")));
    assert_eq!(d["metadata"]["generation"], 1);

    let svc = "/api/v1/namespaces/default/services";
    let s = create_protobuf(&api, svc, include_bytes!("../fixtures/kubectl-1.32-create-service.pb")).await;
    assert_eq!(s["metadata"]["name"], "s1");
    assert_eq!(s["spec"]["type"], "ClusterIP");
    assert_eq!(s["spec"]["selector"], json!({"app": "s1"}));
    let port = &s["spec"]["ports"][0];
    assert_eq!(
        (&port["name"], &port["port"], &port["targetPort"], &port["protocol"]),
        (&json!("80-8080"), &json!(80), &json!(8080), &json!("TCP"))
    );

    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let j = create_protobuf(&api, jobs, include_bytes!("../fixtures/kubectl-1.32-create-job.pb")).await;
    assert_eq!(j["metadata"]["name"], "j1");
    assert_eq!(j["spec"]["template"]["spec"]["containers"][0]["image"], "busybox");
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
}

#[tokio::test]
async fn protobuf_for_the_wrong_collection_is_refused() {
    let api = Api::start().await;
    let r = api
        .send(
            Method::POST,
            CMS,
            &[("content-type", PROTOBUF)],
            &include_bytes!("../fixtures/kubectl-1.32-create-deployment.pb")[..],
        )
        .await;
    r.expect_status(400, "BadRequest");
    let r = api.send(Method::POST, CMS, &[("content-type", PROTOBUF)], &b"not protobuf"[..]).await;
    r.expect_status(400, "BadRequest");
    assert_eq!(names(&api.read(CMS).await), Vec::<String>::new());
}

fn check_table_rows(table: &Value, expected: &[&str]) {
    assert_eq!(table["kind"], "Table", "{table}");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(table["columnDefinitions"][0]["name"], "Name");
    assert_eq!(table["columnDefinitions"][0]["format"], "name");
    assert!(table["metadata"]["resourceVersion"].is_string(), "{table}");
    let rows = table["rows"].as_array().expect("rows");
    let got: Vec<&str> = rows.iter().map(|r| r["object"]["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(got, expected);
    for r in rows {
        assert_eq!(r["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(r["object"]["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(r["cells"][0], r["object"]["metadata"]["name"]);
        assert_eq!(r["cells"].as_array().unwrap().len(), table["columnDefinitions"].as_array().unwrap().len());
    }
}

#[tokio::test]
async fn tables_for_lists_and_single_objects() {
    let api = Api::start().await;
    api.create(PODS, pod("a")).await;
    api.create(PODS, pod("b")).await;
    api.create(CMS, configmap("c", json!({}))).await;

    let list = api.get_with(PODS, TABLE_ACCEPT).await.expect(200);
    check_table_rows(&list, &["a", "b"]);
    let columns: Vec<&str> =
        list["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(columns.starts_with(&["Name", "Ready", "Status", "Restarts", "Age"]), "{columns:?}");
    assert_eq!(list["rows"][0]["object"]["metadata"]["namespace"], "default");

    check_table_rows(&api.get_with(&format!("{PODS}/b"), TABLE_ACCEPT).await.expect(200), &["b"]);
    check_table_rows(&api.get_with("/api/v1/pods", TABLE_ACCEPT).await.expect(200), &["a", "b"]);
    check_table_rows(&api.get_with(CMS, TABLE_ACCEPT).await.expect(200), &["c"]);
    let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;\
                   g=meta.k8s.io,application/json";
    check_table_rows(&api.get_with(CMS, kubectl).await.expect(200), &["c"]);
}

#[tokio::test]
async fn accept_negotiation_falls_back_to_json_or_refuses() {
    let api = Api::start().await;
    api.create(CMS, configmap("c", json!({}))).await;
    let r = api.get_with(&format!("{CMS}/c"), "application/vnd.kubernetes.protobuf,application/json").await;
    assert!(r.content_type().starts_with("application/json"));
    assert_eq!(r.expect(200)["kind"], "ConfigMap");
    assert_eq!(api.get_with(CMS, "*/*").await.expect(200)["kind"], "ConfigMapList");

    api.get_with(&format!("{CMS}/c"), "application/vnd.kubernetes.protobuf").await.expect_status(406, "NotAcceptable");
    api.get_with(CMS, "application/vnd.kubernetes.protobuf").await.expect_status(406, "NotAcceptable");
    api.get_with(CMS, "application/json;as=Table;v=v9;g=meta.k8s.io").await.expect_status(406, "NotAcceptable");
}
