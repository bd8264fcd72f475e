//! Talking to the control plane: [`ApiPool`] holds a kube-rs client per API server URL,
//! uses one at a time, and moves to the next when it stops answering; [`watch`] keeps a
//! list+watch going across those moves; [`discovery`] adds the replicas the agent was not
//! given from the `kubernetes` Service's Endpoints.
//!
//! Invariants:
//! - Every request is bounded by [`ApiPool::request_timeout`]; a connection error, a
//!   timeout or a 502/503/504 moves the pool to the next server and the request is tried
//!   there, each server at most once per call. Any other answer (404, 409, ...) is the
//!   answer: the servers share one store, so another one would say the same.
//! - The pool never blocks callers on an outage: a call that finds no server answering
//!   returns [`AgentError::Unreachable`] and the caller retries on its own schedule, so
//!   the pod workers keep their pods running meanwhile.
//! - The configured servers come first, in order, and stay; discovered ones follow and
//!   may come and go ([`ApiPool::set_discovered`]). A failure is reported by [`ServerId`],
//!   which names one server for the pool's lifetime, so a report that arrives after the
//!   list changed never moves the pool off a server that did not fail.
//! - Either every server is `https://` and the pool holds [`ApiTls`] (the cluster CA and
//!   the node's client certificate: the API server authenticates the agent as
//!   `system:node:<name>`), or every server is `http://` and there is no TLS. Discovered
//!   servers get the scheme and credentials of the configured ones.

pub mod certificate;
pub mod discovery;
pub mod watch;

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{AgentError, ApiStatus};

/// One API server.
struct Server {
    id: ServerId,
    url: String,
    client: kube::Client,
}

/// One server of a pool, as long as the pool lives (ids are never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerId(u64);

/// The servers and which one is in use.
struct Servers {
    /// The configured servers, then the discovered ones.
    list: Vec<Server>,
    configured: usize,
    /// Position in `list` of the server in use.
    current: usize,
    next_id: u64,
    /// What every client is built with; replaced when the node's certificate is renewed
    /// ([`ApiPool::replace_tls`]), under the same lock as the clients, so a server
    /// discovered meanwhile never gets the old certificate.
    tls: Option<ApiTls>,
}

impl Servers {
    fn add(&mut self, url: String, client: kube::Client) {
        self.list.push(Server { id: ServerId(self.next_id), url, client });
        self.next_id += 1;
    }
}

/// Clients for every API server, one of them current. See the module doc.
pub struct ApiPool {
    servers: Mutex<Servers>,
    request_timeout: Duration,
}

/// How the agent speaks TLS to the API servers: the CA that signed their certificates and
/// the agent's own client certificate and key (all PEM).
#[derive(Clone)]
pub struct ApiTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls").finish_non_exhaustive()
    }
}

impl ApiTls {
    /// The user and groups the client certificate authenticates as.
    pub fn identity(&self) -> Result<flotilla_pki::CertIdentity, AgentError> {
        let der = pem_certificates(&self.cert_pem, "client certificate")?;
        let leaf = der.first().ok_or_else(|| AgentError::Config("the client certificate file is empty".into()))?;
        flotilla_pki::cert_identity(leaf).map_err(|e| AgentError::Config(format!("client certificate: {e}")))
    }
}

/// The DER certificates of PEM text.
fn pem_certificates(pem: &str, what: &str) -> Result<Vec<Vec<u8>>, AgentError> {
    flotilla_pki::certificates_der(pem).map_err(|e| AgentError::Config(format!("{what}: {e}")))
}

