//! The audit log (kube-apiserver's `--audit-log-path`, at level `Metadata`): one JSON line
//! per mutating request — who, what, when, and how it ended — in upstream's
//! `audit.k8s.io/v1` `Event` shape, so log shippers and tools that read kube-apiserver's
//! audit log read this one.
//!
//! - Mutating means POST, PUT, PATCH and DELETE, on any path (a refused or failed write is
//!   logged too, with its code); reads and watches are not logged.
//! - One event per request, at stage `ResponseComplete`, written after the handler answered
//!   and before the response leaves, appended with one `write` to a file opened in append
//!   mode, so lines from concurrent requests never interleave.
//! - `user` is the authenticated user (`system:anonymous` on a plain-HTTP replica, as
//!   upstream logs an unauthenticated request); a request made as another user
//!   (`kubectl --as`) names that one as `impersonatedUser`, as upstream. The source
//!   address is the TCP peer.
//! - A failure to write is logged and does not fail the request (as upstream's default
//!   `blocking` mode would): the audit log is for reading later, not a gate.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};

use super::authn::UserInfo;
use super::target;
use crate::listener::Peer;
use crate::registry::meta::new_uid;

/// An open audit log file.
#[derive(Debug)]
pub struct AuditLog {
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    /// Open (create, append to) the log at `path`.
    pub fn open(path: &Path) -> std::io::Result<Arc<Self>> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Arc::new(Self { file: Mutex::new(file) }))
    }

    fn write(&self, event: &Value) {
        let mut line = event.to_string();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "writing the audit log failed");
        }
    }
}

fn is_mutating(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// Upstream's verb for a mutating request.
fn verb(method: &Method, has_name: bool) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        _ if has_name => "delete",
        _ => "deletecollection",
    }
}

/// `objectRef` of a resource path, if it names one.
fn object_ref(path: &str) -> Option<(Value, bool)> {
    let (group, version, rest) = target::split_api_path(path)?;
    let t = target::parse(group, version, rest).ok()?;
    let mut r = json!({"resource": t.res.plural, "apiVersion": version});
    if !group.is_empty() {
        r["apiGroup"] = json!(group);
    }
    if let Some(ns) = &t.namespace {
        r["namespace"] = json!(ns);
    }
    if let Some(name) = &t.name {
        r["name"] = json!(name);
    }
    if let Some(sub) = &t.sub {
        r["subresource"] = json!(sub);
    }
    Some((r, t.name.is_some()))
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// The middleware: log every mutating request once it has been answered.
pub async fn record(State(log): State<Option<Arc<AuditLog>>>, req: Request, next: Next) -> Response {
    let Some(log) = log.filter(|_| is_mutating(req.method())) else { return next.run(req).await };
    let received = now();
    let method = req.method().clone();
    let uri = req.uri().to_string();
    let source = req.extensions().get::<ConnectInfo<Peer>>().map(|c| c.0.addr.ip().to_string());
    let user = req.extensions().get::<UserInfo>().cloned().unwrap_or_else(UserInfo::anonymous);
    let agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(String::from);
    let object = object_ref(req.uri().path());
    let resp = next.run(req).await;
    let mut event = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": new_uid(),
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": verb(&method, object.as_ref().is_some_and(|(_, named)| *named)),
        "user": user.to_json(),
        "sourceIPs": source.into_iter().collect::<Vec<_>>(),
        "responseStatus": {"metadata": {}, "code": resp.status().as_u16()},
        "requestReceivedTimestamp": received,
        "stageTimestamp": now(),
    });
    if let Some(agent) = agent {
        event["userAgent"] = json!(agent);
    }
    if let Some((r, _)) = object {
        event["objectRef"] = r;
    }
    if let Some(super::authz::Impersonated(as_user)) = resp.extensions().get() {
        event["impersonatedUser"] = as_user.to_json();
    }
    log.write(&event);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_refs_and_verbs_follow_upstream() {
        let (r, named) = object_ref("/api/v1/namespaces/default/configmaps/c1").unwrap();
        assert_eq!(r, json!({"resource": "configmaps", "apiVersion": "v1", "namespace": "default", "name": "c1"}));
        assert!(named);
        let (r, named) = object_ref("/apis/apps/v1/namespaces/ns/deployments/web/scale").unwrap();
        assert_eq!(r["apiGroup"], "apps");
        assert_eq!(r["subresource"], "scale");
        assert!(named);
        let (r, named) = object_ref("/api/v1/namespaces/default/pods").unwrap();
        assert!(!named && r.get("name").is_none());
        assert!(object_ref("/version").is_none());
        assert_eq!(verb(&Method::DELETE, true), "delete");
        assert_eq!(verb(&Method::DELETE, false), "deletecollection");
        assert_eq!(verb(&Method::PATCH, true), "patch");
        assert!(!is_mutating(&Method::GET));
    }
}
