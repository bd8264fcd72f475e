//! How a replica started with `--auto-pki` hands the cluster's PKI to a replica that joins
//! (k3s's model: the server token is the cluster's shared secret).
//!
//! - `GET /flotilla/v1/cluster-ca`: the CA certificate (PEM), to anyone. The joining replica
//!   fetches it without verifying the server and keeps it only if its SHA-256 is the one
//!   its token names; from then on it verifies this server with it.
//! - `POST /flotilla/v1/cluster-pki` with `{"secret": "<the token's secret>"}`: the CA
//!   certificate and key and the ServiceAccount signing key (JSON `caCert`, `caKey`,
//!   `serviceAccountKey`). A wrong or missing secret is 401.
//!
//! Both are served outside authentication (the joining replica has no identity yet) and
//! only by replicas that hold the server token; on the others the paths do not exist.
//!
//! Invariants: the secret is compared in constant time; the keys are never logged; every
//! answer names the caller's address in the log, and a refusal is a warning.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::authn::bootstrap::constant_time_eq;
use crate::error::ApiError;
use crate::listener::Peer;

/// Where the CA certificate is served.
pub const CA_PATH: &str = "/flotilla/v1/cluster-ca";
/// Where the PKI bundle is served.
pub const BUNDLE_PATH: &str = "/flotilla/v1/cluster-pki";
/// A bundle request is a short JSON object.
const MAX_REQUEST_BYTES: usize = 4096;

/// What a replica started with `--auto-pki` shares.
pub struct ClusterPki {
    /// The server token's secret part.
    pub secret: String,
    pub ca_cert: String,
    pub ca_key: String,
    pub service_account_key: String,
}

impl std::fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterPki")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleRequest {
    secret: String,
}

/// The two routes, for the router to merge outside authentication.
pub fn routes<S: Clone + Send + Sync + 'static>(pki: Arc<ClusterPki>) -> Router<S> {
    Router::new()
        .route(CA_PATH, get(ca))
        .route(BUNDLE_PATH, post(bundle))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(pki)
}

async fn ca(State(pki): State<Arc<ClusterPki>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/x-pem-file")], pki.ca_cert.clone()).into_response()
}

async fn bundle(
    State(pki): State<Arc<ClusterPki>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    body: axum::body::Bytes,
) -> Response {
    let from: SocketAddr = peer.addr;
    let Ok(req) = serde_json::from_slice::<BundleRequest>(&body) else {
        return ApiError::BadRequest("want {\"secret\": \"...\"}".into()).into_response();
    };
    if !constant_time_eq(req.secret.as_bytes(), pki.secret.as_bytes()) {
        tracing::warn!(%from, "refused the cluster PKI to a caller with a wrong server token");
        return ApiError::Unauthorized.into_response();
    }
    tracing::info!(%from, "handed the cluster PKI to a joining replica");
    let answer = json!({
        "caCert": pki.ca_cert,
        "caKey": pki.ca_key,
        "serviceAccountKey": pki.service_account_key,
    });
    (StatusCode::OK, Json(answer)).into_response()
}
