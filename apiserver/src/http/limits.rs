//! Overload protection: how much of the API server one client can hold, as kube-apiserver's
//! `--max-requests-inflight`, `--max-mutating-requests-inflight` and `--request-timeout`,
//! plus opt-in bounds on one client's open watches and request rate (upstream has neither:
//! its priority-and-fairness queues play that part).
//!
//! Every request is classified once ([`Class`]), from its method and path only:
//! - long-running: a GET with `watch=true`/`watch=1` or under `/watch/`, the dashboard's
//!   merged watch, and the `log`, `exec`, `attach`, `portforward` and `proxy` subresources
//!   (upstream's list: all logs, not only `follow`). They are neither counted in flight nor
//!   timed; watches alone count against [`LimitsConfig::max_watches_per_client`].
//! - probes (`/healthz`, `/livez`, `/readyz`, `/metrics`): timed, never refused, so that load
//!   balancers and monitoring still see a replica that is busy (upstream's priority and
//!   fairness exempts them the same way).
//! - everything else: mutating (POST, PUT, PATCH, DELETE) or read-only, each with its own pool.
//!
//! Invariants:
//! - A request is admitted or refused at once: there is no queue. A refusal is a 429
//!   `metav1.Status` (reason `TooManyRequests`) with `Retry-After: 1`, which client-go and
//!   kubectl honour by retrying.
//! - An in-flight permit is held exactly while its handler runs (until the response head is
//!   ready); a request that overruns [`LimitsConfig::request_timeout`] is answered 504
//!   (reason `Timeout`) and its handler future is dropped, which releases the permit.
//! - A watch slot is held by the response body: released when the stream ends or when the
//!   connection drops it (client gone, shutdown), so the per-client count cannot leak.
//!   The table holds only clients with an open watch, so it is bounded by the open watches.
//! - The per-client rate is a token bucket holding one second of requests: a client may
//!   burst to that many, then gets 429 with `Retry-After` set to the seconds until its next
//!   token. Every request but probes and long-running ones takes a token (watch starts do).
//!   The table forgets clients whose bucket is full again once it tracks many, so it stays
//!   bounded by the clients active within about a second.
//! - This middleware sits inside the metrics one, so its 429s and 504s are counted there.
//!
//! Clients are told apart by [`client_of`]: the authenticated user, else the peer's IP address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::authn::{UserInfo, ANONYMOUS_USER};
use crate::error::ApiError;
use crate::listener::Peer;

/// Upstream's message for a request refused by the in-flight limit.
const TOO_MANY: &str = "Too many requests, please try again later.";
/// Upstream's message for a request that overran `--request-timeout`.
const TIMED_OUT: &str = "Timeout: request did not complete within requested timeout - context deadline exceeded";
/// Seconds a refused client is told to wait (upstream's constant `Retry-After`).
const RETRY_AFTER_SECONDS: u64 = 1;
/// Clients the rate table tracks before it forgets those with full buckets.
const RATE_TABLE_PRUNE_AT: usize = 4096;

/// The bounds; zero turns the respective one off.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Read-only requests served at once (upstream's `--max-requests-inflight`).
    pub max_requests_inflight: usize,
    /// Mutating requests served at once (upstream's `--max-mutating-requests-inflight`).
    pub max_mutating_requests_inflight: usize,
    /// Open watches one client may hold; off by default, as upstream has no such bound.
    pub max_watches_per_client: usize,
    /// How long a non-long-running request may take (upstream's `--request-timeout`).
    pub request_timeout: Duration,
    /// Requests per second one client may make (burst: one second's worth); off by default.
    pub max_requests_per_client_per_second: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            max_watches_per_client: 0,
            request_timeout: Duration::from_secs(60),
            max_requests_per_client_per_second: 0,
        }
    }
}

/// The live counters of one router.
pub struct Limits {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    max_watches_per_client: usize,
    request_timeout: Duration,
    watches: OpenWatches,
    rates: Option<Rates>,
}

/// Token buckets per client (see the module doc).
struct Rates {
    per_second: f64,
    buckets: Mutex<HashMap<Client, (f64, tokio::time::Instant)>>,
}

impl Rates {
    /// Take one of `client`'s tokens; `Err(seconds until the next one)` when it has none.
    fn take(&self, client: &Client) -> Result<(), u64> {
        let now = tokio::time::Instant::now();
        let rate = self.per_second;
        let refilled =
            |tokens: f64, at: tokio::time::Instant| (tokens + now.duration_since(at).as_secs_f64() * rate).min(rate);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= RATE_TABLE_PRUNE_AT {
            buckets.retain(|_, (tokens, at)| refilled(*tokens, *at) < rate);
        }
        let (tokens, at) = buckets.entry(client.clone()).or_insert((rate, now));
        *tokens = refilled(*tokens, *at);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *tokens) / rate).ceil() as u64).max(1))
        }
    }
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        // Larger numbers than a semaphore can count are as good as no limit.
        let pool = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
        Self {
            read_only: pool(config.max_requests_inflight),
            mutating: pool(config.max_mutating_requests_inflight),
            max_watches_per_client: config.max_watches_per_client,
            request_timeout: config.request_timeout,
            watches: Arc::default(),
            rates: (config.max_requests_per_client_per_second > 0).then(|| Rates {
                per_second: f64::from(config.max_requests_per_client_per_second),
                buckets: Mutex::default(),
            }),
        }
    }

    /// A permit from `pool`, or `None` when the pool is exhausted.
    fn admit(pool: &Option<Arc<Semaphore>>) -> Result<Option<OwnedSemaphorePermit>, ()> {
        match pool {
            None => Ok(None),
            Some(pool) => pool.clone().try_acquire_owned().map(Some).map_err(|_| ()),
        }
    }

    /// A slot for one more watch of `client`, or `None` when it holds the maximum already.
    fn open_watch(&self, client: Client) -> Option<WatchSlot> {
        if self.max_watches_per_client == 0 {
            return Some(WatchSlot(None));
        }
        let mut open = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(client.clone()).or_insert(0);
        if *count >= self.max_watches_per_client {
            return None;
        }
        *count += 1;
        Some(WatchSlot(Some((client, self.watches.clone()))))
    }

    async fn timed(&self, req: Request, next: Next) -> Response {
        if self.request_timeout.is_zero() {
            return next.run(req).await;
        }
        match tokio::time::timeout(self.request_timeout, next.run(req)).await {
            Ok(resp) => resp,
            Err(_) => ApiError::Timeout(TIMED_OUT.into()).into_response(),
        }
    }
}

