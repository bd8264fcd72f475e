//! The HTTP surface: routes, and the handlers that turn requests into registry calls.
//!
//! Handlers stay thin: parse the target, query and body, call the [`Registry`], render the
//! answer (object, list, Table, watch stream). Every error leaves through
//! [`ApiError`]'s `IntoResponse`, so all failures are `metav1.Status` bodies.

pub mod audit;
pub mod authn;
mod authz;
pub mod cluster_pki;
mod health;
pub mod limits;
pub mod metrics;
mod negotiate;
pub mod node_certificate;
pub mod node_proxy;
mod pods;
mod query;
pub(crate) mod resource;
mod target;
mod ui;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::error::ApiError;
use crate::registry::Registry;
use crate::{discovery, openapi};

pub use negotiate::Output;
pub use target::split_api_path;

/// Whether a query string asks for a watch (`watch=true`, `watch=1`); a malformed one does not.
pub fn query_is_watch(query: Option<&str>) -> bool {
    query::Query::parse(query).is_watch().unwrap_or(false)
}

/// Largest request body accepted. The store refuses values over 1.5 MiB anyway (like etcd);
/// this bound stops a client from making the server buffer much more than that.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `host:port` clients use to reach this server (reported in `/api`).
    pub server_address: String,
    /// The address this replica publishes in the `kubernetes` Service's Endpoints (none:
    /// it is not published; see [`crate::kubernetes_service`]).
    pub advertise: Option<std::net::SocketAddr>,
    /// Idle interval between watch bookmarks.
    pub bookmark_interval: Duration,
    /// How long `/readyz` waits for the store to confirm it can serve.
    pub ready_timeout: Duration,
    /// In-flight, per-client watch and timeout bounds ([`limits`]).
    pub limits: limits::LimitsConfig,
    /// Where mutating requests are logged (none: not audited).
    pub audit: Option<Arc<audit::AuditLog>>,
    /// TLS for the listener (none: plain HTTP, `--insecure-plaintext`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How requests are authenticated (none: they are not; only with plain HTTP).
    pub authn: Option<Arc<authn::Authenticator>>,
    /// TLS towards the agents' endpoints, presenting this replica's certificate (none: plain
    /// TCP; see [`node_proxy`]).
    pub node_tls: Option<Arc<rustls::ClientConfig>>,
    /// The cluster CA that signs agents' certificates (none: this replica does not; see
    /// [`node_certificate`]).
    pub signer: Option<Arc<node_certificate::Signer>>,
    /// How ServiceAccount tokens are issued and checked (none: they are not; see
    /// [`crate::serviceaccount`]).
    pub service_accounts: Option<Arc<crate::serviceaccount::ServiceAccounts>>,
    /// What this replica hands to replicas that join with the server token (none: it was
    /// not started with `--auto-pki`; see [`cluster_pki`]).
    pub cluster_pki: Option<Arc<cluster_pki::ClusterPki>>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            server_address: "127.0.0.1:6443".into(),
            advertise: None,
            bookmark_interval: crate::watch::BOOKMARK_INTERVAL,
            ready_timeout: Duration::from_secs(2),
            limits: limits::LimitsConfig::default(),
            audit: None,
            tls: None,
            authn: None,
            node_tls: None,
            signer: None,
            service_accounts: None,
            cluster_pki: None,
        }
    }
}

pub struct ApiState {
    pub registry: Registry,
    pub config: ApiConfig,
}

impl ApiState {
    /// How to reach the agent listening at `addr`.
    pub fn agent(&self, addr: std::net::SocketAddr) -> node_proxy::Target<'_> {
        node_proxy::Target { addr, tls: self.config.node_tls.as_ref() }
    }
}

