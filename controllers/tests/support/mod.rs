//! Harness for controller tests over a real store: a one-member `StoreNode` in a temporary
//! directory, the registry over it and the in-process client, plus condition waits with
//! deadlines and small object builders.
//!
//! The store is real (Raft, MVCC, watches, compaction), so informers here meet the same
//! list/watch behaviour as on a replica. Each test starts its own [`Solo`].

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::Registry;
use flotilla_store::StoreNode;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// How long a condition a test waits for may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A one-member store with the API registry and client over it.
pub struct Solo {
    pub node: Arc<StoreNode>,
    pub registry: Registry,
    pub client: Client,
    /// Declared last so the directory outlives everything that reads from it.
    _dir: tempfile::TempDir,
}

impl Solo {
    /// Open the store, wait until it leads, create the system namespaces.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, registry) = flotilla_apiserver::testing::solo_registry(dir.path()).await;
        let client = Client::new(registry.clone());
        Self { node, registry, client, _dir: dir }
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
