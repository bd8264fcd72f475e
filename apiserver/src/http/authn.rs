//! Authentication: who a request comes from, as kube-apiserver decides it.
//!
//! Each request is authenticated once, in this order:
//! 1. a verified client certificate (the TLS listener checked it against `--client-ca-file`):
//!    user = subject CN, groups = subject O values;
//! 2. `Authorization: Bearer <token>` found in the `--token-auth-file`, or else (with
//!    `--enable-bootstrap-token-auth`) a bootstrap token whose Secret is in `kube-system`
//!    ([`bootstrap`]), or else (with `--service-account-key-file`) a ServiceAccount token
//!    ([`crate::serviceaccount`]);
//! 3. otherwise anonymous: `system:anonymous` in `system:unauthenticated` when
//!    `--anonymous-auth` is on, else 401 — except on the health probes and `/version`,
//!    which stay open to anonymous clients so that load balancers can check a replica
//!    (upstream grants the same paths to anonymous users through `system:public-info-viewer`).
//!
//! Invariants:
//! - A bearer token that is not in the file is 401 even when anonymous requests are allowed
//!   (upstream does the same: a bad credential is never downgraded to anonymous).
//! - Every authenticated user is also in `system:authenticated`.
//! - The handlers and the other middleware find the result as a [`UserInfo`] extension;
//!   without authentication configured (plain HTTP) there is none.
//!
//! The token file is upstream's CSV: `token,user,uid,"group1,group2"` (the groups column is
//! optional); blank lines and lines starting with `#` are skipped. A malformed line or a
//! token given twice is an error naming the line: the server does not start with it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::listener::Peer;

pub mod bootstrap;

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The anonymous user and its group.
pub const ANONYMOUS_USER: &str = "system:anonymous";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// Paths anonymous clients may always reach.
const PUBLIC_PATHS: [&str; 5] = ["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// The authenticated identity of a request (upstream's `user.Info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub(crate) fn authenticated(name: String, uid: String, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        Self { name, uid, groups }
    }

    /// As upstream's `authentication.k8s.io/v1` UserInfo (audit events, SelfSubjectReview).
    pub fn to_json(&self) -> serde_json::Value {
        let mut u = serde_json::json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            u["uid"] = self.uid.clone().into();
        }
        u
    }

    pub fn anonymous() -> Self {
        Self { name: ANONYMOUS_USER.into(), uid: String::new(), groups: vec![UNAUTHENTICATED.into()] }
    }
}

/// Token lookups in the store under way at once, per kind of token (bootstrap tokens and
/// ServiceAccount tokens each have a queue, so a flood of one kind does not lock out the
/// other). Each reads the store before the caller is known, ahead of the per-client
/// limits, so a flood of made-up tokens waits here instead of loading the store.
const MAX_LOOKUPS: usize = 16;
/// How long a lookup may wait for its turn before the request is refused.
const LOOKUP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Why a request waited too long for a lookup: answered 429, so the client tries again.
pub const BUSY: &str = "too many token checks at once";
/// Why a token could not be checked now (the store did not answer): 503, tried again.
pub const UNAVAILABLE: &str = "the token cannot be checked now";

/// A queue of token lookups ([`MAX_LOOKUPS`] at once).
pub(crate) type LookupQueue = tokio::sync::Semaphore;

/// A new queue, for a `static`.
pub(crate) const fn lookup_queue() -> LookupQueue {
    tokio::sync::Semaphore::const_new(MAX_LOOKUPS)
}

/// A turn in `queue` to read the store for a token, or [`BUSY`].
pub(crate) async fn lookup_turn(
    queue: &'static LookupQueue,
) -> Result<tokio::sync::SemaphorePermit<'static>, &'static str> {
    match tokio::time::timeout(LOOKUP_WAIT, queue.acquire()).await {
        Ok(Ok(turn)) => Ok(turn),
        _ => Err(BUSY),
    }
}

/// How requests are authenticated (see the module doc).
#[derive(Default)]
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
    anonymous: bool,
    /// Bootstrap tokens authenticate (upstream's `--enable-bootstrap-token-auth`, off by
    /// default there too).
    bootstrap_tokens: bool,
}

/// Never prints the tokens.
impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("tokens", &self.tokens.len()).field("anonymous", &self.anonymous).finish()
    }
}

impl Authenticator {
    /// Tokens from `token_file` (if any); `anonymous`: serve requests without credentials.
    pub fn new(token_file: Option<&Path>, anonymous: bool) -> Result<Self, String> {
        let tokens = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                parse_token_file(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => HashMap::new(),
        };
        Ok(Self { tokens, anonymous, bootstrap_tokens: false })
    }

    /// Also authenticate bootstrap tokens ([`bootstrap`]).
    pub fn with_bootstrap_tokens(mut self, on: bool) -> Self {
        self.bootstrap_tokens = on;
        self
    }

