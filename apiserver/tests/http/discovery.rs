//! Discovery, OpenAPI and health: the documents kubectl and client libraries read before
//! they send any resource request (kubectl-api.md §2, §4), and the probes.

use serde_json::Value;

use super::support::Api;

/// The exact Accept header kubectl 1.32 sends on `/api` and `/apis`.
const KUBECTL_DISCOVERY_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,\
     application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn find<'a>(list: &'a Value, field: &str, key: &str, name: &str) -> &'a Value {
    list[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {list}"))
        .iter()
        .find(|r| r[key] == name)
        .unwrap_or_else(|| panic!("{name} missing from {list}"))
}

#[tokio::test]
async fn version_reports_minor_32_with_and_without_a_trailing_slash() {
    let api = Api::start().await;
    for uri in ["/version", "/version/", "/version?timeout=5s"] {
        let v = api.get(uri).await.expect(200);
        assert_eq!(v["major"], "1", "{uri}");
        assert_eq!(v["minor"], "32", "{uri}");
        assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.32."), "{v}");
    }
}

#[tokio::test]
async fn legacy_discovery_lists_versions_and_groups() {
    let api = Api::start().await;
    let r = api.get("/api").await;
    assert!(r.content_type().starts_with("application/json"), "{}", r.content_type());
    let versions = r.expect(200);
    assert_eq!(versions["kind"], "APIVersions");
    assert_eq!(versions["versions"], serde_json::json!(["v1"]));
    assert!(versions["serverAddressByClientCIDRs"][0]["serverAddress"].is_string());

    let groups = api.get("/apis").await.expect(200);
    assert_eq!(groups["kind"], "APIGroupList");
    let apps = find(&groups, "groups", "name", "apps");
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    find(&groups, "groups", "name", "policy");
}

#[tokio::test]
async fn aggregated_discovery_answers_kubectls_accept_with_the_v2_content_type() {
    let api = Api::start().await;
    let r = api.get_with("/api", KUBECTL_DISCOVERY_ACCEPT).await;
    assert_eq!(r.content_type(), AGGREGATED_V2);
    let core = r.expect(200);
    assert_eq!(core["kind"], "APIGroupDiscoveryList");
    assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
    assert_eq!(core["items"].as_array().unwrap().len(), 1);
    assert_eq!(core["items"][0]["metadata"]["name"], "");
    let v1 = &core["items"][0]["versions"][0];
    assert_eq!(v1["version"], "v1");
    let pods = find(v1, "resources", "resource", "pods");
    assert_eq!(pods["scope"], "Namespaced");
    assert_eq!(pods["shortNames"], serde_json::json!(["po"]));

    let r = api.get_with("/apis", KUBECTL_DISCOVERY_ACCEPT).await;
    assert_eq!(r.content_type(), AGGREGATED_V2);
    let named = r.expect(200);
    let items = named["items"].as_array().unwrap();
    assert!(items.iter().all(|g| g["metadata"]["name"] != ""), "the core group belongs to /api only");
    let apps = items.iter().find(|g| g["metadata"]["name"] == "apps").expect("apps");
    let deployments = find(&apps["versions"][0], "resources", "resource", "deployments");
    let scale = find(deployments, "subresources", "subresource", "scale");
    assert_eq!(scale["responseKind"], serde_json::json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
}

#[tokio::test]
async fn core_v1_lists_pods_eviction_in_group_policy() {
    let api = Api::start().await;
    let list = api.get("/api/v1").await.expect(200);
    assert_eq!(list["kind"], "APIResourceList");
    assert_eq!(list["groupVersion"], "v1");
    let eviction = find(&list, "resources", "name", "pods/eviction");
    assert_eq!(eviction["group"], "policy");
    assert_eq!(eviction["version"], "v1");
    assert_eq!(eviction["kind"], "Eviction");
    assert_eq!(eviction["verbs"], serde_json::json!(["create"]));
    let ns = find(&list, "resources", "name", "namespaces");
    assert_eq!(ns["namespaced"], false);
    assert_eq!(ns["shortNames"], serde_json::json!(["ns"]));
}

#[tokio::test]
async fn apps_v1_lists_deployments_and_their_scale() {
    let api = Api::start().await;
    let list = api.get("/apis/apps/v1").await.expect(200);
    assert_eq!(list["groupVersion"], "apps/v1");
    let d = find(&list, "resources", "name", "deployments");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["namespaced"], true);
    assert_eq!(d["shortNames"], serde_json::json!(["deploy"]));
    let scale = find(&list, "resources", "name", "deployments/scale");
    assert_eq!((&scale["group"], &scale["kind"]), (&"autoscaling".into(), &"Scale".into()));

    let group = api.get("/apis/apps").await.expect(200);
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(group["name"], "apps");
}

#[tokio::test]
async fn openapi_v3_index_points_at_documents_with_patch_operations() {
    let api = Api::start().await;
    let index = api.get("/openapi/v3").await.expect(200);
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().expect("apps/v1 listed").to_string();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    assert!(index["paths"]["api/v1"]["serverRelativeURL"].is_string());

    let doc = api.get(&url).await.expect(200);
    let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(item["x-kubernetes-group-version-kind"]["kind"], "Deployment");
    let params: Vec<&str> =
        item["parameters"].as_array().expect("parameters").iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(params.contains(&"fieldValidation"), "{params:?}");
    assert!(doc["components"]["schemas"].is_object());

    api.get("/openapi/v3/apis/nope/v9").await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn health_endpoints_answer_ok() {
    let api = Api::start().await;
    for uri in ["/healthz", "/livez", "/readyz"] {
        let r = api.get(uri).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.text());
        assert_eq!(r.text(), "ok", "{uri}");
    }
    let verbose = api.get("/readyz?verbose").await;
    assert_eq!(verbose.status, 200);
    assert!(verbose.text().contains("[+]etcd ok"), "{}", verbose.text());
    assert!(verbose.text().ends_with("readyz check passed\n"), "{}", verbose.text());
}

#[tokio::test]
async fn unknown_paths_are_404_status() {
    let api = Api::start().await;
    for uri in ["/nothing/here", "/apis/nope/v1", "/api/v1/widgets", "/apis/apps/v1/namespaces/default/widgets"] {
        let s = api.get(uri).await.expect_status(404, "NotFound");
        assert_eq!(s["message"], "the server could not find the requested resource", "{uri}");
    }
}