/// Open watches per client; only clients with at least one are present.
type OpenWatches = Arc<Mutex<HashMap<Client, usize>>>;

/// Who a request comes from, for the per-client bounds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// An authenticated user (anonymous requests are told apart by address).
    User(String),
    Address(IpAddr),
    /// No peer address is known (in-process requests): all such requests are one client.
    Unknown,
}

/// The client a request comes from: its user when authenticated, else its address
/// (behind `flotilla lb`, every unauthenticated client is the balancer's address).
pub fn client_of(req: &Request) -> Client {
    if let Some(user) = req.extensions().get::<UserInfo>().filter(|u| u.name != ANONYMOUS_USER) {
        return Client::User(user.name.clone());
    }
    match req.extensions().get::<ConnectInfo<Peer>>() {
        Some(ConnectInfo(peer)) => Client::Address(peer.addr.ip()),
        None => Client::Unknown,
    }
}

/// What the limits make of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Watch,
    LongRunning,
    Probe,
    Mutating,
    ReadOnly,
}

fn classify(method: &Method, path: &str, query: Option<&str>) -> Class {
    if matches!(path, "/healthz" | "/livez" | "/readyz" | "/metrics") {
        return Class::Probe;
    }
    let resource_path = super::target::split_api_path(path).map(|(_, _, rest)| rest);
    if let Some(rest) = resource_path {
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let subresource = match segments.as_slice() {
            ["namespaces", _, _, _, sub, ..] => Some(*sub),
            ["namespaces", ..] => None,
            [_, _, sub, ..] => Some(*sub),
            _ => None,
        };
        if matches!(subresource, Some("log" | "exec" | "attach" | "portforward" | "proxy")) {
            return Class::LongRunning;
        }
        let watch = segments.first() == Some(&"watch") || super::query_is_watch(query);
        if watch && method == Method::GET {
            return Class::Watch;
        }
    }
    if path == "/ui/api/watch" && method == Method::GET {
        return Class::Watch;
    }
    match *method {
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => Class::Mutating,
        _ => Class::ReadOnly,
    }
}

/// The middleware: admit, refuse or time out one request (see the module doc).
pub async fn enforce(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let class = classify(req.method(), req.uri().path(), req.uri().query());
    if let (Some(rates), Class::Watch | Class::Mutating | Class::ReadOnly) = (&limits.rates, class) {
        let client = client_of(&req);
        if let Err(wait) = rates.take(&client) {
            tracing::debug!(?client, "request refused: over the per-client rate");
            let message =
                format!("Too many requests from this client (limit {}/s), please try again later.", rates.per_second);
            return too_many_requests(message, wait);
        }
    }
    let pool = match class {
        Class::LongRunning => return next.run(req).await,
        Class::Watch => {
            let client = client_of(&req);
            let Some(slot) = limits.open_watch(client.clone()) else {
                tracing::debug!(?client, limit = limits.max_watches_per_client, "watch refused");
                let message = format!(
                    "Too many open watches from this client (limit {}), please try again later.",
                    limits.max_watches_per_client
                );
                return too_many_requests(message, RETRY_AFTER_SECONDS);
            };
            let resp = next.run(req).await;
            return resp.map(|body| Body::from_stream(Holding { inner: body.into_data_stream(), _slot: slot }));
        }
        Class::Probe => return limits.timed(req, next).await,
        Class::Mutating => &limits.mutating,
        Class::ReadOnly => &limits.read_only,
    };
    let Ok(permit) = Limits::admit(pool) else {
        tracing::debug!(method = %req.method(), path = req.uri().path(), "request refused: too many in flight");
        return too_many_requests(TOO_MANY.into(), RETRY_AFTER_SECONDS);
    };
    let resp = limits.timed(req, next).await;
    drop(permit);
    resp
}

fn too_many_requests(message: String, retry_after_seconds: u64) -> Response {
    let mut resp = ApiError::TooManyRequests(message).into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
    resp
}

/// One open watch of one client (`None` inside when watches are not bounded); dropping it
/// gives the slot back.
struct WatchSlot(Option<(Client, OpenWatches)>);

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let Some((client, watches)) = self.0.take() else { return };
        let mut open = watches.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.get_mut(&client).expect("a slot's client is in the table until its last slot drops");
        assert!(*count > 0, "a client in the table has an open watch");
        *count -= 1;
        if *count == 0 {
            open.remove(&client);
        }
    }
}

/// A watch's response body, holding the watch's slot for as long as the body lives.
struct Holding {
    inner: BodyDataStream,
    _slot: WatchSlot,
}

impl Stream for Holding {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests;