    /// The user of a request with these credentials on `path`; `Err` with the reason for a 401.
    fn authenticate(
        &self,
        cert: Option<&flotilla_pki::CertIdentity>,
        bearer: Option<&str>,
        path: &str,
    ) -> Result<UserInfo, &'static str> {
        if let Some(id) = cert {
            return Ok(UserInfo::authenticated(id.user.clone(), String::new(), id.groups.clone()));
        }
        if let Some(token) = bearer {
            return self.tokens.get(token).cloned().ok_or("invalid bearer token");
        }
        if self.anonymous || PUBLIC_PATHS.contains(&path) {
            return Ok(UserInfo::anonymous());
        }
        Err("no credentials")
    }
}

/// The middleware: attach the [`UserInfo`] or answer 401.
pub async fn authenticate(
    State((authn, api)): State<(Arc<Authenticator>, Arc<super::ApiState>)>,
    mut req: Request,
    next: Next,
) -> Response {
    let cert = req.extensions().get::<ConnectInfo<Peer>>().and_then(|c| c.0.cert.clone());
    // Any Authorization header must hold a good credential: one that is not a bearer token
    // (another scheme, unreadable bytes) is refused rather than served as anonymous.
    let bearer = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|v| v.split_once(' ')) {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
            _ => Some(""),
        },
    };
    let result = match bearer.filter(|t| cert.is_none() && !authn.tokens.contains_key(*t)) {
        Some(token) => stored_token(&authn, &api, token).await,
        None => None,
    };
    let result = result.unwrap_or_else(|| authn.authenticate(cert.as_ref(), bearer, req.uri().path()));
    match result {
        Ok(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Err(BUSY) => ApiError::TooManyRequests(BUSY.into()).into_response(),
        Err(UNAVAILABLE) => ApiError::Unavailable(UNAVAILABLE.into()).into_response(),
        Err(why) => {
            tracing::debug!(path = req.uri().path(), why, "request not authenticated");
            ApiError::Unauthorized.into_response()
        }
    }
}

/// A token the file does not know may be a bootstrap token or a ServiceAccount token, which
/// are checked against the store; `None` for a token of neither shape (or one whose kind is
/// not enabled), which then fails as unknown.
async fn stored_token(
    authn: &Authenticator,
    api: &super::ApiState,
    token: &str,
) -> Option<Result<UserInfo, &'static str>> {
    if let Some((id, secret)) = bootstrap::parse(token).filter(|_| authn.bootstrap_tokens) {
        return Some(bootstrap::authenticate(&api.registry, id, secret).await);
    }
    let accounts = api.config.service_accounts.as_ref().filter(|_| flotilla_pki::jwt::looks_like_jwt(token))?;
    let now = jiff::Timestamp::now().as_second();
    Some(crate::serviceaccount::authenticate::authenticate(accounts, &api.registry, token, now).await)
}

/// `POST /apis/authentication.k8s.io/{v1,v1beta1}/selfsubjectreviews` (`kubectl auth
/// whoami`): the caller's own user, as this server authenticated it. Without
/// authentication (plain HTTP) there is no user to report: 403, as upstream answers when the
/// API is not available to the caller.
pub async fn self_subject_review(
    axum::extract::Path(version): axum::extract::Path<String>,
    user: Option<axum::Extension<UserInfo>>,
) -> Response {
    if version != "v1" && version != "v1beta1" {
        return ApiError::NoRoute.into_response();
    }
    let Some(axum::Extension(user)) = user else {
        return ApiError::Forbidden("this server does not authenticate requests (plain HTTP)".into()).into_response();
    };
    let review = serde_json::json!({
        "kind": "SelfSubjectReview",
        "apiVersion": format!("authentication.k8s.io/{version}"),
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": user.to_json()},
    });
    (axum::http::StatusCode::CREATED, axum::Json(review)).into_response()
}

/// Upstream's `--token-auth-file` format (see the module doc).
fn parse_token_file(text: &str) -> Result<HashMap<String, UserInfo>, String> {
    let mut tokens = HashMap::new();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_csv(line).map_err(|e| format!("line {n}: {e}"))?;
        let [token, user, uid, rest @ ..] = fields.as_slice() else {
            return Err(format!("line {n}: want token,user,uid[,\"group1,group2\"]"));
        };
        if token.is_empty() || user.is_empty() {
            return Err(format!("line {n}: the token and the user must not be empty"));
        }
        if rest.len() > 1 {
            return Err(format!("line {n}: more than four columns (quote the groups: \"a,b\")"));
        }
        let groups = rest.first().map_or_else(Vec::new, |g| {
            g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect()
        });
        let user = UserInfo::authenticated(user.clone(), uid.clone(), groups);
        if tokens.insert(token.clone(), user).is_some() {
            return Err(format!("line {n}: the token is given twice"));
        }
    }
    Ok(tokens)
}

/// One CSV record: comma-separated fields, a field in double quotes may hold commas and
/// `""` for a quote.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            if !matches!(chars.peek(), None | Some(',')) {
                return Err("text after a quoted field".into());
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                field.push(c);
            }
        }
        fields.push(field.trim().to_string());
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

#[cfg(test)]
mod tests;
