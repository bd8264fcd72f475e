//! Service address allocation: cluster IPs and node ports are unique, in range, kept across
//! updates and released with their Service — all inside the Service's own store Txn.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::support::Api;

const SVCS: &str = "/api/v1/namespaces/default/services";

fn service(name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name}, "spec": spec})
}

fn in_default_range(ip: &str) -> bool {
    let ip: Ipv4Addr = ip.parse().expect("an IPv4 address");
    let o = ip.octets();
    o[0] == 10 && o[1] == 96 && !(o[2] == 0 && o[3] <= 1) && !(o[2] == 255 && o[3] == 255)
}

#[tokio::test]
async fn every_service_gets_its_own_cluster_ip_in_range() {
    let api = Api::start().await;
    let mut seen = HashSet::new();
    for i in 0..20 {
        let svc = api.create(SVCS, service(&format!("s{i}"), json!({"ports": [{"port": 80}]}))).await;
        let ip = svc["spec"]["clusterIP"].as_str().expect("a cluster IP").to_string();
        assert!(in_default_range(&ip), "{ip}");
        assert_eq!(svc["spec"]["clusterIPs"], json!([ip]));
        assert!(seen.insert(ip.clone()), "{ip} handed out twice");
        assert_eq!(api.read(&format!("{SVCS}/s{i}")).await["spec"]["clusterIP"], ip.as_str());
    }
}

#[tokio::test]
async fn a_taken_address_is_refused_until_its_service_is_deleted() {
    let api = Api::start().await;
    api.create(SVCS, service("first", json!({"clusterIP": "10.96.7.7", "ports": [{"port": 80}]}))).await;
    let s = api
        .post(SVCS, &service("second", json!({"clusterIP": "10.96.7.7", "ports": [{"port": 80}]})))
        .await
        .expect_status(422, "Invalid");
    assert!(s["message"].as_str().unwrap().contains("provided IP is already allocated"), "{s}");
    api.get(&format!("{SVCS}/second")).await.expect_status(404, "NotFound");
    api.delete(&format!("{SVCS}/first")).await.expect(200);
    let second = api.create(SVCS, service("second", json!({"clusterIP": "10.96.7.7", "ports": [{"port": 80}]}))).await;
    assert_eq!(second["spec"]["clusterIP"], "10.96.7.7");
}

#[tokio::test]
async fn out_of_range_addresses_and_ports_are_invalid() {
    let api = Api::start().await;
    api.post(SVCS, &service("far", json!({"clusterIP": "192.168.1.1", "ports": [{"port": 80}]})))
        .await
        .expect_status(422, "Invalid");
    api.post(SVCS, &service("low", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})))
        .await
        .expect_status(422, "Invalid");
}

#[tokio::test]
async fn node_ports_are_allocated_unique_and_released() {
    let api = Api::start().await;
    let a = api
        .create(
            SVCS,
            service(
                "a",
                json!({"type": "NodePort", "ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}),
            ),
        )
        .await;
    let ports: Vec<i64> =
        a["spec"]["ports"].as_array().unwrap().iter().map(|p| p["nodePort"].as_i64().expect("a node port")).collect();
    assert!(ports.iter().all(|p| (30000..=32767).contains(p)) && ports[0] != ports[1], "{ports:?}");
    let clash = service("b", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": ports[0]}]}));
    let s = api.post(SVCS, &clash).await.expect_status(422, "Invalid");
    assert!(s["message"].as_str().unwrap().contains("provided port is already allocated"), "{s}");
    api.delete(&format!("{SVCS}/a")).await.expect(200);
    api.create(SVCS, clash).await;
}

#[tokio::test]
async fn a_replace_keeps_the_address_and_a_type_change_allocates_ports() {
    let api = Api::start().await;
    let svc = api.create(SVCS, service("web", json!({"ports": [{"port": 80}]}))).await;
    let ip = svc["spec"]["clusterIP"].clone();
    // `kubectl replace` of a manifest without the allocated address keeps it.
    let replaced =
        api.put(&format!("{SVCS}/web"), &service("web", json!({"ports": [{"port": 8080}]}))).await.expect(200);
    assert_eq!(replaced["spec"]["clusterIP"], ip);
    let node_port = api.merge_patch(&format!("{SVCS}/web"), &json!({"spec": {"type": "NodePort"}})).await.expect(200);
    assert!(node_port["spec"]["ports"][0]["nodePort"].as_i64().is_some_and(|p| p >= 30000), "{node_port}");
    assert_eq!(node_port["spec"]["clusterIP"], ip);
}

#[tokio::test]
async fn headless_and_external_name_services_get_no_address() {
    let api = Api::start().await;
    let headless = api.create(SVCS, service("h", json!({"clusterIP": "None", "ports": [{"port": 80}]}))).await;
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let ext = api.create(SVCS, service("x", json!({"type": "ExternalName", "externalName": "example.org"}))).await;
    assert!(ext["spec"].get("clusterIP").is_none_or(|ip| ip == "" || ip.is_null()), "{ext}");
}
