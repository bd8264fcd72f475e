//! Harness for controller tests over a real store: a one-member `StoreNode` in a temporary
//! directory, the registry over it and the in-process client; components started as the
//! leader starts them; the test's own informers that record what they see; condition waits
//! with deadlines; the kubelet's part (pod status writes) that no node agent plays here;
//! and small object builders.
//!
//! The store is real (Raft, MVCC, watches, compaction), so informers here meet the same
//! list/watch behaviour as on a replica. Each test starts its own [`Solo`]; everything a test
//! starts through it (components, informers) stops when the Solo is dropped, even when the
//! test panics.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::{Api, Client};
use flotilla_apiserver::registry::ListOptions;
use flotilla_apiserver::{ApiError, Registry};
use flotilla_controllers::leadership::{Component, LeaderContext};
use flotilla_controllers::runtime::{Change, Informer, InformerConfig, Object, Store};
use flotilla_store::StoreNode;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a condition a test waits for may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How many times the kubelet's part tries a status write that loses a race with another
/// writer (a controller marking the pod, a second report) before giving up: a kubelet's
/// write races only the few controllers that write pod status, so this many lost races in a
/// row means the pod is gone or something is wrong.
pub const REPORT_ATTEMPTS: usize = 50;

/// A one-member store with the API registry and client over it.
pub struct Solo {
    pub node: Arc<StoreNode>,
    pub registry: Registry,
    pub client: Client,
    /// Cancelled when the Solo is dropped: the parent of every task started through it.
    pub cancel: CancellationToken,
    /// Declared last so the directory outlives everything that reads from it.
    _dir: tempfile::TempDir,
}

impl Drop for Solo {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Solo {
    /// Open the store, wait until it leads, create the system namespaces.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, registry) = flotilla_apiserver::testing::solo_registry(dir.path()).await;
        let client = Client::new(registry.clone());
        Self { node, registry, client, cancel: CancellationToken::new(), _dir: dir }
    }

    /// Run `component` as a leader runs it (its own context, term 1), until the returned
    /// token is cancelled (a leader change, seen from the component) or the Solo dropped.
    pub fn lead(&self, component: Component) -> (CancellationToken, JoinHandle<()>) {
        let cancel = self.cancel.child_token();
        let ctx = LeaderContext::new(self.client.clone(), 1, "test", cancel.clone());
        (cancel, tokio::spawn(component(ctx)))
    }
}

/// Poll `probe` until it yields a value; panic naming `what` after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    flotilla_store::testing::wait_for(DEADLINE, what, probe).await
}

/// Wait until `cond` holds; panic naming `what` after [`DEADLINE`].
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, || std::future::ready(cond().then_some(()))).await
}

/// The test's own cache of every `K`, synced before it is returned and kept current until
/// the Solo is dropped. Each change is handed to `on_change`, in order, with the cache it
/// was applied to: the test's record of every state it saw, to check invariants on.
pub async fn observe<K: Object>(
    solo: &Solo,
    mut on_change: impl FnMut(Change<K>, &Store<K>) + Send + 'static,
) -> Store<K> {
    let informer = Informer::<K>::new(&solo.client, InformerConfig::default());
    let store = informer.store();
    let (mut changes, cache) = (store.subscribe(), store.clone());
    tokio::spawn(async move {
        while let Some(change) = changes.recv().await {
            on_change(change, &cache);
        }
    });
    tokio::spawn(informer.run(solo.cancel.clone()));
    tokio::time::timeout(DEADLINE, store.wait_synced()).await.expect("the test's cache synced");
    store
}

/// Change object `name` with `f` and write it back, again from a fresh read whenever the
/// write loses a race (a controller's status write); the object as written.
pub async fn edit<K>(api: &Api<K>, name: &str, f: impl Fn(&mut K)) -> K
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned,
{
    wait_for(&format!("{name} edited"), || async {
        let mut obj = api.get(name).await.ok()?;
        f(&mut obj);
        match api.update(name, &obj).await {
            Ok(written) => Some(written),
            Err(ApiError::Conflict(_)) => None,
            Err(e) => panic!("update {name}: {e}"),
        }
    })
    .await
}

/// The Events of namespace `ns`.
pub async fn events(client: &Client, ns: &str) -> Vec<Event> {
    client.api::<Event>(Some(ns)).list(&ListOptions::default()).await.expect("list events").0
}

/// What a kubelet reports for a started pod whose containers passed their readiness checks:
/// Running, and Ready since now.
pub fn running_ready() -> PodStatus {
    PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(jiff::Timestamp::now())),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// Play the kubelet: write `status` to pod `name` through `pods/status`, from a fresh read
/// after each lost race (at most [`REPORT_ATTEMPTS`] tries); the pod as written, or None once
/// it is gone.
pub async fn report(api: &Api<Pod>, name: &str, status: PodStatus) -> Option<Pod> {
    for _ in 0..REPORT_ATTEMPTS {
        let mut pod = api.get(name).await.ok()?;
        pod.status = Some(status.clone());
        if let Ok(written) = api.update_status(name, &pod).await {
            return Some(written);
        }
    }
    None
}

/// Play the kubelet: report pod `name` [`running_ready`].
pub async fn mark_ready(api: &Api<Pod>, name: &str) -> Option<Pod> {
    report(api, name, running_ready()).await
}

/// Whether the pod's Ready condition is True (the test's own reading, not the controllers').
pub fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A ConfigMap `ns/name` with `data` and `labels`.
pub fn configmap(ns: &str, name: &str, data: &[(&str, &str)], labels: &[(&str, &str)]) -> ConfigMap {
    let map = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: (!labels.is_empty()).then(|| map(labels)),
            ..Default::default()
        },
        data: Some(map(data)),
        ..Default::default()
    }
}

/// A ConfigMap's `data[key]`.
pub fn datum(cm: &ConfigMap, key: &str) -> Option<String> {
    cm.data.as_ref()?.get(key).cloned()
}
