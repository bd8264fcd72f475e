//! Pod endpoints served by the node agent: `log`, `exec`, `attach`, `portforward`, proxied
//! to the agent endpoint of the pod's node (upstream: the kubelet's port 10250).
//!
//! Invariants:
//! - Everything the API server can check is checked before the agent is contacted: the pod
//!   exists and is bound, the container is valid (or the pod's only one), the node exists,
//!   has an InternalIP and advertises `daemonEndpoints.kubeletEndpoint.Port`. Each failure
//!   has upstream's code and message.
//! - `log` is a streamed GET ([`node_proxy::get`]): chunks pass through as the agent sends
//!   them, and the agent connection goes away with the client's.
//! - `exec` and `portforward` are websocket upgrades (kubectl ≥ 1.30): the upgrade request
//!   is forwarded with the client's `Upgrade`/`Connection`/`Sec-WebSocket-*` headers and
//!   the node token; an agent refusing (non-101) is relayed as is, so kubectl sees the
//!   agent's Status. SPDY (`POST`, kubectl's fallback) is refused with 400.
//! - `attach` is refused (400): containers here have no attachable console; use exec.
//! - When the agent answers 101, the client gets the agent's 101 (its `Sec-WebSocket-Accept`
//!   and chosen protocol), and the two upgraded connections are spliced byte for byte
//!   ([`take_over`]); the API server never parses the stream.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::node_proxy;
use super::query::Query;
use super::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::resources;

/// Placeholder kept for the resource dispatcher: connect subresources it sees (a path the
/// dedicated routes do not match) get a clear error.
pub async fn connect(s: &ApiState, target: &super::target::Target, sub: &str, _method: &Method) -> ApiResult<Response> {
    let name = target.name.as_deref().unwrap_or_default();
    s.registry.get(target.res, target.namespace.as_deref(), name).await?;
    Err(ApiError::BadRequest(format!("pods/{sub} is served at /api/v1/namespaces/<namespace>/pods/<name>/{sub}")))
}

/// A pod's node agent, and the container a request is about.
struct Route {
    agent: SocketAddr,
    container: String,
}

fn pods() -> &'static resources::Resource {
    resources::lookup("", "v1", "pods").expect("pods are served")
}

/// The container `asked` names in `pod` (upstream's rules and messages).
pub fn container_of(pod: &Value, asked: Option<&str>) -> ApiResult<String> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let names: Vec<&str> = ["/spec/containers", "/spec/initContainers", "/spec/ephemeralContainers"]
        .iter()
        .flat_map(|p| pod.pointer(p).and_then(Value::as_array).into_iter().flatten())
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let app: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::BadRequest(format!("container {c} is not valid for pod {name}"))),
        None if app.len() == 1 => Ok(app[0].to_string()),
        None => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            app.join(" ")
        ))),
    }
}

/// Where node `node`'s agent listens, from its InternalIP and daemon endpoint.
pub fn agent_address(node: &Value) -> ApiResult<SocketAddr> {
    let name = node.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let port = node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_u64).unwrap_or(0);
    let port = u16::try_from(port).ok().filter(|p| *p != 0).ok_or_else(|| {
        ApiError::Unavailable(format!("node {name} has no agent endpoint (daemonEndpoints.kubeletEndpoint.Port is 0)"))
    })?;
    let addresses = node.pointer("/status/addresses").and_then(Value::as_array).into_iter().flatten();
    let ip = addresses
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .find_map(|a| a.get("address").and_then(Value::as_str)?.parse::<IpAddr>().ok())
        .ok_or_else(|| ApiError::BadRequest(format!("node {name} has no InternalIP address")))?;
    Ok(SocketAddr::new(ip, port))
}

/// The pod and the name of the node it is bound to.
async fn bound_pod(s: &ApiState, namespace: &str, name: &str) -> ApiResult<(Value, String)> {
    let pod = s.registry.get(pods(), Some(namespace), name).await?;
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty());
    let Some(node) = node.map(str::to_string) else {
        return Err(ApiError::BadRequest(format!("pod {name} does not have a host assigned")));
    };
    Ok((pod, node))
}

/// Where the agent of node `node` listens.
async fn agent_of(s: &ApiState, node: &str) -> ApiResult<SocketAddr> {
    let nodes = resources::lookup("", "v1", "nodes").expect("nodes are served");
    agent_address(&s.registry.get(nodes, None, node).await?)
}

async fn route(s: &ApiState, namespace: &str, name: &str, container: Option<&str>) -> ApiResult<Route> {
    let (pod, node) = bound_pod(s, namespace, name).await?;
    let container = container_of(&pod, container)?;
    Ok(Route { agent: agent_of(s, &node).await?, container })
}

fn check_method(method: &Method, allowed: &[Method], sub: &str) -> ApiResult<()> {
    if allowed.contains(method) {
        return Ok(());
    }
    Err(ApiError::MethodNotAllowed(format!(
        "the server does not allow this method on the requested resource ({method} {sub})"
    )))
}

