//! An agent given one API server's URL learns the others from the `kubernetes` Service's
//! Endpoints (which every API server keeps its advertised address in) and keeps working
//! through them when that server dies.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Endpoints;
use support::*;

const NODE: &str = "worker-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_given_one_server_carries_on_through_the_servers_it_discovered() {
    let cluster = Cluster::start_advertised(3).await;
    let urls = cluster.urls();
    // Every server is listed before the agent starts: its first refresh then finds them all.
    let endpoints = cluster.client.api::<Endpoints>(Some("default"));
    wait_for("every API server in the kubernetes endpoints", || async {
        let e = endpoints.get("kubernetes").await.ok()?;
        let listed = flotilla_agent::api::discovery::endpoint_urls(&e, "http");
        urls.iter().all(|u| listed.contains(u)).then_some(())
    })
    .await;

    let mut config = cluster.agent_config(Duration::from_secs(10));
    config.servers = vec![urls[0].clone()];
    cluster.start_agent(config, node_config(NODE), runtime());
    create_bound(&cluster, &pod("before", "app:1", "Always"), NODE).await;
    wait_pod(&cluster, "before", "Running", |p| phase(p) == "Running").await;

    cluster.relays[0].cut(); // the only server the agent was given
    create_bound(&cluster, &pod("after", "app:1", "Always"), NODE).await;
    wait_pod(&cluster, "after", "Running", |p| phase(p) == "Running" && is_ready(p)).await;
    let leases = cluster.client.api::<Lease>(Some("kube-node-lease"));
    let renewed = || async { leases.get(NODE).await.ok()?.spec?.renew_time };
    let cut_at = renewed().await;
    wait_for("lease renewed after the cut", || async { (renewed().await > cut_at).then_some(()) }).await;
}
