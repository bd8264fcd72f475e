use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::oneshot;
use tower::ServiceExt;

use super::*;
use crate::http::{router, ApiConfig};

/// How long a test waits for a request it started to reach its handler or to finish.
const DEADLINE: Duration = Duration::from_secs(20);

const PODS: &str = "/api/v1/namespaces/default/pods";

fn request(method: Method, uri: &str, from: Option<[u8; 4]>, body: Body) -> Request {
    let mut req =
        axum::http::Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(ip) = from {
        req = req.extension(ConnectInfo(Peer::address(SocketAddr::from((ip, 40000)))));
    }
    req.body(body).expect("a valid request")
}

async fn send(app: &Router, req: Request) -> Response {
    tokio::time::timeout(DEADLINE, app.clone().oneshot(req)).await.expect("answered in time").expect("infallible")
}

/// The `metav1.Status` of a refusal, after checking its code and reason.
async fn status_of(resp: Response, code: u16, reason: &str) -> Value {
    assert_eq!(resp.status().as_u16(), code);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let status: Value = serde_json::from_slice(&body).expect("a JSON Status");
    assert_eq!((status["kind"].as_str(), status["code"].as_u64()), (Some("Status"), Some(code.into())));
    assert_eq!(status["reason"], reason, "{status}");
    status
}

#[track_caller]
fn assert_retry_after(resp: &Response) {
    assert_eq!(resp.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
}

/// A pod creation whose body does not end until the returned sender is dropped. Returns once
/// the handler has begun reading the body, that is while the request holds its permit.
async fn held_create(app: &Router) -> (oneshot::Sender<()>, tokio::task::JoinHandle<Response>) {
    let (entered_tx, entered) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();
    let start = futures::stream::once(async move {
        let _ = entered_tx.send(());
        Ok::<_, Infallible>(Bytes::from_static(b"{"))
    });
    let rest = futures::stream::once(released).filter_map(|_| std::future::ready(None));
    let req = request(Method::POST, PODS, None, Body::from_stream(start.chain(rest)));
    let app = app.clone();
    let task = tokio::spawn(async move { app.oneshot(req).await.expect("infallible") });
    tokio::time::timeout(DEADLINE, entered).await.expect("the handler reads the body in time").expect("sent");
    (release, task)
}

#[test]
fn requests_are_classified_as_upstream_does() {
    let c = |m: Method, p: &str, q: Option<&str>| classify(&m, p, q);
    assert_eq!(c(Method::GET, PODS, None), Class::ReadOnly);
    assert_eq!(c(Method::GET, PODS, Some("watch=true&resourceVersion=3")), Class::Watch);
    assert_eq!(c(Method::GET, PODS, Some("watch=1")), Class::Watch);
    assert_eq!(c(Method::GET, "/api/v1/watch/namespaces/default/pods", None), Class::Watch);
    assert_eq!(c(Method::GET, "/apis/apps/v1/deployments", Some("watch=true")), Class::Watch);
    assert_eq!(c(Method::GET, "/ui/api/watch", Some("pods=3")), Class::Watch);
    assert_eq!(c(Method::POST, PODS, Some("watch=true")), Class::Mutating, "only a GET watches");
    assert_eq!(c(Method::GET, PODS, Some("watch=false")), Class::ReadOnly);
    for sub in ["log", "exec", "attach", "portforward"] {
        let path = format!("{PODS}/web-1/{sub}");
        assert_eq!(c(Method::POST, &path, None), Class::LongRunning, "{sub}");
    }
    assert_eq!(c(Method::GET, "/api/v1/nodes/n1/proxy/metrics", None), Class::LongRunning);
    assert_eq!(c(Method::GET, "/api/v1/namespaces/log", None), Class::ReadOnly, "a namespace named log");
    assert_eq!(c(Method::PUT, "/api/v1/namespaces/x/finalize", None), Class::Mutating);
    assert_eq!(c(Method::GET, "/api/v1/namespaces/x/proxy", None), Class::ReadOnly, "a list, not a subresource");
    for verb in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        assert_eq!(c(verb.clone(), &format!("{PODS}/web-1"), None), Class::Mutating, "{verb}");
    }
    assert_eq!(c(Method::GET, "/readyz", None), Class::Probe);
    assert_eq!(c(Method::GET, "/metrics", None), Class::Probe);
    assert_eq!(c(Method::GET, "/apis", None), Class::ReadOnly);
}

