//! Objects every cluster has from the start: the `default`, `kube-system`,
//! `kube-public` and `kube-node-lease` namespaces.
//!
//! Every replica runs this at start-up; creation is create-if-absent, so replicas racing
//! each other (or a restart) create each namespace exactly once and never touch one that
//! exists, even one a user has changed.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::registry::{Registry, WriteOptions};
use crate::resources;

pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Pause between attempts while the store has no leader yet.
const RETRY: Duration = Duration::from_millis(250);

/// Create the system namespaces, retrying until the store accepts writes or `cancel` fires.
pub async fn ensure_system_namespaces(registry: Registry, cancel: CancellationToken) {
    let res = resources::lookup("", "v1", "namespaces").expect("namespaces are served");
    for name in SYSTEM_NAMESPACES {
        loop {
            let obj = json!({"metadata": {"name": name}});
            match registry.create(res, None, obj, &WriteOptions::default()).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => break,
                Err(e) => {
                    tracing::debug!(namespace = name, error = %e, "system namespace not created yet; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        }
    }
    tracing::info!("system namespaces present");
}
