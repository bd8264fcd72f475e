//! The `default/kubernetes` Service: its Endpoints follow the replicas that hold a master
//! lease — added when one starts, removed when one stops or its lease expires — and it is
//! created with the first address of the service range.

use std::net::SocketAddr;
use std::time::Duration;

use flotilla_apiserver::kubernetes_service::{self, MASTER_LEASES};
use flotilla_apiserver::storage::Storage;
use flotilla_apiserver::Registry;
use flotilla_store::pb::PbPutRequest;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::support::Api;

const SVC: &str = "/api/v1/namespaces/default/services/kubernetes";
const EPS: &str = "/api/v1/namespaces/default/endpoints/kubernetes";
/// Longer than a master lease's TTL plus the store's expiry check.
const DEADLINE: Duration = Duration::from_secs(30);

fn registry(api: &Api) -> Registry {
    Registry::new(Storage::new(api.node.clone()))
}

/// A replica's reconciler advertising `addr`, stopped by the returned token.
fn replica(api: &Api, addr: &str) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let addr: SocketAddr = addr.parse().unwrap();
    (cancel.clone(), tokio::spawn(kubernetes_service::run(registry(api), addr, cancel)))
}

/// The Endpoints' addresses as `ip:port`, sorted.
async fn endpoints(api: &Api) -> Vec<String> {
    let reply = api.get(EPS).await;
    if reply.status != 200 {
        return Vec::new();
    }
    let eps = reply.json();
    let mut out = Vec::new();
    for subset in eps["subsets"].as_array().into_iter().flatten() {
        for port in subset["ports"].as_array().into_iter().flatten() {
            for addr in subset["addresses"].as_array().into_iter().flatten() {
                out.push(format!("{}:{}", addr["ip"].as_str().unwrap(), port["port"]));
            }
        }
    }
    out.sort();
    out
}

async fn wait_for_endpoints(api: &Api, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let got = endpoints(api).await;
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "endpoints {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_service_gets_the_first_address_and_the_endpoints_follow_replicas() {
    let api = Api::start().await;
    let (stop_a, a) = replica(&api, "10.0.0.1:6443");
    let (_stop_b, _b) = replica(&api, "10.0.0.2:6443");
    let (_stop_c, _c) = replica(&api, "127.0.0.1:6444");
    wait_for_endpoints(&api, &["10.0.0.1:6443", "10.0.0.2:6443", "127.0.0.1:6444"]).await;
    let svc = api.read(SVC).await;
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(svc["spec"]["ports"], json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]));
    assert!(svc["spec"].get("selector").is_none(), "no selector, so the endpoints controller leaves it: {svc}");
    let eps = api.read(EPS).await;
    for subset in eps["subsets"].as_array().unwrap() {
        assert_eq!(subset["ports"][0]["name"], "https", "the proxy matches ports by name: {eps}");
    }
    // A stopping replica takes itself out.
    stop_a.cancel();
    a.await.unwrap();
    wait_for_endpoints(&api, &["10.0.0.2:6443", "127.0.0.1:6444"]).await;
}

#[tokio::test]
async fn a_replica_that_dies_leaves_when_its_lease_expires() {
    let api = Api::start().await;
    // A replica that put its lease and died: nobody renews it.
    let (lease, _) = api.node.lease_grant(0, 2).await.unwrap();
    let key = format!("{MASTER_LEASES}10.0.0.9:6443").into_bytes();
    api.node.put(PbPutRequest { key, value: b"{}".to_vec(), lease, ..Default::default() }).await.unwrap();
    let (_stop, _live) = replica(&api, "10.0.0.1:6443");
    wait_for_endpoints(&api, &["10.0.0.1:6443", "10.0.0.9:6443"]).await;
    wait_for_endpoints(&api, &["10.0.0.1:6443"]).await;
}

#[tokio::test]
async fn reconciling_unchanged_leases_writes_nothing() {
    let api = Api::start().await;
    let (_stop, _live) = replica(&api, "10.0.0.1:6443");
    wait_for_endpoints(&api, &["10.0.0.1:6443"]).await;
    let before = api.read(EPS).await["metadata"]["resourceVersion"].clone();
    kubernetes_service::reconcile(&registry(&api), 6443).await.unwrap();
    kubernetes_service::reconcile(&registry(&api), 6443).await.unwrap();
    assert_eq!(api.read(EPS).await["metadata"]["resourceVersion"], before);
}

#[tokio::test]
async fn a_users_change_to_the_service_stays_and_a_deleted_one_comes_back() {
    let api = Api::start().await;
    let (_stop, _live) = replica(&api, "10.0.0.1:6443");
    wait_for_endpoints(&api, &["10.0.0.1:6443"]).await;
    let labelled = api.merge_patch(SVC, &json!({"metadata": {"labels": {"team": "infra"}}})).await.expect(200);
    kubernetes_service::reconcile(&registry(&api), 6443).await.unwrap();
    let svc: Value = api.read(SVC).await;
    assert_eq!(svc["metadata"]["resourceVersion"], labelled["metadata"]["resourceVersion"]);
    api.delete(SVC).await.expect(200);
    kubernetes_service::reconcile(&registry(&api), 6443).await.unwrap();
    assert_eq!(api.read(SVC).await["spec"]["clusterIP"], "10.96.0.1", "re-created on its reserved address");
}