#[tokio::test]
async fn mutations_beyond_the_limit_get_429_while_reads_and_watches_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_node, registry) = crate::testing::solo_registry(dir.path()).await;
    let limits = LimitsConfig { max_mutating_requests_inflight: 2, ..Default::default() };
    let app = router(registry, ApiConfig { limits, ..Default::default() });

    let (release_first, first) = held_create(&app).await;
    let (_release_second, _second) = held_create(&app).await;
    let pod =
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#;
    let refused = send(&app, request(Method::POST, PODS, None, Body::from(pod))).await;
    assert_retry_after(&refused);
    let status = status_of(refused, 429, "TooManyRequests").await;
    assert_eq!(status["message"], "Too many requests, please try again later.");

    let list = send(&app, request(Method::GET, PODS, None, Body::empty())).await;
    assert_eq!(list.status(), StatusCode::OK, "reads have their own pool");
    let watch = send(&app, request(Method::GET, &format!("{PODS}?watch=true"), None, Body::empty())).await;
    assert_eq!(watch.status(), StatusCode::OK, "watches are not counted in flight");

    drop(release_first);
    let done = tokio::time::timeout(DEADLINE, first).await.expect("the first request ends in time").expect("task");
    assert_eq!(done.status(), StatusCode::BAD_REQUEST, "its body was cut short");
    let created = send(&app, request(Method::POST, PODS, None, Body::from(pod))).await;
    assert_eq!(created.status(), StatusCode::CREATED, "a finished request gives its permit back");

    let text = flotilla_metrics::encode();
    let counted = text.lines().any(|l| {
        l.starts_with("flotilla_apiserver_requests_total")
            && l.contains(r#"verb="create""#)
            && l.contains(r#"resource="pods""#)
            && l.contains(r#"code="429""#)
    });
    assert!(counted, "the refusal is counted in the metrics:\n{text}");
}

#[tokio::test]
async fn one_client_gets_429_beyond_its_open_watches_until_one_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_node, registry) = crate::testing::solo_registry(dir.path()).await;
    let limits = LimitsConfig { max_watches_per_client: 2, ..Default::default() };
    let app = router(registry, ApiConfig { limits, ..Default::default() });
    let watch = |from: [u8; 4]| request(Method::GET, &format!("{PODS}?watch=true"), Some(from), Body::empty());
    let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);

    let first = send(&app, watch(a)).await;
    let second = send(&app, watch(a)).await;
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    let refused = send(&app, watch(a)).await;
    assert_retry_after(&refused);
    status_of(refused, 429, "TooManyRequests").await;
    assert_eq!(send(&app, watch(b)).await.status(), StatusCode::OK, "another client has its own bound");
    let list = send(&app, request(Method::GET, PODS, Some(a), Body::empty())).await;
    assert_eq!(list.status(), StatusCode::OK, "only watches are bounded per client");

    drop(first); // as hyper does when the client goes away
    let again = send(&app, watch(a)).await;
    assert_eq!(again.status(), StatusCode::OK, "a closed watch gives its slot back");
    assert_eq!(send(&app, watch(a)).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_watch_slot_is_given_back_when_its_stream_ends() {
    let limits = Arc::new(Limits::new(&LimitsConfig { max_watches_per_client: 1, ..Default::default() }));
    let app = Router::new()
        .route(PODS, get(|| async { "one event\n" }))
        .layer(axum::middleware::from_fn_with_state(limits.clone(), enforce));
    let watch = || request(Method::GET, &format!("{PODS}?watch=true"), Some([10, 0, 0, 1]), Body::empty());

    let mut body = send(&app, watch()).await.into_body().into_data_stream();
    assert_eq!(send(&app, watch()).await.status(), StatusCode::TOO_MANY_REQUESTS);
    while body.next().await.is_some() {}
    drop(body);
    assert!(limits.watches.lock().expect("not poisoned").is_empty(), "no client left in the table");
    assert_eq!(send(&app, watch()).await.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_request_over_the_timeout_gets_504_and_gives_its_permit_back() {
    let config = LimitsConfig { max_requests_inflight: 1, ..Default::default() };
    // A list that never answers; a watch that answers only after twice the timeout.
    let timeout = config.request_timeout;
    let handler = move |RawQuery(q): RawQuery| async move {
        if q.is_some_and(|q| q.contains("watch")) {
            tokio::time::sleep(timeout * 2).await;
            return "watching";
        }
        std::future::pending().await
    };
    let app = Router::new()
        .route(PODS, get(handler))
        .layer(axum::middleware::from_fn_with_state(Arc::new(Limits::new(&config)), enforce));

    // Paused time runs ahead whenever every task waits, so the deadline passes at once.
    let resp = app.clone().oneshot(request(Method::GET, PODS, None, Body::empty())).await.expect("infallible");
    status_of(resp, 504, "Timeout").await;
    let resp = app.clone().oneshot(request(Method::GET, PODS, None, Body::empty())).await.expect("infallible");
    status_of(resp, 504, "Timeout").await; // not 429: the first one's permit was released

    let watch = request(Method::GET, &format!("{PODS}?watch=true"), None, Body::empty());
    let resp = app.oneshot(watch).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK, "watches are not timed");
}

#[tokio::test(start_paused = true)]
async fn a_client_over_its_rate_gets_429_until_its_bucket_refills_and_others_are_served() {
    let config = LimitsConfig { max_requests_per_client_per_second: 2, ..Default::default() };
    let app = Router::new()
        .route(PODS, get(|| async { "pods" }))
        .route("/readyz", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(Arc::new(Limits::new(&config)), enforce));
    let get_from = |ip: [u8; 4], uri: &str| request(Method::GET, uri, Some(ip), Body::empty());
    let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    for _ in 0..2 {
        assert_eq!(send(&app, get_from(a, PODS)).await.status(), StatusCode::OK, "the burst is served");
    }
    let refused = send(&app, get_from(a, PODS)).await;
    assert_retry_after(&refused);
    let status = status_of(refused, 429, "TooManyRequests").await;
    assert!(status["message"].as_str().unwrap().contains("limit 2/s"), "{status}");
    assert_eq!(send(&app, get_from(b, PODS)).await.status(), StatusCode::OK, "another client is not held back");
    assert_eq!(send(&app, get_from(a, "/readyz")).await.status(), StatusCode::OK, "probes are never limited");
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(send(&app, get_from(a, PODS)).await.status(), StatusCode::OK, "half a second refills one token");
    assert_eq!(send(&app, get_from(a, PODS)).await.status().as_u16(), 429);
}
