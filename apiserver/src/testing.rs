//! Test support for the crates built on the API server: a one-member store with a registry
//! whose system namespaces exist. For tests only: it panics instead of returning errors.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flotilla_store::StoreNode;
use tokio_util::sync::CancellationToken;

use crate::storage::Storage;
use crate::Registry;

/// How long the store and the system namespaces may take to appear.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A leading one-member store under `dir`, and an (unfenced) registry over it in which the
/// system namespaces exist.
pub async fn solo_registry(dir: &Path) -> (Arc<StoreNode>, Registry) {
    let node = flotilla_store::testing::solo(dir).await;
    let registry = Registry::new(Storage::new(node.clone()));
    tokio::time::timeout(
        START_DEADLINE,
        crate::bootstrap::ensure_bootstrap_objects(registry.clone(), CancellationToken::new()),
    )
    .await
    .expect("system namespaces created in time");
    (node, registry)
}