/// `GET /api/v1/namespaces/{namespace}/pods/{name}/log`.
pub async fn log(
    State(s): State<Arc<ApiState>>,
    method: Method,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = async {
        check_method(&method, &[Method::GET], "log")?;
        let query = Query::parse(raw.as_deref());
        let route = route(&s, &namespace, &name, query.get("container")).await?;
        let token = node_proxy::token(&s.registry).await?;
        let path = format!("/containerLogs/{namespace}/{name}/{}?{}", route.container, raw.unwrap_or_default());
        node_proxy::get(s.agent(route.agent), &path, &token).await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Is this a websocket upgrade request?
fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name: &str, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    has("connection", "upgrade") && has("upgrade", "websocket")
}

/// `GET /api/v1/namespaces/{namespace}/pods/{name}/exec` (websocket).
pub async fn exec(
    State(s): State<Arc<ApiState>>,
    method: Method,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let result = async {
        check_method(&method, &[Method::GET, Method::POST], "exec")?;
        let query = Query::parse(raw.as_deref());
        let route = route(&s, &namespace, &name, query.get("container")).await?;
        let path = format!("/exec/{namespace}/{name}/{}?{}", route.container, raw.unwrap_or_default());
        upgrade(&s, method, request, route.agent, &path).await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// `/api/v1/namespaces/{namespace}/pods/{name}/portforward` (websocket).
pub async fn portforward(
    State(s): State<Arc<ApiState>>,
    method: Method,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let result = async {
        check_method(&method, &[Method::GET, Method::POST], "portforward")?;
        let (_, node) = bound_pod(&s, &namespace, &name).await?;
        let agent = agent_of(&s, &node).await?;
        let path = format!("/portForward/{namespace}/{name}?{}", raw.unwrap_or_default());
        upgrade(&s, method, request, agent, &path).await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// `/api/v1/namespaces/{namespace}/pods/{name}/attach`: refused.
pub async fn attach(State(s): State<Arc<ApiState>>, Path((namespace, name)): Path<(String, String)>) -> Response {
    let result = async {
        s.registry.get(pods(), Some(&namespace), &name).await?;
        Err::<Response, _>(ApiError::BadRequest("attach is not supported by flotilla; use exec".into()))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// The request headers an upgrade forwards to the agent.
fn upgrade_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let forwarded = headers.iter().filter(|(k, _)| {
        let k = k.as_str();
        k == "upgrade" || k == "connection" || k.starts_with("sec-websocket-")
    });
    forwarded.filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string()))).collect()
}

/// Forward a websocket upgrade to the agent at `agent`. See the module doc.
async fn upgrade(
    s: &ApiState,
    method: Method,
    mut request: Request,
    agent: SocketAddr,
    path: &str,
) -> ApiResult<Response> {
    let headers = request.headers().clone();
    if method == Method::POST || !is_websocket(&headers) {
        return Err(ApiError::BadRequest(
            "only websocket streams (v5.channel.k8s.io, SPDY/3.1+portforward.k8s.io) are served; SPDY upgrades are \
             not supported (kubectl ≥ 1.30 uses websockets unless told otherwise)"
                .into(),
        ));
    }
    let token = node_proxy::token(&s.registry).await?;
    let (head, reader) = node_proxy::request(s.agent(agent), path, &token, &upgrade_headers(&headers)).await?;
    if head.status != 101 {
        return node_proxy::relay(head, reader).await;
    }
    take_over(head, reader, hyper::upgrade::on(&mut request))
}

/// Answer the client 101 with the agent's websocket headers, and once the client's
/// connection is handed over, splice it with the agent's ([`node_proxy::splice`]). The
/// agent side is the `BufReader` itself, so bytes it already buffered are not lost.
fn take_over(
    head: node_proxy::Head,
    agent: tokio::io::BufReader<node_proxy::AgentConn>,
    client: hyper::upgrade::OnUpgrade,
) -> ApiResult<Response> {
    tokio::spawn(async move {
        match client.await {
            Ok(upgraded) => node_proxy::splice(hyper_util::rt::TokioIo::new(upgraded), agent).await,
            Err(e) => tracing::debug!(error = %e, "the client's connection was not upgraded"),
        }
    });
    let mut response = Response::builder().status(axum::http::StatusCode::SWITCHING_PROTOCOLS);
    response = response.header("connection", "Upgrade").header("upgrade", "websocket");
    for name in ["sec-websocket-accept", "sec-websocket-protocol"] {
        if let Some(value) = head.header(name) {
            response = response.header(name, value);
        }
    }
    response.body(axum::body::Body::empty()).map_err(|e| ApiError::Internal(format!("building the 101 answer: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_container_is_the_named_one_or_the_only_one() {
        let one = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app"}]}});
        assert_eq!(container_of(&one, None).unwrap(), "app");
        assert_eq!(container_of(&one, Some("")).unwrap(), "app");
        let e = container_of(&one, Some("db")).unwrap_err();
        assert_eq!(e.to_string(), "container db is not valid for pod web");
        let two = json!({"metadata": {"name": "web"}, "spec": {
            "containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "init"}]}});
        let e = container_of(&two, None).unwrap_err();
        assert_eq!(e.to_string(), "a container name must be specified for pod web, choose one of: [a b]");
        assert_eq!(container_of(&two, Some("init")).unwrap(), "init");
    }

    #[test]
    fn the_agent_is_at_the_internal_ip_and_advertised_port() {
        let node = |port: u16| {
            json!({"metadata": {"name": "n1"}, "status": {
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.7"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}})
        };
        assert_eq!(agent_address(&node(10250)).unwrap(), "10.0.0.7:10250".parse().unwrap());
        assert!(matches!(agent_address(&node(0)), Err(ApiError::Unavailable(_))));
        assert!(agent_address(&json!({"metadata": {"name": "n"}})).is_err());
    }

    #[test]
    fn only_websocket_upgrades_are_forwarded_with_their_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("sec-websocket-protocol", "v5.channel.k8s.io".parse().unwrap());
        h.insert("authorization", "Bearer client".parse().unwrap());
        assert!(is_websocket(&h));
        let forwarded = upgrade_headers(&h);
        assert_eq!(forwarded.len(), 3);
        assert!(!forwarded.iter().any(|(k, _)| k == "authorization"), "the client's credentials stay here");
        h.insert("upgrade", "SPDY/3.1".parse().unwrap());
        assert!(!is_websocket(&h));
    }
}
