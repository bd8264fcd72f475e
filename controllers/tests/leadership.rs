//! Leadership over a real in-process 3-replica store: exactly the Raft leader runs the
//! components, the controllers Lease names it, a cut-off leader stops its components and a
//! new leader starts them, and a deposed leader's writes fail and never apply.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::registry::allocator::ServiceRanges;
use flotilla_apiserver::storage::Storage;
use flotilla_apiserver::Registry;
use flotilla_controllers::leadership::{Component, LeaderContext, Leadership, LEASE_NAME, LEASE_NAMESPACE};
use flotilla_store::testing::{wait_for, Cluster};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use tokio_util::sync::CancellationToken;

/// Per replica: the context of its running component (None when not running).
type Slots = Arc<Mutex<Vec<Option<LeaderContext>>>>;

fn recorder(slots: Slots, i: usize) -> Component {
    Arc::new(move |ctx: LeaderContext| {
        let slots = slots.clone();
        Box::pin(async move {
            slots.lock().unwrap()[i] = Some(ctx.clone());
            ctx.cancel.cancelled().await;
            slots.lock().unwrap()[i] = None;
        })
    })
}

fn running(slots: &Slots) -> Vec<usize> {
    slots.lock().unwrap().iter().enumerate().filter(|(_, s)| s.is_some()).map(|(i, _)| i).collect()
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_runs_controllers_and_a_deposed_one_is_fenced() {
    let c = Cluster::start(3, |_| {}).await;
    // The API servers create the system namespaces at start-up; this cluster has none.
    let first = Registry::new(Storage::new(c.node(0).clone()));
    flotilla_apiserver::bootstrap::ensure_bootstrap_objects(first, CancellationToken::new()).await;
    let slots: Slots = Arc::new(Mutex::new(vec![None, None, None]));
    let cancel = CancellationToken::new();
    for i in 0..3 {
        let l = Leadership::new(c.node(i).clone(), format!("r{i}"), ServiceRanges::default())
            .with("recorder", recorder(slots.clone(), i));
        tokio::spawn(l.run(cancel.clone()));
    }
    let leader = c.leader().await;
    wait_for(Duration::from_secs(10), "the leader runs the components, alone", || async {
        (running(&slots) == vec![leader]).then_some(())
    })
    .await;
    let reader = Client::new(Registry::new(Storage::new(c.node(leader).clone())));
    let leases = reader.api::<Lease>(Some(LEASE_NAMESPACE));
    wait_for(Duration::from_secs(10), "the lease names the leader", || async {
        let l = leases.get(LEASE_NAME).await.ok()?;
        (l.spec?.holder_identity? == format!("r{leader}")).then_some(())
    })
    .await;

    let old = slots.lock().unwrap()[leader].clone().expect("the leader's context");
    c.isolate(leader);
    let rest: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new = c.leader_among(&rest).await;
    wait_for(Duration::from_secs(10), "the components move to the new leader", || async {
        (running(&slots) == vec![new]).then_some(())
    })
    .await;
    assert!(old.cancel.is_cancelled(), "the cut-off leader's components were told to stop");
    let stale = old.client.api::<ConfigMap>(Some("default")).create(&configmap("stale")).await;
    assert!(stale.is_err(), "a deposed leader's write fails, got {stale:?}");

    c.heal();
    let on_new = Client::new(Registry::new(Storage::new(c.node(new).clone())));
    let leases = on_new.api::<Lease>(Some(LEASE_NAMESPACE));
    wait_for(Duration::from_secs(10), "the lease names the new leader", || async {
        let l = leases.get(LEASE_NAME).await.ok()?;
        (l.spec?.holder_identity? == format!("r{new}")).then_some(())
    })
    .await;
    let cms = on_new.api::<ConfigMap>(Some("default"));
    assert!(cms.get("stale").await.is_err(), "the stale write never applied");
    cancel.cancel();
    c.stop_all().await;
}