/// How long a connection attempt may take before the server counts as unreachable:
/// shorter than the request timeout so a dead address fails over quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl ApiPool {
    /// Clients for `urls` (at least one; `https://` exactly when `tls` is given), each
    /// request bounded by `request_timeout`.
    pub fn new(urls: &[String], request_timeout: Duration, tls: Option<ApiTls>) -> Result<Self, AgentError> {
        if urls.is_empty() {
            return Err(AgentError::Config("at least one API server URL is needed".into()));
        }
        let mut servers = Servers { list: Vec::new(), configured: urls.len(), current: 0, next_id: 0, tls: None };
        for url in urls {
            servers.add(url.clone(), client(url, tls.as_ref())?);
        }
        servers.tls = tls;
        Ok(Self { servers: Mutex::new(servers), request_timeout })
    }

    /// Use `tls` (a renewed node certificate) from now on: every server gets a new client,
    /// keeping its id; requests already under way finish on the old one.
    pub fn replace_tls(&self, tls: ApiTls) -> Result<(), AgentError> {
        let mut s = self.lock();
        let clients: Vec<kube::Client> = s.list.iter().map(|x| client(&x.url, Some(&tls))).collect::<Result<_, _>>()?;
        for (server, client) in s.list.iter_mut().zip(clients) {
            server.client = client;
        }
        s.tls = Some(tls);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Servers> {
        // Every section below leaves the list whole, so a panic elsewhere cannot break it.
        self.servers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The server in use and its client.
    pub fn current(&self) -> (ServerId, kube::Client) {
        let s = self.lock();
        let server = &s.list[s.current % s.list.len()];
        (server.id, server.client.clone())
    }

    /// The URL of server `id` (a placeholder once discovery removed it).
    pub fn url(&self, id: ServerId) -> String {
        let s = self.lock();
        s.list.iter().find(|x| x.id == id).map_or_else(|| "a removed API server".into(), |x| x.url.clone())
    }

    /// Every server's URL, configured ones first.
    pub fn urls(&self) -> Vec<String> {
        self.lock().list.iter().map(|x| x.url.clone()).collect()
    }

    /// The configured servers' URLs.
    pub fn configured(&self) -> Vec<String> {
        let s = self.lock();
        s.list[..s.configured].iter().map(|x| x.url.clone()).collect()
    }

    /// Server `id` did not answer: move to the next one, unless someone already did.
    pub fn failed(&self, id: ServerId, why: &str) {
        let (from, to) = {
            let mut s = self.lock();
            let at = s.current % s.list.len();
            if s.list[at].id != id {
                return;
            }
            s.current = (at + 1) % s.list.len();
            (s.list[at].url.clone(), s.list[s.current].url.clone())
        };
        tracing::warn!(from, to, error = why, "API server unreachable; failing over");
    }

    /// Make the discovered servers exactly `urls` (after the configured ones, which stay);
    /// servers kept keep their clients and ids, and the one in use stays in use unless it
    /// was removed. Returns the URLs added and removed.
    pub fn set_discovered(&self, urls: &[String]) -> Result<(Vec<String>, Vec<String>), AgentError> {
        let mut s = self.lock();
        let new_clients: Vec<(String, kube::Client)> = urls
            .iter()
            .filter(|u| !s.list.iter().any(|x| x.url == **u))
            .map(|u| client(u, s.tls.as_ref()).map(|c| (u.clone(), c)))
            .collect::<Result<_, _>>()?;
        let in_use = s.list[s.current % s.list.len()].id;
        let configured = s.configured;
        let discovered: Vec<Server> = s.list.drain(configured..).collect();
        let mut removed = Vec::new();
        for server in discovered {
            if urls.contains(&server.url) {
                s.list.push(server);
            } else {
                removed.push(server.url);
            }
        }
        let mut added = Vec::new();
        for (url, client) in new_clients {
            if !s.list.iter().any(|x| x.url == url) {
                added.push(url.clone());
                s.add(url, client);
            }
        }
        s.current = s.list.iter().position(|x| x.id == in_use).unwrap_or(0);
        Ok((added, removed))
    }

    /// Run `request` against the current server, failing over as the module doc says.
    pub async fn call<T, F, Fut>(&self, request: F) -> Result<T, AgentError>
    where
        F: Fn(kube::Client) -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let mut last = String::new();
        let tries = self.lock().list.len();
        for _ in 0..tries {
            let (id, client) = self.current();
            let error = match tokio::time::timeout(self.request_timeout, request(client)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => classify(e),
                Err(_) => AgentError::Unreachable { last: format!("no answer within {:?}", self.request_timeout) },
            };
            match error {
                AgentError::Unreachable { last: why } => {
                    self.failed(id, &why);
                    last = format!("{}: {why}", self.url(id));
                }
                other => return Err(other),
            }
        }
        Err(AgentError::Unreachable { last })
    }
}

fn client(url: &str, tls: Option<&ApiTls>) -> Result<kube::Client, AgentError> {
    let bad = |why: String| AgentError::Config(format!("API server URL {url:?}: {why}"));
    let uri: http::Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("expected http:// or https://".into())),
    };
    match (https, tls) {
        (true, Some(tls)) => client_with(url, &tls.ca_pem, certificate::Credentials::Certificate(tls)),
        (true, None) => Err(bad("https:// needs the CA and a client certificate (--api-ca-file …)".into())),
        (false, Some(_)) => Err(bad("the agent has a client certificate: use https://".into())),
        (false, None) => {
            let mut config = kube::Config::new(uri);
            // kube builds its TLS connector even for http://, and without trust anchors it
            // loads the system's, failing where there are none (a bare container). An empty
            // set keeps it from looking; plain HTTP never uses it.
            config.root_cert = Some(Vec::new());
            build(url, config)
        }
    }
}

