//! Failover between API servers, outages, and simulated nodes.

mod support;

use std::time::Duration;

use flotilla_agent::node::host::SimulatedHost;
use flotilla_agent::runtime::Runtime;
use flotilla_agent::simulate::{self, Simulation};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use support::*;

const NODE: &str = "worker-1";

async fn renew_time(cluster: &Cluster) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime> {
    let leases = cluster.client.api::<Lease>(Some("kube-node-lease"));
    leases.get(NODE).await.ok()?.spec?.renew_time
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_its_api_server_dies_the_agent_continues_through_the_next() {
    let cluster = Cluster::start(2).await;
    let rt = runtime();
    cluster.start_agent(cluster.agent_config(Duration::from_secs(10)), node_config(NODE), rt.clone());
    let first_uid = create_bound(&cluster, &pod("before", "app:1", "Always"), NODE).await;
    let before = wait_pod(&cluster, "before", "Running", |p| phase(p) == "Running").await;

    cluster.relays[0].cut();
    let cut_at = renew_time(&cluster).await;

    // New work reaches the agent through the second server's watch...
    create_bound(&cluster, &pod("after", "app:1", "Always"), NODE).await;
    wait_pod(&cluster, "after", "Running", |p| phase(p) == "Running" && is_ready(p)).await;
    // ...heartbeats go on...
    wait_for("lease renewed after the cut", || async { (renew_time(&cluster).await > cut_at).then_some(()) }).await;
    // ...status writes too, and the pod that ran all along was never disturbed.
    let uid = before.metadata.uid.clone().unwrap();
    assert!(rt.exit(&uid, "app", 1));
    let p =
        wait_pod(&cluster, "before", "restart reported", |p| app_status(p).is_some_and(|c| c.restart_count == 1)).await;
    assert_eq!(app_status(&p).unwrap().last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 1);
    assert_eq!(rt.list_containers(Some(&first_uid)).await.unwrap().len(), 2, "one restart, nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_keep_running_and_restarting_through_a_control_plane_outage() {
    let cluster = Cluster::start(1).await;
    let rt = runtime();
    cluster.start_agent(cluster.agent_config(Duration::from_secs(10)), node_config(NODE), rt.clone());
    let uid = create_bound(&cluster, &pod("steady", "app:1", "Always"), NODE).await;
    wait_pod(&cluster, "steady", "Running", |p| phase(p) == "Running").await;

    cluster.relays[0].cut(); // the only API server is gone
    assert!(rt.exit(&uid, "app", 1));
    wait_for("restarted without the control plane", || async {
        let containers = rt.list_containers(Some(&uid)).await.ok()?;
        containers.iter().any(|c| c.attempt == 1 && c.is_running()).then_some(())
    })
    .await;
    let api_view = cluster.client.api::<k8s_openapi::api::core::v1::Pod>(Some("default")).get("steady").await.unwrap();
    assert_eq!(app_status(&api_view).unwrap().restart_count, 0, "no server reached meanwhile");
    assert!(rt.list_containers(Some(&uid)).await.unwrap().iter().any(|c| c.is_running()), "still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_nodes_register_and_run_their_pods() {
    let cluster = Cluster::start(1).await;
    let sim = Simulation {
        count: 3,
        prefix: "sim-".into(),
        host: SimulatedHost { cpu_millis: 8000, ..SimulatedHost::default() },
        labels: Default::default(),
        taints: vec![],
        max_pods: 20,
    };
    tokio::spawn(simulate::run(cluster.agent_config(Duration::from_secs(10)), sim, cluster.cancel.clone()));
    let nodes = cluster.client.api::<Node>(None);
    for i in 0..3 {
        let n = wait_for("simulated node registered", || async { nodes.get(&format!("sim-{i}")).await.ok() }).await;
        let status = n.status.unwrap();
        assert_eq!(status.capacity.unwrap()["cpu"].0, "8000m");
        assert_eq!(status.addresses.unwrap()[0].address, format!("172.16.0.{}", i + 1));
    }
    create_bound(&cluster, &pod("on-two", "app:1", "Always"), "sim-2").await;
    create_bound(&cluster, &pod("on-zero", "app:1", "Always"), "sim-0").await;
    let p = wait_pod(&cluster, "on-two", "Running", |p| phase(p) == "Running" && is_ready(p)).await;
    let status = p.status.unwrap();
    assert_eq!(status.host_ip.as_deref(), Some("172.16.0.3"));
    assert!(status.pod_ip.unwrap().starts_with("10.128.2."), "sim-2's own pod network");
    let p = wait_pod(&cluster, "on-zero", "Running", |p| phase(p) == "Running").await;
    assert!(p.status.unwrap().pod_ip.unwrap().starts_with("10.128.0."));
}
