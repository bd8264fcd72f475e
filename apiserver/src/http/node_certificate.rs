//! `POST /flotilla/v1/node-certificate`: an agent's client certificate, signed by the
//! cluster CA that this replica holds (`--cluster-signing-cert-file` and
//! `--cluster-signing-key-file`, kube-controller-manager's names). This is how an agent that
//! joins with a bootstrap token gets its identity, and how it renews it before it expires;
//! k3s's agents fetch theirs the same way. Upstream's kubelet goes through
//! CertificateSigningRequest objects instead, which this server does not serve.
//!
//! Request: `{"nodeName": "n1", "request": "<PEM certificate signing request>"}`.
//! Answer (201): `{"certificate": "<PEM>", "ca": "<PEM>"}`, a certificate for user
//! `system:node:n1` in `system:nodes` on the request's key, valid for
//! `--cluster-signing-duration`.
//!
//! Who may ask (RBAC lets `system:bootstrappers` and `system:nodes` post here; the handler
//! then narrows it):
//! - a bootstrap token's user, for any node name: the token is the proof of membership, as
//!   with upstream's kubelet TLS bootstrap;
//! - node `N` (its current certificate), for `N` only: renewal;
//! - nobody else, admins included (they have `flotilla pki issue`).
//!
//! Invariants: the key never leaves the agent (the request's signature proves it holds
//! it); only the key is taken from the request, never its subject; nothing is stored, so a
//! replica without the CA key refuses (503) and the agent tries another.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::authn::bootstrap::BOOTSTRAPPERS_GROUP;
use super::authn::UserInfo;
use super::ApiState;
use crate::authz::node::{node_name, NODES_GROUP, NODE_USER_PREFIX};
use crate::error::ApiError;

/// The path this is served at.
pub const PATH: &str = "/flotilla/v1/node-certificate";

/// What signs node certificates, and for how long they are valid.
pub struct Signer {
    pub ca: flotilla_pki::Ca,
    pub validity: Duration,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("ca", &self.ca).field("validity", &self.validity).finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CertificateRequest {
    node_name: String,
    request: String,
}

pub async fn issue(
    State(s): State<Arc<ApiState>>,
    user: Option<Extension<UserInfo>>,
    body: axum::body::Bytes,
) -> Response {
    match answer(&s, user.map(|Extension(u)| u), &body) {
        Ok(body) => (StatusCode::CREATED, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn answer(s: &ApiState, user: Option<UserInfo>, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let Some(user) = user else {
        return Err(ApiError::Forbidden("node certificates are issued only over TLS to authenticated callers".into()));
    };
    let req: CertificateRequest =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("node certificate request: {e}")))?;
    let problems = crate::validation::names::is_dns1123_subdomain(&req.node_name);
    if let Some(why) = problems.first() {
        return Err(ApiError::BadRequest(format!("nodeName {:?}: {why}", req.node_name)));
    }
    check_caller(&user, &req.node_name)?;
    let Some(signer) = &s.config.signer else {
        return Err(ApiError::Unavailable(
            "this API server does not sign node certificates (it has no --cluster-signing-key-file)".into(),
        ));
    };
    let subject = format!("{NODE_USER_PREFIX}{}", req.node_name);
    let certificate = signer
        .ca
        .sign_client_request(&req.request, &subject, &[NODES_GROUP.to_string()], signer.validity)
        .map_err(|e| ApiError::BadRequest(format!("node certificate request: {e}")))?;
    tracing::info!(node = %req.node_name, by = %user.name, "issued a node certificate");
    Ok(json!({"certificate": certificate, "ca": signer.ca.cert_pem()}))
}

/// A bootstrapper may ask for any node, a node for itself; nobody else.
fn check_caller(user: &UserInfo, node: &str) -> Result<(), ApiError> {
    if user.groups.iter().any(|g| g == BOOTSTRAPPERS_GROUP) {
        return Ok(());
    }
    match node_name(user) {
        Some(own) if own == node => Ok(()),
        Some(own) => Err(ApiError::Forbidden(format!("node {own:?} may renew only its own certificate, not {node:?}"))),
        None => Err(ApiError::Forbidden(format!(
            "user {:?} may not ask for node certificates: only bootstrap tokens and nodes renewing their own do",
            user.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo { name: name.into(), uid: String::new(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    #[test]
    fn bootstrappers_ask_for_any_node_and_nodes_only_for_themselves() {
        let bootstrapper = user("system:bootstrap:abcdef", &["system:bootstrappers", "system:authenticated"]);
        assert!(check_caller(&bootstrapper, "n1").is_ok());
        let n1 = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        assert!(check_caller(&n1, "n1").is_ok());
        assert!(matches!(check_caller(&n1, "n2"), Err(ApiError::Forbidden(_))));
        let admin = user("admin", &["system:masters", "system:authenticated"]);
        assert!(matches!(check_caller(&admin, "n1"), Err(ApiError::Forbidden(_))));
    }
}
