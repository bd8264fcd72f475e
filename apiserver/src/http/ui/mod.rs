//! The read-only web dashboard every replica serves at `/ui` (issue #7).
//!
//! Routes:
//! - `/ui`, `/ui/`: the page; `/ui/app.js`, `/ui/style.css`: its script and style. All three
//!   are compiled into the binary (`include_str!`): plain HTML, CSS and JavaScript, no
//!   framework and no build step.
//! - `/ui/api/cluster`: this replica's view of the Raft group ([`cluster`]), JSON.
//! - `/ui/api/watch`: the watches of every kind the page shows, merged into one stream
//!   ([`watch`]: a browser gives one origin only six HTTP/1.1 connections).
//!
//! Data flow: the page lists the Kubernetes objects it shows through this replica's ordinary
//! API (same origin) and keeps them current with one merged watch; it polls
//! `/ui/api/cluster` on every API server the master leases name and combines the answers
//! (leader, term, lag).
//! The Kubernetes API sends no CORS headers, so objects come only from the page's own
//! replica; when that replica stops answering (or knows no leader while another replica
//! leads), the page moves itself to one that answers.
//!
//! Invariants: nothing here writes; `/ui/api/cluster` reads only local state (it never
//! waits for a leader) and allows any origin, since it is how a page served by one replica
//! watches the others (the whole API is unauthenticated until issue #9 anyway).

mod cluster;
mod watch;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::ApiState;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// The page loads only its own script and style, and talks to any replica's API.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' http: https:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/style.css", get(style_css))
        .route("/ui/api/cluster", get(cluster_view))
        .route("/ui/api/watch", get(watch::serve))
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// A compiled-in file. `no-cache`: a browser revalidates, so a replica upgraded to a new
/// binary serves its own page, never a cached older one.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        body,
    )
        .into_response()
}

async fn cluster_view(State(s): State<Arc<ApiState>>) -> Response {
    let view = cluster::view(cluster::observe(s.registry.storage().node()).await);
    ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"), (header::CACHE_CONTROL, "no-store")], Json(view)).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::http::{router, ApiConfig};

    /// GET `path`: status, content type, the CORS header (if any) and the body.
    async fn get(app: &axum::Router, path: &str) -> (StatusCode, String, Option<String>, String) {
        get_req(app, Request::get(path).body(Body::empty()).expect("request")).await
    }

    async fn get_req(app: &axum::Router, req: Request<Body>) -> (StatusCode, String, Option<String>, String) {
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (ctype, cors) = (header("content-type").unwrap_or_default(), header("access-control-allow-origin"));
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, ctype, cors, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_page_and_every_asset_it_names_are_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_node, registry) = crate::testing::solo_registry(dir.path()).await;
        let app = router(registry, ApiConfig::default());
        for path in ["/ui", "/ui/"] {
            let (status, ctype, _, body) = get(&app, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(ctype.starts_with("text/html"), "{ctype}");
            assert!(body.contains(r#"id="leader""#), "{body}");
        }
        let (_, _, _, page) = get(&app, "/ui").await;
        let assets: Vec<&str> = page
            .split(['"', '\''])
            .filter(|s| s.starts_with("/ui/") && (s.ends_with(".js") || s.ends_with(".css")))
            .collect();
        assert_eq!(assets.len(), 2, "the page names its script and its style: {assets:?}");
        for asset in assets {
            let (status, ctype, _, body) = get(&app, asset).await;
            assert_eq!(status, StatusCode::OK, "{asset}");
            assert!(ctype.starts_with("text/javascript") || ctype.starts_with("text/css"), "{asset}: {ctype}");
            assert!(!body.is_empty());
        }
        let (status, _, _, _) = get(&app, "/ui/nothing.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_cluster_view_of_a_lone_leader_with_its_master_lease() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, registry) = crate::testing::solo_registry(dir.path()).await;
        let key = format!("{}127.0.0.1:6443", crate::kubernetes_service::MASTER_LEASES);
        let put =
            flotilla_store::pb::PbPutRequest { key: key.into_bytes(), value: b"{}".to_vec(), ..Default::default() };
        node.put(put).await.expect("put a master lease");
        let app = router(registry, ApiConfig::default());

        let (status, ctype, cors, body) = get(&app, "/ui/api/cluster").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(ctype.starts_with("application/json"), "{ctype}");
        assert_eq!(cors.as_deref(), Some("*"), "other replicas' pages may read it");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let me = format!("{:x}", node.id());
        assert_eq!(v["replica"]["id"], me.as_str(), "{v}");
        assert_eq!(v["replica"]["leader"], true, "{v}");
        assert_eq!(v["leader"], me.as_str(), "{v}");
        assert!(v["replica"]["term"].as_u64() >= Some(1), "{v}");
        assert!(v["replica"]["applied_index"].as_u64() >= Some(1), "{v}");
        let members = v["members"].as_array().expect("members");
        assert_eq!(members.len(), 1, "{v}");
        assert_eq!((&members[0]["leader"], &members[0]["lag"]), (&true.into(), &0.into()), "{v}");
        assert_eq!(v["api_urls"], serde_json::json!(["http://127.0.0.1:6443"]), "{v}");
    }

    #[tokio::test]
    async fn the_merged_watch_tags_each_event_with_its_kind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, registry) = crate::testing::solo_registry(dir.path()).await;
        let app = router(registry, ApiConfig::default());
        let rv = node.current_revision();
        let req = Request::get(format!("/ui/api/watch?pods={rv}&nodes={rv}")).body(Body::empty()).expect("request");
        let resp = app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK);

        let node_json = serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
        let create = Request::post("/api/v1/nodes")
            .header("content-type", "application/json")
            .body(Body::from(node_json.to_string()))
            .expect("request");
        let created = app.clone().oneshot(create).await.expect("infallible");
        assert_eq!(created.status(), StatusCode::CREATED);

        let mut body = resp.into_body();
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("a frame");
        let line = frame.into_data().expect("data");
        let event: serde_json::Value = serde_json::from_slice(&line).expect("one JSON line");
        assert_eq!(event["resource"], "nodes", "{event}");
        assert_eq!(event["type"], "ADDED", "{event}");
        assert_eq!(event["object"]["metadata"]["name"], "n1", "{event}");
        assert!(line.ends_with(b"\n"));

        let bad = Request::get("/ui/api/watch?secrets=1").body(Body::empty()).expect("request");
        let (status, _, _, body) = get_req(&app, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("\"kind\":\"Status\""), "{body}");
    }
}
