//! Pod endpoints served by the node agent: `log`, `exec`, `attach`, `portforward`.
//!
//! Upstream proxies these to the kubelet of the pod's node. Flotilla's node agent (a later
//! milestone) provides that endpoint; until a pod's node advertises one, these requests get
//! a clear error that says why, instead of hanging or pretending.

use axum::http::Method;
use axum::response::Response;
use serde_json::Value;

use super::target::Target;
use super::ApiState;
use crate::error::{ApiError, ApiResult};

pub async fn connect(s: &ApiState, target: &Target, sub: &str, method: &Method) -> ApiResult<Response> {
    let allowed = match sub {
        "log" => method == Method::GET,
        "exec" | "attach" | "portforward" => method == Method::GET || method == Method::POST,
        _ => false,
    };
    if !allowed {
        return Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({method} {sub})"
        )));
    }
    let name = target.name.as_deref().unwrap_or_default();
    let pod = s.registry.get(target.res, target.namespace.as_deref(), name).await?;
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty());
    let Some(node) = node else {
        return Err(ApiError::BadRequest(format!("pod {name} does not have a host assigned")));
    };
    Err(ApiError::Unavailable(format!(
        "pods/{sub} for pod {name} needs the node agent of node {node} to serve it, and no agent endpoint is \
         registered for that node"
    )))
}
