//! `/metrics` (the process's Prometheus metrics, see `flotilla-metrics`) and the middleware
//! that counts Kubernetes API requests by verb, resource and code, and times them.
//!
//! Verbs are upstream's: a GET of a collection is `list` (`watch` with `watch=1`), of one
//! object `get`; POST `create`, PUT `update`, PATCH `patch`, DELETE of one object `delete`,
//! of a collection `deletecollection`. Only resource requests (`/api/v1/...`,
//! `/apis/<group>/<version>/...`) are counted; watches are counted but not timed (they are
//! long-running), and [`OpenWatch`] counts the ones being served.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flotilla_metrics::{RequestLabels, VerbLabels};

/// `GET /metrics`.
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, flotilla_metrics::CONTENT_TYPE)], flotilla_metrics::encode()).into_response()
}

/// Count and time one request.
pub async fn track(req: Request, next: Next) -> Response {
    let Some((verb, resource)) = classify(req.method(), req.uri().path(), req.uri().query()) else {
        return next.run(req).await;
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = flotilla_metrics::api();
    let code = resp.status().as_u16().to_string();
    m.requests.get_or_create(&RequestLabels { verb: verb.into(), resource: resource.clone(), code }).inc();
    if verb != "watch" {
        let labels = VerbLabels { verb: verb.into(), resource };
        m.request_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    }
    resp
}

/// The verb and resource of a resource request; `None` for everything else.
fn classify(method: &Method, path: &str, query: Option<&str>) -> Option<(&'static str, String)> {
    let (_group, _version, rest) = super::target::split_api_path(path)?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (resource, name) = match segments.as_slice() {
        ["namespaces", _, resource, rest @ ..] => (*resource, rest.first()),
        [resource, rest @ ..] => (*resource, rest.first()),
        [] => return None,
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=1" || kv == "watch=true"));
    let verb = match (method.as_str(), name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    };
    Some((verb, resource.to_string()))
}

/// One watch being served: counted in `flotilla_apiserver_open_watches` until dropped.
pub struct OpenWatch(());

impl OpenWatch {
    pub fn open() -> Self {
        flotilla_metrics::api().open_watches.inc();
        OpenWatch(())
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        flotilla_metrics::api().open_watches.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_resources_as_upstream_names_them() {
        let c = |m: Method, p: &str, q: Option<&str>| classify(&m, p, q).map(|(v, r)| format!("{v} {r}"));
        assert_eq!(c(Method::GET, "/api/v1/namespaces/default/pods", None).unwrap(), "list pods");
        assert_eq!(c(Method::GET, "/api/v1/namespaces/default/pods", Some("watch=1&rv=3")).unwrap(), "watch pods");
        assert_eq!(c(Method::GET, "/api/v1/namespaces/default/pods/web-1", None).unwrap(), "get pods");
        assert_eq!(c(Method::GET, "/api/v1/namespaces/default/pods/web-1/log", None).unwrap(), "get pods");
        assert_eq!(c(Method::GET, "/api/v1/namespaces/default", None).unwrap(), "get namespaces");
        assert_eq!(c(Method::GET, "/api/v1/nodes", None).unwrap(), "list nodes");
        assert_eq!(c(Method::POST, "/apis/apps/v1/namespaces/x/deployments", None).unwrap(), "create deployments");
        assert_eq!(
            c(Method::DELETE, "/apis/apps/v1/namespaces/x/deployments", None).unwrap(),
            "deletecollection deployments"
        );
        assert_eq!(
            c(Method::PATCH, "/apis/coordination.k8s.io/v1/namespaces/x/leases/n1", None).unwrap(),
            "patch leases"
        );
        assert_eq!(c(Method::GET, "/healthz", None), None);
        assert_eq!(c(Method::GET, "/apis/apps/v1", None), None);
        assert_eq!(c(Method::GET, "/metrics", None), None);
    }
}
