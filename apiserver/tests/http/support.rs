//! The harness: a real one-member store in a temporary directory, the API server's router
//! over it, and helpers that send requests with `tower::ServiceExt::oneshot` (no socket).
//!
//! Each test starts its own [`Api`], so tests share no state and may run in parallel. The
//! store is a real `StoreNode` (Raft, MVCC, watches), not a mock: what these tests see is
//! what a client of one replica sees.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use flotilla_apiserver::ApiConfig;
use flotilla_store::StoreNode;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// How long one non-streaming request may take.
const REQUEST_DEADLINE: Duration = Duration::from_secs(15);

/// `Content-Type` of Kubernetes protobuf bodies.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// kubectl's Accept for `get` (kubectl-api.md §1).
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// A running API server over a fresh single-member store.
pub struct Api {
    pub app: Router,
    pub node: Arc<StoreNode>,
    /// Declared last so the directory outlives everything that reads from it.
    _dir: tempfile::TempDir,
}

/// A complete (non-streaming) response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics with the raw body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Assert the status code, showing the body on a mismatch; returns the JSON body.
    #[track_caller]
    pub fn expect(&self, code: u16) -> Value {
        assert_eq!(self.status.as_u16(), code, "unexpected status; body: {}", self.text());
        self.json()
    }

    /// Assert a 2xx status (tests that pin 200 vs 202 do so separately); returns the body.
    #[track_caller]
    pub fn expect_success(&self) -> Value {
        assert!(self.status.is_success(), "unexpected status {}; body: {}", self.status, self.text());
        self.json()
    }

    /// Assert a `metav1.Status` failure with this code and reason; returns the Status.
    #[track_caller]
    pub fn expect_status(&self, code: u16, reason: &str) -> Value {
        let s = self.expect(code);
        assert_eq!(s["kind"], "Status", "{s}");
        assert_eq!(s["apiVersion"], "v1", "{s}");
        assert_eq!(s["status"], "Failure", "{s}");
        assert_eq!(s["code"], code, "{s}");
        assert_eq!(s["reason"], reason, "{s}");
        s
    }
}

impl Api {
    /// Open a one-member store, wait until it leads, create the system namespaces.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, registry) = flotilla_apiserver::testing::solo_registry(dir.path()).await;
        let app = flotilla_apiserver::http::router(registry, ApiConfig::default());
        Self { app, node, _dir: dir }
    }

    /// Send a request and read the whole response.
    pub async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Reply {
        let resp = self.call(method, uri, headers, body).await;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(REQUEST_DEADLINE, body.collect())
            .await
            .unwrap_or_else(|_| panic!("{uri}: body not complete in time"))
            .expect("body reads")
            .to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    }

    /// Send a request; the response body is left unread (for watches).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> axum::response::Response {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.into()).expect("valid request");
        tokio::time::timeout(REQUEST_DEADLINE, self.app.clone().oneshot(req))
            .await
            .unwrap_or_else(|_| panic!("{uri}: no response in time"))
            .expect("the router is infallible")
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Method::GET, uri, &[], Body::empty()).await
    }

    pub async fn get_with(&self, uri: &str, accept: &str) -> Reply {
        self.send(Method::GET, uri, &[("accept", accept)], Body::empty()).await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> Reply {
        self.send(Method::POST, uri, &[("content-type", "application/json")], body.to_string()).await
    }

    pub async fn put(&self, uri: &str, body: &Value) -> Reply {
        self.send(Method::PUT, uri, &[("content-type", "application/json")], body.to_string()).await
    }

    pub async fn patch(&self, uri: &str, content_type: &str, body: &Value) -> Reply {
        self.send(Method::PATCH, uri, &[("content-type", content_type)], body.to_string()).await
    }

    pub async fn merge_patch(&self, uri: &str, body: &Value) -> Reply {
        self.patch(uri, "application/merge-patch+json", body).await
    }

    pub async fn delete(&self, uri: &str) -> Reply {
        self.send(Method::DELETE, uri, &[], Body::empty()).await
    }

    /// POST that must succeed with 201; returns the created object.
    pub async fn create(&self, collection: &str, body: Value) -> Value {
        let reply = self.post(collection, &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "create in {collection}: {}", reply.text());
        reply.json()
    }

    /// GET that must succeed; returns the object.
    pub async fn read(&self, uri: &str) -> Value {
        self.get(uri).await.expect(200)
    }

    /// Create a namespace and return its name.
    pub async fn namespace(&self, name: &str) -> String {
        self.create("/api/v1/namespaces", json!({"metadata": {"name": name}})).await;
        name.to_string()
    }

    /// Open a watch stream at `uri` (which must include `watch=true`).
    pub async fn watch(&self, uri: &str) -> super::watch_stream::WatchStream {
        let resp = self.call(Method::GET, uri, &[], Body::empty()).await;
        assert_eq!(resp.status(), StatusCode::OK, "watch {uri}");
        let ct = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(ct.starts_with("application/json"), "watch Content-Type {ct}");
        super::watch_stream::WatchStream::new(resp.into_body())
    }
}

/// A minimal valid object of each kind the tests use.
pub fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

pub fn labelled_configmap(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

pub fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
           "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]}})
}

pub fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}})
}

pub fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"role": "worker"}}})
}

/// The `metadata.resourceVersion` of an object or list, as a number.
pub fn rv(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no rv: {obj}"))
}

/// Names of a list's items, in order.
pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or_default().to_string())
        .collect()
}
