//! The node's own client certificate, when the agent joins with a bootstrap token instead of
//! being handed a certificate: it makes a key, asks an API server to certify it
//! (`POST /flotilla/v1/node-certificate`, authenticated by the token), keeps both in
//! `<data dir>/pki/node.crt` and `node.key`, and renews the certificate with itself before it
//! expires.
//!
//! Invariants:
//! - The private key is made here and never sent: the server gets a signing request.
//! - A kept certificate is used at start only when it names this node, pairs with the kept
//!   key and chains to `--api-ca-file` today; otherwise (a crash between writing the two
//!   files, an expired certificate, a new CA) the token is needed again.
//! - Getting the first certificate tries every server, again every [`RETRY_BOOTSTRAP`] while
//!   the answers are only "busy" or "unavailable" (429, 5xx, no answer), up to
//!   [`BOOTSTRAP_ROUNDS`] rounds; a refusal (401, 403) ends it at once.
//! - Renewal starts when two thirds of the certificate's lifetime have passed (kubelet
//!   rotates between 70 and 90%), authenticated by the current certificate, asking the
//!   server in use and then the others; the new pair is written (key first) and the pool's
//!   clients are rebuilt with it, so requests move to it without a restart. A failed
//!   renewal is retried every [`RETRY`] until it works or the certificate expires.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{ApiPool, ApiTls};
use crate::error::AgentError;

/// Where the server signs node certificates.
const PATH: &str = "/flotilla/v1/node-certificate";
/// Pause between failed renewals, and the longest sleep before looking at the clock again.
const RETRY: Duration = Duration::from_secs(30);
/// Bound on one certificate request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between rounds of bootstrap requests that found every server busy or unavailable.
const RETRY_BOOTSTRAP: Duration = Duration::from_secs(2);
/// Rounds of bootstrap requests before giving up.
const BOOTSTRAP_ROUNDS: usize = 30;

/// The node's certificate files and what checks them.
#[derive(Clone, Debug)]
pub struct NodeCertificate {
    dir: PathBuf,
    node: String,
    ca_pem: String,
}

/// Why a request for a certificate failed, and whether asking again may help.
struct Failure {
    why: String,
    retry: bool,
}

