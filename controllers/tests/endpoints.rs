//! The Endpoints controller over a real one-member store, driven through the typed client
//! as a user and the node agent would (pods get their IP and readiness via `pods/status`).
//!
//! - A Service selecting three ready pods gets an Endpoints object of its name with their
//!   three addresses (ip, nodeName, targetRef) and the resolved port; a pod turning not
//!   ready moves to `notReadyAddresses`; a deleted pod leaves; a pod without an IP or not
//!   selected never appears; deleting the Service deletes its Endpoints.
//! - A named `targetPort` resolves through each pod's container ports, pods with different
//!   numbers land in different subsets, and a pod lacking the name is left out.
//! - A Service without a selector is left alone: its user-made Endpoints stay as written,
//!   and none is created for it.
//!
//! The canonical form and the subset grouping are also unit-tested in `src/endpoints.rs`.

mod support;

use std::collections::BTreeMap;

use flotilla_apiserver::client::Api;
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::ApiError;
use flotilla_controllers::endpoints;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use serde_json::json;
use support::{wait_for, Solo};

fn service(name: &str, selector: Option<serde_json::Value>, target_port: serde_json::Value) -> Service {
    let mut spec = json!({"ports": [{"name": "http", "port": 80, "targetPort": target_port}]});
    if let Some(s) = selector {
        spec["selector"] = s;
    }
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": "front"}}, "spec": spec}))
        .expect("service")
}

fn pod(name: &str, app: &str, ports: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx", "ports": ports}]},
    }))
    .expect("pod")
}

/// Give pod `name` an IP and a Ready condition through the status subresource.
async fn set_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = serde_json::from_value(json!({
        "phase": "Running",
        "podIP": ip,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
    }))
    .expect("status");
    support::report(pods, name, status).await.expect("update pod status");
}

/// Per subset: (port numbers, ready IPs, not-ready IPs).
type Shape = Vec<(Vec<i32>, Vec<String>, Vec<String>)>;

fn shape(ep: &Endpoints) -> Shape {
    let ips = |a: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
        a.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>()
    };
    ep.subsets
        .iter()
        .flatten()
        .map(|s| (s.ports.iter().flatten().map(|p| p.port).collect(), ips(&s.addresses), ips(&s.not_ready_addresses)))
        .collect()
}

