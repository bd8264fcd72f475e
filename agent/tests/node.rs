//! Node registration and heartbeats against a real API server over HTTP.

mod support;

use std::time::Duration;

use flotilla_agent::config::{parse_labels, parse_taints};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_registers_with_labels_taints_and_capacity_and_renews_its_lease() {
    let cluster = Cluster::start(1).await;
    let mut node = node_config("worker-1");
    node.labels = parse_labels("zone=a,tier=web").unwrap();
    node.taints = parse_taints("dedicated=batch:NoSchedule").unwrap();
    node.max_pods = 42;
    cluster.start_agent(cluster.agent_config(Duration::from_secs(10)), node, runtime());

    let nodes = cluster.client.api::<Node>(None);
    let n = wait_for("node registered and Ready", || async {
        let n = nodes.get("worker-1").await.ok()?;
        let conditions = n.status.as_ref()?.conditions.as_ref()?;
        conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(n)
    })
    .await;
    let labels = n.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], "worker-1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert!(labels.contains_key("kubernetes.io/arch"));
    assert_eq!((labels["zone"].as_str(), labels["tier"].as_str()), ("a", "web"));
    let taint = &n.spec.as_ref().unwrap().taints.as_ref().unwrap()[0];
    assert_eq!(
        (taint.key.as_str(), taint.value.as_deref(), taint.effect.as_str()),
        ("dedicated", Some("batch"), "NoSchedule")
    );
    let status = n.status.as_ref().unwrap();
    let capacity = status.capacity.as_ref().unwrap();
    assert_eq!(capacity["pods"].0, "42");
    assert_eq!(capacity["cpu"].0, "4000m");
    assert!(capacity.contains_key("memory") && capacity.contains_key("ephemeral-storage"));
    assert_eq!(status.allocatable, status.capacity);
    let addresses = status.addresses.as_ref().unwrap();
    assert!(addresses.iter().any(|a| a.type_ == "InternalIP" && a.address == "192.0.2.10"));
    let info = status.node_info.as_ref().unwrap();
    assert_eq!(info.kubelet_version, "v1.32.0-flotilla");
    assert!(info.container_runtime_version.starts_with("fake://"));
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(status.conditions.as_ref().unwrap().iter().any(|c| c.type_ == t && c.status == "False"), "{t}");
    }

    let leases = cluster.client.api::<Lease>(Some("kube-node-lease"));
    let renew_time = |l: &Lease| l.spec.as_ref().and_then(|s| s.renew_time.clone());
    let first = wait_for("lease created", || async { leases.get("worker-1").await.ok() }).await;
    let spec = first.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("worker-1"));
    assert_eq!(spec.lease_duration_seconds, Some(5));
    let owner = &first.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), Some(&owner.uid)), ("Node", n.metadata.uid.as_ref()));
    wait_for("lease renewed", || async {
        let l = leases.get("worker-1").await.ok()?;
        (renew_time(&l) > renew_time(&first)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_updates_its_existing_node_and_keeps_other_labels() {
    let cluster = Cluster::start(1).await;
    let config = cluster.agent_config(Duration::from_secs(10));
    let first = cluster.start_agent(config.clone(), node_config("worker-2"), runtime());
    let nodes = cluster.client.api::<Node>(None);
    wait_for("node registered", || async { nodes.get("worker-2").await.ok() }).await;
    first.cancel();

    // Someone labels the node meanwhile (racing the first agent's last status write, hence
    // the retry); the new agent adds its own labels without dropping it.
    wait_for("node labelled", || async {
        let mut n = nodes.get("worker-2").await.ok()?;
        n.metadata.labels.as_mut()?.insert("owner".into(), "ops".into());
        nodes.update("worker-2", &n).await.ok()
    })
    .await;
    let mut node = node_config("worker-2");
    node.labels = parse_labels("zone=b").unwrap();
    // Taints apply at registration only, as the kubelet's --register-with-taints.
    node.taints = parse_taints("late=x:NoSchedule").unwrap();
    cluster.start_agent(config, node, runtime());
    let n = wait_for("labels updated", || async {
        let n = nodes.get("worker-2").await.ok()?;
        n.metadata.labels.as_ref()?.get("zone").is_some().then_some(n)
    })
    .await;
    let labels = n.metadata.labels.unwrap();
    assert_eq!((labels["zone"].as_str(), labels["owner"].as_str()), ("b", "ops"));
    let taints = n.spec.and_then(|s| s.taints).unwrap_or_default();
    assert!(taints.iter().all(|t| t.key != "late"), "a restart added a taint: {taints:?}");
}
