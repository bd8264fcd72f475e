//! Talking to the control plane: [`ApiPool`] holds a kube-rs client per API server URL,
//! uses one at a time, and moves to the next when it stops answering; [`watch`] keeps a
//! list+watch going across those moves.
//!
//! Invariants:
//! - Every request is bounded by [`ApiPool::request_timeout`]; a connection error, a
//!   timeout or a 502/503/504 moves the pool to the next server and the request is tried
//!   there, each server at most once per call. Any other answer (404, 409, ...) is the
//!   answer: the servers share one store, so another one would say the same.
//! - The pool never blocks callers on an outage: a call that finds no server answering
//!   returns [`AgentError::Unreachable`] and the caller retries on its own schedule, so
//!   the pod workers keep their pods running meanwhile.
//! - Plain `http://` only for now (TLS and authentication come with issue 9).

pub mod watch;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::{AgentError, ApiStatus};

/// One API server.
struct Server {
    url: String,
    client: kube::Client,
}

/// Clients for every API server, one of them current. See the module doc.
pub struct ApiPool {
    servers: Vec<Server>,
    current: AtomicUsize,
    request_timeout: Duration,
}

/// How long a connection attempt may take before the server counts as unreachable:
/// shorter than the request timeout so a dead address fails over quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl ApiPool {
    /// Clients for `urls` (at least one), each request bounded by `request_timeout`.
    pub fn new(urls: &[String], request_timeout: Duration) -> Result<Self, AgentError> {
        if urls.is_empty() {
            return Err(AgentError::Config("at least one API server URL is needed".into()));
        }
        let servers = urls.iter().map(|url| client(url).map(|client| Server { url: url.clone(), client }));
        let servers = servers.collect::<Result<Vec<_>, _>>()?;
        Ok(Self { servers, current: AtomicUsize::new(0), request_timeout })
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The index and client of the server in use.
    pub fn current(&self) -> (usize, kube::Client) {
        let i = self.current.load(Ordering::Acquire) % self.servers.len();
        (i, self.servers[i].client.clone())
    }

    pub fn url(&self, index: usize) -> &str {
        &self.servers[index % self.servers.len()].url
    }

    /// Server `index` did not answer: move to the next one, unless someone already did.
    pub fn failed(&self, index: usize, why: &str) {
        let next = (index + 1) % self.servers.len();
        if self.current.compare_exchange(index, next, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            tracing::warn!(
                from = self.url(index),
                to = self.url(next),
                error = why,
                "API server unreachable; failing over"
            );
        }
    }

    /// Run `request` against the current server, failing over as the module doc says.
    pub async fn call<T, F, Fut>(&self, request: F) -> Result<T, AgentError>
    where
        F: Fn(kube::Client) -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let mut last = String::new();
        for _ in 0..self.servers.len() {
            let (index, client) = self.current();
            let error = match tokio::time::timeout(self.request_timeout, request(client)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => classify(e),
                Err(_) => AgentError::Unreachable { last: format!("no answer within {:?}", self.request_timeout) },
            };
            match error {
                AgentError::Unreachable { last: why } => {
                    self.failed(index, &why);
                    last = format!("{}: {why}", self.url(index));
                }
                other => return Err(other),
            }
        }
        Err(AgentError::Unreachable { last })
    }
}

fn client(url: &str) -> Result<kube::Client, AgentError> {
    let uri: http::Uri = url.parse().map_err(|e| AgentError::Config(format!("API server URL {url:?}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(AgentError::Config(format!("API server URL {url:?}: only http:// is supported for now")));
    }
    let mut config = kube::Config::new(uri);
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    // Failover is this pool's job: kube's own retries would keep hammering a dead server.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| AgentError::Config(format!("API client for {url}: {e}")))
}

/// Sort a kube-rs error into what the caller does about it.
pub fn classify(e: kube::Error) -> AgentError {
    match e {
        kube::Error::Api(s) if matches!(s.code, 502..=504) => AgentError::Unreachable { last: s.message.clone() },
        kube::Error::Api(s) => {
            AgentError::Api(ApiStatus { code: s.code, reason: s.reason.clone(), message: s.message.clone() })
        }
        e @ (kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_)) => {
            AgentError::Unreachable { last: e.to_string() }
        }
        e => AgentError::Client(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str) -> kube::Error {
        let s = kube::core::Status { code, reason: reason.into(), message: "m".into(), ..Default::default() };
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn only_unavailability_fails_over_other_answers_are_answers() {
        assert!(matches!(classify(status(503, "ServiceUnavailable")), AgentError::Unreachable { .. }));
        assert!(matches!(classify(status(504, "Timeout")), AgentError::Unreachable { .. }));
        let conflict = classify(status(409, "AlreadyExists"));
        assert!(conflict.is_conflict() && conflict.is_already_exists());
        assert!(classify(status(404, "NotFound")).is_not_found());
        assert!(classify(status(410, "Expired")).is_gone());
    }

    #[tokio::test]
    async fn urls_are_checked_and_failover_moves_round_the_servers_once_per_failure() {
        assert!(ApiPool::new(&[], Duration::from_secs(1)).is_err());
        assert!(ApiPool::new(&["https://a:6443".into()], Duration::from_secs(1)).is_err(), "no TLS yet");
        let urls = ["http://127.0.0.1:1".to_string(), "http://127.0.0.1:2".to_string()];
        let pool = ApiPool::new(&urls, Duration::from_secs(1)).unwrap();
        assert_eq!(pool.current().0, 0);
        pool.failed(0, "refused");
        pool.failed(0, "refused (a second report of the same failure)");
        assert_eq!(pool.current().0, 1);
        pool.failed(1, "refused");
        assert_eq!(pool.current().0, 0, "wraps around");
        let answer: Result<(), AgentError> =
            pool.call(|c| async move { c.apiserver_version().await.map(|_| ()) }).await;
        assert!(matches!(answer, Err(AgentError::Unreachable { .. })), "every server tried: {answer:?}");
    }
}
