//! The agent's endpoint, which API servers proxy `kubectl logs`, `exec` and `port-forward`
//! to (upstream: the kubelet's port 10250).
//!
//! Routes: `GET /containerLogs/{namespace}/{pod}/{container}` ([`logs`]),
//! `GET /exec/{namespace}/{pod}/{container}` (websocket, [`exec`]),
//! `GET /portForward/{namespace}/{pod}` (websocket `SPDY/3.1+portforward.k8s.io`, served
//! by [`portforward`]), and `GET /healthz`.
//!
//! Invariants:
//! - Every route but `/healthz` needs `Authorization: Bearer <token>`, the cluster's node
//!   proxy token ([`token`]); the endpoint serves nothing before the agent has read it.
//! - When the agent speaks TLS to the API servers, the endpoint is mutual TLS and admits
//!   only replicas' and admins' certificates ([`tls`]); a node that read the token still
//!   cannot call another node's endpoint.
//! - Containers and sandboxes are found through the runtime's labels ([`lookup`]), so the
//!   endpoint serves exactly what the runtime says runs on this node, adopted containers
//!   included.
//! - Every failure is a `metav1.Status` with its HTTP code ([`error`]): 401 without the
//!   token, 400 bad parameters, 404 pod or container not on this node, 501 the runtime
//!   cannot do it.
//!
//! Data flow: API server → (HTTP/1.1, upgraded for exec and port-forward) → this router →
//! [`crate::runtime::Runtime`] `log_stream` / `exec_stream` → the bytes back the same way.

mod error;
mod exec;
mod logs;
mod lookup;
pub mod portforward;
mod query;
pub mod tls;
pub mod token;

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ServerError;

use crate::runtime::Runtime;

/// The subprotocol kubectl's port-forward asks for (SPDY/3.1 frames inside websocket messages).
pub use portforward::WEBSOCKET_PROTOCOL as PORTFORWARD_PROTOCOL;

/// What every handler shares.
pub struct Shared {
    pub runtime: Arc<dyn Runtime>,
    /// The bearer token requests must carry.
    pub token: String,
}

/// The endpoint's routes over `runtime`, guarded by `token`.
pub fn router(runtime: Arc<dyn Runtime>, token: String) -> Router {
    assert!(!token.is_empty(), "an empty token would let anyone in");
    let shared = Arc::new(Shared { runtime, token });
    flotilla_metrics::agent();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        // Open like /healthz (read-only counters); TLS and authentication come with issue #9.
        .route("/metrics", get(metrics))
        .route("/containerLogs/{namespace}/{pod}/{container}", get(logs::handle))
        .route("/exec/{namespace}/{pod}/{container}", get(exec::handle))
        .route("/portForward/{namespace}/{pod}", get(port_forward))
        .with_state(shared)
}

/// The process's Prometheus metrics.
async fn metrics() -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, flotilla_metrics::CONTENT_TYPE)], flotilla_metrics::encode()).into_response()
}

/// Serve `router` on `listener` until `cancel` fires; over mutual TLS with `tls`.
pub async fn run(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    cancel: CancellationToken,
) {
    let address = listener.local_addr().ok();
    tracing::info!(address = ?address, tls = tls.is_some(), "agent endpoint serving");
    let stop = async move { cancel.cancelled().await };
    let served = match tls {
        None => axum::serve(listener, router).with_graceful_shutdown(stop).await,
        Some(config) => match tls::TlsListener::new(listener, config) {
            Ok(listener) => axum::serve(listener, router).with_graceful_shutdown(stop).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = served {
        tracing::error!(address = ?address, error = %e, "agent endpoint failed");
    }
}

/// Proof that a request carried the token; handlers take it first.
pub struct Authorized;

impl FromRequestParts<Arc<Shared>> for Authorized {
    type Rejection = ServerError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ServerError> {
        match bearer(&parts.headers) {
            Some(given) if constant_time_eq(given.as_bytes(), shared.token.as_bytes()) => Ok(Authorized),
            _ => Err(ServerError::Unauthorized),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// Equality whose time does not depend on where the inputs first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /portForward/{namespace}/{pod}` (websocket): finds the pod's sandbox and its IP,
/// and hands the upgraded connection to [`portforward::serve`], which connects every
/// forwarded stream to that IP.
async fn port_forward(
    _: Authorized,
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ServerError> {
    let sandbox = lookup::sandbox(shared.runtime.as_ref(), &namespace, &pod).await?;
    let ip = sandbox.ip.ok_or_else(|| ServerError::BadRequest(format!("pod {namespace}/{pod} has no IP yet")))?;
    let ip: IpAddr =
        ip.parse().map_err(|_| ServerError::BadRequest(format!("pod {namespace}/{pod} has a malformed IP {ip:?}")))?;
    let upgrade = upgrade.protocols([PORTFORWARD_PROTOCOL]);
    Ok(upgrade.on_upgrade(move |socket| portforward::serve(socket, ip)).into_response())
}