/// Every route of the API server.
pub fn router(registry: Registry, config: ApiConfig) -> Router {
    let audit_log = config.audit.clone();
    let authenticator = config.authn.clone();
    let limiter = Arc::new(limits::Limits::new(&config.limits));
    let cluster_pki = config.cluster_pki.clone();
    let state = Arc::new(ApiState { registry, config });
    let routes = Router::new()
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/api", get(api))
        .route("/api/", get(api))
        .route("/apis", get(apis))
        .route("/apis/", get(apis))
        .route("/api/v1", get(core_v1))
        .route("/api/v1/", get(core_v1))
        .route("/apis/{group}", get(group))
        .route("/apis/{group}/{version}", get(group_version))
        .route("/api/v1/namespaces/{namespace}/pods/{name}/log", any(pods::log))
        .route("/api/v1/namespaces/{namespace}/pods/{name}/exec", any(pods::exec))
        .route("/api/v1/namespaces/{namespace}/pods/{name}/attach", any(pods::attach))
        .route("/api/v1/namespaces/{namespace}/pods/{name}/portforward", any(pods::portforward))
        .route("/apis/authentication.k8s.io/{version}/selfsubjectreviews", post(authn::self_subject_review))
        .route(node_certificate::PATH, post(node_certificate::issue))
        .route("/apis/authorization.k8s.io/{version}/selfsubjectaccessreviews", post(authz::self_subject_access_review))
        .route("/api/v1/{*rest}", any(resource::core))
        .route("/apis/{group}/{version}/{*rest}", any(resource::grouped))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/{*path}", get(openapi_doc))
        .route("/healthz", get(health::readyz))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::serve))
        .merge(ui::routes())
        .fallback(fallback);
    // Outermost first: metrics; authentication (with TLS); the audit log, which names the
    // user and sees every answer below it; the limits (429, 504), keyed by the user and
    // bounding the authorizer's store reads too; authorization (with TLS).
    let limits = axum::middleware::from_fn_with_state(limiter, limits::enforce);
    let audit = axum::middleware::from_fn_with_state(audit_log, audit::record);
    let routes = match authenticator {
        Some(a) => routes
            .layer(axum::middleware::from_fn_with_state(state.clone(), authz::authorize))
            .layer(limits)
            .layer(audit)
            .layer(axum::middleware::from_fn_with_state((a, state.clone()), authn::authenticate)),
        None => routes.layer(limits).layer(audit),
    };
    // A joining replica has no identity yet: the PKI hand-over is served outside authentication.
    let routes = match cluster_pki {
        Some(pki) => routes.merge(cluster_pki::routes(pki)),
        None => routes,
    };
    routes
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn version() -> Json<Value> {
    Json(discovery::version_info())
}

/// `/api` and `/apis` answer aggregated discovery when the client asks for it.
fn discovery_response(core: bool, headers: &HeaderMap, legacy: Value) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    match discovery::negotiate_aggregated(accept) {
        Some((content_type, api_version)) => {
            let body = discovery::aggregated(core, api_version).to_string();
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        None => Json(legacy).into_response(),
    }
}

async fn api(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    discovery_response(true, &headers, discovery::api_versions(&s.config.server_address))
}

async fn apis(headers: HeaderMap) -> Response {
    discovery_response(false, &headers, discovery::api_group_list())
}

async fn core_v1() -> Response {
    resource_list("", "v1")
}

async fn group_version(Path((group, version)): Path<(String, String)>) -> Response {
    resource_list(&group, &version)
}

fn resource_list(group: &str, version: &str) -> Response {
    match discovery::api_resource_list(group, version) {
        Some(list) => Json(list).into_response(),
        None => not_found(&format!("{group}/{version}")),
    }
}

/// `/apis/<group>`: the group with its versions.
async fn group(Path(group): Path<String>) -> Response {
    let list = discovery::api_group_list();
    let found = list["groups"].as_array().and_then(|g| g.iter().find(|g| g["name"] == group.as_str()).cloned());
    match found {
        Some(mut g) => {
            g["kind"] = "APIGroup".into();
            g["apiVersion"] = "v1".into();
            Json(g).into_response()
        }
        None => not_found(&group),
    }
}

async fn openapi_index() -> Json<Value> {
    Json(openapi::index())
}

async fn openapi_doc(Path(path): Path<String>) -> Response {
    match openapi::group_version_doc(&path) {
        Some(doc) => Json(doc).into_response(),
        None => not_found(&path),
    }
}

async fn fallback(uri: Uri) -> Response {
    not_found(uri.path())
}

/// Upstream's answer for a path it does not serve.
fn not_found(path: &str) -> Response {
    tracing::debug!(path, "no such route");
    ApiError::NoRoute.into_response()
}

/// A JSON response with a status code.
pub(crate) fn json(code: StatusCode, body: Value) -> Response {
    (code, Json(body)).into_response()
}
