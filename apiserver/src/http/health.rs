//! `/livez`, `/readyz`, `/healthz` in upstream's text format.
//!
//! Live: the process answers. Ready: this replica's store knows a leader and has applied
//! everything the leader had committed when asked (a read barrier) — exactly the condition
//! under which it can serve linearizable reads and forward writes.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiState;

pub async fn livez(RawQuery(q): RawQuery) -> Response {
    report("livez", &[("ping", Ok(()))], verbose(q.as_deref()))
}

pub async fn readyz(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let node = s.registry.storage().node().clone();
    let store = match tokio::time::timeout(s.config.ready_timeout, node.read_barrier()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out waiting for the store".to_string()),
    };
    report("readyz", &[("ping", Ok(())), ("etcd", store)], verbose(q.as_deref()))
}

fn verbose(q: Option<&str>) -> bool {
    q.is_some_and(|q| q.split('&').any(|p| p == "verbose" || p.starts_with("verbose=")))
}

fn report(name: &str, checks: &[(&str, Result<(), String>)], verbose: bool) -> Response {
    let ok = checks.iter().all(|(_, r)| r.is_ok());
    let code = if ok { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR };
    if ok && !verbose {
        return (code, "ok").into_response();
    }
    let mut body = String::new();
    for (check, r) in checks {
        match r {
            Ok(()) => body.push_str(&format!("[+]{check} ok\n")),
            Err(e) => body.push_str(&format!("[-]{check} failed: {e}\n")),
        }
    }
    body.push_str(&format!("{name} check {}\n", if ok { "passed" } else { "failed" }));
    (code, body).into_response()
}