/// How a request to the signing endpoint authenticates.
pub(super) enum Credentials<'a> {
    Token(&'a str),
    Certificate(&'a ApiTls),
}

impl NodeCertificate {
    /// Node `node`'s certificate kept in `data_dir/pki`, checked against the CA `ca_pem`.
    pub fn new(data_dir: &Path, node: &str, ca_pem: &str) -> Self {
        Self { dir: data_dir.join("pki"), node: node.to_string(), ca_pem: ca_pem.to_string() }
    }

    /// The kept certificate, if it is usable (see the module doc).
    pub fn load(&self) -> Option<ApiTls> {
        let tls = ApiTls {
            ca_pem: self.ca_pem.clone(),
            cert_pem: std::fs::read_to_string(self.dir.join("node.crt")).ok()?,
            key_pem: std::fs::read_to_string(self.dir.join("node.key")).ok()?,
        };
        if tls.identity().ok()?.user != format!("system:node:{}", self.node) {
            return None;
        }
        match flotilla_pki::check_client_pair(&tls.ca_pem, &tls.cert_pem, &tls.key_pem) {
            Ok(()) => Some(tls),
            Err(e) => {
                tracing::warn!(node = self.node, error = %e, "the kept node certificate is unusable");
                None
            }
        }
    }

    /// A new certificate from the first of `urls` that gives one, asked for with bootstrap
    /// token `token`; written to the data dir.
    pub async fn bootstrap(&self, urls: &[String], token: &str) -> Result<ApiTls, AgentError> {
        let clients: Vec<(&String, kube::Client)> = urls
            .iter()
            .map(|url| super::client_with(url, &self.ca_pem, Credentials::Token(token)).map(|c| (url, c)))
            .collect::<Result<_, _>>()?;
        let give_up = |last: &str| AgentError::Config(format!("no node certificate for the bootstrap token: {last}"));
        let mut last = String::from("no API server URL");
        for round in 1..=BOOTSTRAP_ROUNDS {
            for (url, client) in &clients {
                match self.request(client).await {
                    Ok(tls) => {
                        tracing::info!(node = self.node, server = %url, "joined with the bootstrap token");
                        return Ok(tls);
                    }
                    Err(f) if f.retry => last = format!("{url}: {}", f.why),
                    Err(f) => return Err(give_up(&format!("{url}: {}", f.why))),
                }
            }
            if round < BOOTSTRAP_ROUNDS {
                tracing::warn!(node = self.node, error = last, "no server could certify this node yet; retrying");
                tokio::time::sleep(RETRY_BOOTSTRAP).await;
            }
        }
        Err(give_up(&last))
    }

    /// Ask through `client` for a certificate on a new key; save and return it.
    async fn request(&self, client: &kube::Client) -> Result<ApiTls, Failure> {
        let fail = |why: String| Failure { why, retry: false };
        let (csr, key_pem) =
            flotilla_pki::signing_request(&format!("system:node:{}", self.node)).map_err(|e| fail(e.to_string()))?;
        let body = json!({"nodeName": self.node, "request": csr}).to_string().into_bytes();
        let req = http::Request::post(PATH)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| fail(e.to_string()))?;
        let text = match tokio::time::timeout(REQUEST_TIMEOUT, client.request_text(req)).await {
            Err(_) => return Err(Failure { why: format!("no answer within {REQUEST_TIMEOUT:?}"), retry: true }),
            Ok(Err(kube::Error::Api(status))) => {
                let retry = status.code == 429 || status.code >= 500;
                return Err(Failure { why: format!("HTTP {}: {}", status.code, status.message), retry });
            }
            // No connection and the like: another server, or a later try, may answer.
            Ok(Err(e)) => return Err(Failure { why: e.to_string(), retry: true }),
            Ok(Ok(text)) => text,
        };
        let answer: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let cert_pem = answer["certificate"].as_str().ok_or_else(|| fail("no certificate in the answer".into()))?;
        let tls = ApiTls { ca_pem: self.ca_pem.clone(), cert_pem: cert_pem.to_string(), key_pem };
        self.save(&tls).map_err(|e| fail(e.to_string()))?;
        Ok(tls)
    }

    /// Write the pair as `flotilla-pki` writes every pair: key first (0600), each through a
    /// new temporary file and a rename.
    fn save(&self, tls: &ApiTls) -> Result<(), AgentError> {
        let pair = flotilla_pki::Issued { cert_pem: tls.cert_pem.clone(), key_pem: tls.key_pem.clone() };
        pair.save(&self.dir, "node").map_err(|e| AgentError::Config(format!("writing {}: {e}", self.dir.display())))
    }

    /// Renew the certificate `pool` uses as the module doc says, until `cancel` fires.
    pub async fn renew(self, pool: Arc<ApiPool>, mut current: ApiTls, cancel: CancellationToken) {
        loop {
            let wait = flotilla_pki::renew_at(&current.cert_pem).duration_since(SystemTime::now()).unwrap_or_default();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait.min(RETRY)) => {}
            }
            if wait > RETRY {
                continue;
            }
            match self.renew_once(&pool, &current).await {
                Ok(next) => current = next,
                Err(e) => {
                    tracing::warn!(node = self.node, error = %e, "renewing the node certificate failed; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        }
    }

    /// One renewal, asking the server in use first and the others after it.
    async fn renew_once(&self, pool: &ApiPool, current: &ApiTls) -> Result<ApiTls, AgentError> {
        let (id, _) = pool.current();
        let mut urls = pool.urls();
        let in_use = pool.url(id);
        let first = urls.iter().position(|u| *u == in_use).unwrap_or(0);
        urls.rotate_left(first);
        let mut last = String::from("no API server URL");
        for url in urls {
            let client = super::client_with(&url, &self.ca_pem, Credentials::Certificate(current))?;
            match self.request(&client).await {
                Ok(next) => {
                    pool.replace_tls(next.clone())?;
                    let (_, not_after) =
                        flotilla_pki::validity(&next.cert_pem).map_err(|e| AgentError::Config(e.to_string()))?;
                    let valid_for_s = not_after.duration_since(SystemTime::now()).unwrap_or_default().as_secs();
                    tracing::info!(node = self.node, server = url, valid_for_s, "renewed the node certificate");
                    return Ok(next);
                }
                Err(f) => last = format!("{url}: {}", f.why),
            }
        }
        Err(AgentError::Config(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_certificate_is_used_only_when_it_is_this_nodes_and_usable() {
        let dir = tempfile::tempdir().unwrap();
        let ca = flotilla_pki::Ca::generate("ca", Duration::from_secs(86_400)).unwrap();
        let mine = NodeCertificate::new(dir.path(), "n1", ca.cert_pem());
        assert!(mine.load().is_none(), "nothing kept yet");
        let issued = ca.issue_client("system:node:n1", &["system:nodes".into()], Duration::from_secs(300)).unwrap();
        let tls = ApiTls { ca_pem: ca.cert_pem().into(), cert_pem: issued.cert_pem, key_pem: issued.key_pem };
        mine.save(&tls).unwrap();
        assert_eq!(mine.load().map(|t| t.cert_pem), Some(tls.cert_pem.clone()));
        let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions());
        assert_eq!(mode(&dir.path().join("pki/node.key")) & 0o777, 0o600);
        assert!(NodeCertificate::new(dir.path(), "n2", ca.cert_pem()).load().is_none(), "another node's");
        // Another CA: the kept certificate does not chain to the CA the agent now trusts.
        let new_ca = flotilla_pki::Ca::generate("ca2", Duration::from_secs(86_400)).unwrap();
        assert!(NodeCertificate::new(dir.path(), "n1", new_ca.cert_pem()).load().is_none(), "another CA");
        // A new key next to the old certificate (a crash between the two writes).
        let other = ca.issue_client("system:node:n1", &[], Duration::from_secs(300)).unwrap();
        std::fs::write(dir.path().join("pki/node.key"), other.key_pem).unwrap();
        assert!(mine.load().is_none(), "a key that does not match its certificate");
    }
}
