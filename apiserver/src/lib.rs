//! `flotilla-apiserver`: the Kubernetes REST API over the replicated store.
//!
//! Layers, bottom up:
//! - [`storage`]: objects as JSON under `/registry/...` keys, CAS writes on mod revisions.
//! - [`registry`]: Kubernetes semantics — defaulting ([`defaults`]), validation
//!   ([`validation`]), server-owned metadata, optimistic concurrency, patches ([`patch`]),
//!   deletion with finalizers, subresources; [`watch`] turns store watches into
//!   Kubernetes watch events filtered by [`selector`]s.
//! - [`http`]: the REST surface kubectl and client libraries use — discovery
//!   ([`discovery`], [`openapi`]), resources, Tables ([`table`]), protobuf request bodies
//!   ([`protobuf`]), errors as `metav1.Status` ([`error`]).
//! - [`client`]: the same registry as a typed in-process client for the scheduler and
//!   controllers.
//!
//! [`resources`] is the one table of what is served.

pub mod authz;
pub mod bootstrap;
pub mod client;
pub mod defaults;
pub mod discovery;
pub mod encryption;
pub mod error;
pub mod http;
pub mod kubernetes_service;
pub mod listener;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod resources;
pub mod selector;
pub mod serviceaccount;
pub mod storage;
pub mod table;
pub mod testing;
pub mod validation;
pub mod watch;

use std::sync::Arc;

use flotilla_store::StoreNode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, ApiResult};
pub use http::ApiConfig;
pub use registry::Registry;

/// The registry of a replica: its store node, where Services get their addresses, and the
/// keys that seal Secrets at rest (if any).
pub fn registry(
    node: Arc<StoreNode>,
    ranges: registry::allocator::ServiceRanges,
    enc: Option<Arc<encryption::Encryption>>,
) -> Registry {
    Registry::with_ranges(storage::Storage::new(node).with_encryption(enc), ranges)
}

/// Serve the Kubernetes API on `listener` until `cancel` fires; also makes sure the system
/// namespaces exist and, when the config advertises an address, keeps this replica in the
/// `kubernetes` Service's Endpoints (taking it out again before returning).
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    config: ApiConfig,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    tokio::spawn(bootstrap::ensure_bootstrap_objects(registry.clone(), cancel.clone()));
    if config.authn.is_some() {
        tokio::spawn(bootstrap::ensure_rbac_defaults(registry.clone(), cancel.clone()));
    }
    let endpoint =
        config.advertise.map(|addr| tokio::spawn(kubernetes_service::run(registry.clone(), addr, cancel.clone())));
    let tls = config.tls.clone();
    let app = http::router(registry, config);
    // Handlers and middleware see the client's address and certificate (`ConnectInfo<Peer>`).
    let app = app.into_make_service_with_connect_info::<listener::Peer>();
    let stop = cancel.clone().cancelled_owned();
    let served = match tls {
        Some(tls) => {
            tracing::info!(addr = %listener.local_addr()?, tls = true, "kubernetes API listening");
            axum::serve(listener::TlsListener::new(listener, tls)?, app).with_graceful_shutdown(stop).await
        }
        None => {
            tracing::info!(addr = %listener.local_addr()?, tls = false, "kubernetes API listening");
            axum::serve(listener::PlainListener(listener), app).with_graceful_shutdown(stop).await
        }
    };
    if let Some(task) = endpoint {
        let _ = task.await;
    }
    served
}
