//! The real `kubectl port-forward` against a minimal fake API server that hands the
//! upgraded connection straight to `serve` (websocket) or `serve_io` (SPDY fallback).
//! Skipped when kubectl is not installed.

use std::net::SocketAddr;
use std::process::Stdio;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flotilla_agent::server::portforward::{self, STREAM_PROTOCOL, WEBSOCKET_PROTOCOL};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::{echo_server, within, LOCALHOST};

async fn forward_ws(ws: WebSocketUpgrade) -> Response {
    ws.protocols([WEBSOCKET_PROTOCOL]).on_upgrade(|socket| portforward::serve(socket, LOCALHOST))
}

async fn forward_spdy(mut req: Request) -> Response {
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            portforward::serve_io(hyper_util::rt::TokioIo::new(upgraded), LOCALHOST).await;
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [(header::CONNECTION, "Upgrade"), (header::UPGRADE, "SPDY/3.1")],
        [("X-Stream-Protocol-Version", STREAM_PROTOCOL)],
    )
        .into_response()
}

/// The fake API serves only the upgrade under test, so kubectl cannot fall back.
fn fake_api(websockets: bool) -> Router {
    let pods = json!({"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": ["get"]});
    let pf = json!({"name": "pods/portforward", "singularName": "", "namespaced": true,
        "kind": "PodPortForwardOptions", "verbs": ["create", "get"]});
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": {"phase": "Running"}});
    Router::new()
        .route("/version", get(|| async { Json(json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})) }))
        .route("/api", get(|| async { Json(json!({"kind": "APIVersions", "versions": ["v1"]})) }))
        .route("/apis", get(|| async { Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})) }))
        .route(
            "/api/v1",
            get(move || async move {
                Json(json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [pods, pf]}))
            }),
        )
        .route("/api/v1/namespaces/default/pods/p1", get(move || async move { Json(pod) }))
        .route(
            "/api/v1/namespaces/default/pods/p1/portforward",
            if websockets { get(forward_ws) } else { post(forward_spdy) },
        )
}

async fn run_kubectl(websockets: bool) {
    if std::process::Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        eprintln!("kubectl not installed: skipping");
        return;
    }
    let echo = echo_server().await;
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    let api: SocketAddr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, fake_api(websockets)).await });
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"http://{api}\"}}}}]\n\
             contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\nusers: [{{name: u, user: {{}}}}]\n\
             current-context: c\n"
        ),
    )
    .expect("kubeconfig");
    let mut kubectl = tokio::process::Command::new("kubectl")
        .args(["port-forward", "--address", "127.0.0.1", "pod/p1", &format!(":{}", echo.port)])
        .arg(format!("--cache-dir={}", dir.path().join("cache").display()))
        .env("KUBECONFIG", &kubeconfig)
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", if websockets { "true" } else { "false" })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn kubectl");
    let mut lines = BufReader::new(kubectl.stdout.take().expect("stdout")).lines();
    let line = within("kubectl ready", lines.next_line()).await.expect("read").expect("a line");
    let local: SocketAddr = line
        .strip_prefix("Forwarding from ")
        .and_then(|rest| rest.split(" -> ").next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("unexpected kubectl output: {line}"));

    // Two connections at once, each echoing its own bytes, one of them large.
    let big: Vec<u8> = (0..512 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (a, b) = tokio::join!(round_trip(local, big.clone()), round_trip(local, b"hello".to_vec()));
    assert!(a == big, "large echo differs ({} bytes)", a.len());
    assert_eq!(b, b"hello");
    assert!(kubectl.try_wait().expect("status").is_none(), "kubectl is still forwarding");
    let _ = kubectl.kill().await;
    server.abort();
}

async fn round_trip(addr: SocketAddr, payload: Vec<u8>) -> Vec<u8> {
    within("round trip through kubectl", async {
        let conn = TcpStream::connect(addr).await.expect("connect to kubectl");
        let (mut r, mut w) = conn.into_split();
        let writer = tokio::spawn(async move {
            w.write_all(&payload).await.expect("write");
            w.shutdown().await.expect("half-close");
        });
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.expect("read echo");
        writer.await.expect("writer");
        out
    })
    .await
}

#[tokio::test]
async fn kubectl_port_forward_over_websocket() {
    run_kubectl(true).await;
}

#[tokio::test]
async fn kubectl_port_forward_over_spdy_fallback() {
    run_kubectl(false).await;
}