/// The client of `config`, with the pool's timeouts and without kube's own retries.
fn build(url: &str, mut config: kube::Config) -> Result<kube::Client, AgentError> {
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    // Failover is this pool's job: kube's own retries would keep hammering a dead server.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| AgentError::Config(format!("API client for {url}: {e}")))
}

/// A client for `https://` `url` trusting `ca_pem` and presenting `credentials`.
fn client_with(url: &str, ca_pem: &str, credentials: certificate::Credentials<'_>) -> Result<kube::Client, AgentError> {
    use base64::Engine;
    let bad = |why: String| AgentError::Config(format!("API server URL {url:?}: {why}"));
    let uri: http::Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("TLS credentials need an https:// URL".into()));
    }
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(pem_certificates(ca_pem, "CA")?);
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    // kube keeps keys and tokens as secret strings, made only by deserializing.
    let auth = match credentials {
        certificate::Credentials::Certificate(tls) => serde_json::json!({
            "client-certificate-data": b64(&tls.cert_pem),
            "client-key-data": b64(&tls.key_pem),
        }),
        certificate::Credentials::Token(token) => serde_json::json!({"token": token}),
    };
    config.auth_info = serde_json::from_value(auth).map_err(|e| bad(format!("client credentials: {e}")))?;
    build(url, config)
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
    async fn plain_http_needs_no_system_trust_store() {
        // As in a container without CA certificates (nextest runs each test in its own
        // process, so the environment is this test's).
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        std::env::set_var("SSL_CERT_FILE", &empty);
        std::env::set_var("SSL_CERT_DIR", dir.path());
        let made = client("http://127.0.0.1:1", None);
        assert!(made.is_ok(), "{:?}", made.err());
    }

    #[tokio::test]
    async fn urls_are_checked_and_failover_moves_round_the_servers_once_per_failure() {
        assert!(ApiPool::new(&[], Duration::from_secs(1), None).is_err());
        assert!(ApiPool::new(&["https://a:6443".into()], Duration::from_secs(1), None).is_err(), "no credentials");
        let urls = ["http://127.0.0.1:1".to_string(), "http://127.0.0.1:2".to_string()];
        let pool = ApiPool::new(&urls, Duration::from_secs(1), None).unwrap();
        let (first, _) = pool.current();
        assert_eq!(pool.url(first), urls[0]);
        pool.failed(first, "refused");
        pool.failed(first, "refused (a second report of the same failure)");
        let (second, _) = pool.current();
        assert_eq!(pool.url(second), urls[1]);
        pool.failed(second, "refused");
        assert_eq!(pool.current().0, first, "wraps around");
        let answer: Result<(), AgentError> =
            pool.call(|c| async move { c.apiserver_version().await.map(|_| ()) }).await;
        assert!(matches!(answer, Err(AgentError::Unreachable { .. })), "every server tried: {answer:?}");
    }

    #[tokio::test]
    async fn discovered_servers_follow_the_list_and_configured_ones_stay() {
        let url = |p: u16| format!("http://127.0.0.1:{p}");
        let pool = ApiPool::new(&[url(1)], Duration::from_secs(1), None).unwrap();
        let (added, removed) = pool.set_discovered(&[url(2), url(3)]).unwrap();
        assert_eq!((added, removed), (vec![url(2), url(3)], vec![]));
        assert_eq!(pool.urls(), [url(1), url(2), url(3)]);
        // The pool moves to 3; a late report that 1 failed must not move it again.
        let (one, _) = pool.current();
        pool.failed(one, "refused");
        let (two, _) = pool.current();
        pool.failed(two, "refused");
        let (three, _) = pool.current();
        assert_eq!(pool.url(three), url(3));
        // 2 leaves the Endpoints, 4 joins, and the configured 1 is listed too: 1 stays
        // once, at the front, and the pool stays on 3.
        let (added, removed) = pool.set_discovered(&[url(1), url(3), url(4)]).unwrap();
        assert_eq!((added, removed), (vec![url(4)], vec![url(2)]));
        assert_eq!(pool.urls(), [url(1), url(3), url(4)]);
        assert_eq!(pool.current().0, three, "the server in use stays in use");
        pool.failed(two, "a report about a removed server");
        assert_eq!(pool.current().0, three);
        assert_eq!(pool.url(two), "a removed API server");
        // 3 goes too: the pool falls back to the first configured server.
        pool.set_discovered(&[url(4)]).unwrap();
        assert_eq!(pool.url(pool.current().0), url(1));
        assert_eq!(pool.configured(), [url(1)]);
    }
}