/// Pods, Services and Endpoints of `default`.
fn apis(solo: &Solo) -> (Api<Pod>, Api<Service>, Api<Endpoints>) {
    let ns = Some("default");
    (solo.client.api(ns), solo.client.api(ns), solo.client.api(ns))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Wait until Endpoints `name` has exactly `want`; returns it.
async fn endpoints_shaped(api: &Api<Endpoints>, name: &str, want: Shape) -> Endpoints {
    let what = format!("endpoints {name} = {want:?}");
    wait_for(&what, || async {
        let ep = api.get(name).await.ok()?;
        (shape(&ep) == want).then_some(ep)
    })
    .await
}

#[tokio::test]
async fn endpoints_follow_readiness_and_membership_and_go_with_the_service() {
    let solo = Solo::start().await;
    let (pods, svcs, eps) = apis(&solo);
    solo.lead(endpoints::component());
    svcs.create(&service("web", Some(json!({"app": "web"})), json!(8080))).await.expect("create service");
    for (i, name) in ["web-a", "web-b", "web-c"].into_iter().enumerate() {
        pods.create(&pod(name, "web", json!([]))).await.expect("create pod");
        set_status(&pods, name, &format!("10.1.0.{}", i + 1), true).await;
    }
    // Not listed: a selected pod without an IP, and a ready pod the selector does not match.
    pods.create(&pod("web-pending", "web", json!([]))).await.expect("pending pod");
    pods.create(&pod("db-a", "db", json!([]))).await.expect("other pod");
    set_status(&pods, "db-a", "10.1.0.9", true).await;

    let all = strings(&["10.1.0.1", "10.1.0.2", "10.1.0.3"]);
    let ep = endpoints_shaped(&eps, "web", vec![(vec![8080], all, vec![])]).await;
    let subset = &ep.subsets.as_ref().expect("subsets")[0];
    let first = &subset.addresses.as_ref().expect("addresses")[0];
    assert_eq!(first.node_name.as_deref(), Some("node-1"));
    let target = first.target_ref.as_ref().expect("targetRef");
    let pod_a = pods.get("web-a").await.expect("get web-a");
    assert_eq!(
        (target.kind.as_deref(), target.namespace.as_deref(), target.name.as_deref(), target.uid.as_ref()),
        (Some("Pod"), Some("default"), Some("web-a"), pod_a.metadata.uid.as_ref())
    );
    let port = &subset.ports.as_ref().expect("ports")[0];
    assert_eq!((port.name.as_deref(), port.protocol.as_deref()), (Some("http"), Some("TCP")));
    let labels = ep.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("tier").map(String::as_str), Some("front"), "service labels copied");

    set_status(&pods, "web-b", "10.1.0.2", false).await;
    endpoints_shaped(&eps, "web", vec![(vec![8080], strings(&["10.1.0.1", "10.1.0.3"]), strings(&["10.1.0.2"]))]).await;

    pods.delete("web-c", &DeleteOptions { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .expect("delete pod");
    endpoints_shaped(&eps, "web", vec![(vec![8080], strings(&["10.1.0.1"]), strings(&["10.1.0.2"]))]).await;

    svcs.delete("web", &DeleteOptions::default()).await.expect("delete service");
    wait_for("the endpoints deleted with the service", || async {
        matches!(eps.get("web").await, Err(ApiError::NotFound(_))).then_some(())
    })
    .await;
}

#[tokio::test]
async fn named_target_ports_resolve_through_each_pods_container_ports() {
    let solo = Solo::start().await;
    let (pods, svcs, eps) = apis(&solo);
    solo.lead(endpoints::component());
    svcs.create(&service("api", Some(json!({"app": "api"})), json!("serve"))).await.expect("create service");
    let named = |n: i32| json!([{"name": "serve", "containerPort": n}]);
    pods.create(&pod("api-a", "api", named(8080))).await.expect("pod a");
    pods.create(&pod("api-b", "api", named(9090))).await.expect("pod b");
    pods.create(&pod("api-c", "api", json!([{"name": "other", "containerPort": 7070}]))).await.expect("pod c");
    set_status(&pods, "api-a", "10.2.0.1", true).await;
    set_status(&pods, "api-b", "10.2.0.2", false).await;
    set_status(&pods, "api-c", "10.2.0.3", true).await;

    endpoints_shaped(
        &eps,
        "api",
        vec![(vec![8080], strings(&["10.2.0.1"]), vec![]), (vec![9090], vec![], strings(&["10.2.0.2"]))],
    )
    .await;
}

#[tokio::test]
async fn a_service_without_a_selector_is_left_alone() {
    let solo = Solo::start().await;
    let (pods, svcs, eps) = apis(&solo);
    svcs.create(&service("manual", None, json!(8080))).await.expect("selectorless service");
    svcs.create(&service("bare", None, json!(8080))).await.expect("selectorless service without endpoints");
    let mine: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "manual", "labels": {"owner": "me"}},
        "subsets": [{"addresses": [{"ip": "192.168.7.7"}], "ports": [{"port": 5432}]}],
    }))
    .expect("endpoints");
    let written = eps.create(&mine).await.expect("user endpoints");
    // A pod that would match, were the selector `app: web`.
    pods.create(&pod("web-a", "web", json!([]))).await.expect("pod");
    set_status(&pods, "web-a", "10.3.0.1", true).await;

    solo.lead(endpoints::component());
    // A Service with a selector, created last, proves the controller has run past the
    // others before the selectorless ones are checked.
    svcs.create(&service("web", Some(json!({"app": "web"})), json!(8080))).await.expect("service");
    endpoints_shaped(&eps, "web", vec![(vec![8080], strings(&["10.3.0.1"]), vec![])]).await;
    // And a change to the user's Endpoints is not reverted either.
    let mut edited = eps.get("manual").await.expect("get manual");
    edited.metadata.labels = Some(BTreeMap::from([("owner".to_string(), "still-me".to_string())]));
    let edited = eps.update("manual", &edited).await.expect("edit manual");
    pods.create(&pod("web-b", "web", json!([]))).await.expect("second pod");
    set_status(&pods, "web-b", "10.3.0.2", true).await;
    endpoints_shaped(&eps, "web", vec![(vec![8080], strings(&["10.3.0.1", "10.3.0.2"]), vec![])]).await;

    let now = eps.get("manual").await.expect("get manual");
    assert_eq!(now.metadata.resource_version, edited.metadata.resource_version, "user endpoints untouched");
    assert_eq!(now.subsets, written.subsets);
    assert!(matches!(eps.get("bare").await, Err(ApiError::NotFound(_))), "no endpoints created for `bare`");
}
