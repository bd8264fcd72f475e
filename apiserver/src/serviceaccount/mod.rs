//! ServiceAccount tokens: signed JWTs, as kube-apiserver issues and checks them.
//!
//! - **Issue** ([`request`]): `POST .../serviceaccounts/<name>/token` (a TokenRequest,
//!   `kubectl create token`) answers a token for `system:serviceaccount:<ns>:<name>`, signed
//!   with `--service-account-signing-key-file` (ES256), optionally bound to a Pod, Secret or
//!   Node. Agents ask for one per pod this way and mount it at
//!   [`admission::MOUNT_PATH`].
//! - **Authenticate** ([`authenticate`]): a bearer token shaped like a JWT whose signature a
//!   `--service-account-key-file` key checks, whose issuer is `--service-account-issuer`,
//!   whose audience is one of `--api-audiences`, and which has not expired. Then the
//!   ServiceAccount and any bound object must still exist with the uids in the token.
//! - **Admit** ([`admission`]): pods get `serviceAccountName: default`, and, unless
//!   `automountServiceAccountToken` is false, a projected `kube-api-access-*` volume with the
//!   token, the cluster CA (`kube-root-ca.crt`) and the namespace, mounted in every
//!   container.
//!
//! Invariants:
//! - Tokens carry upstream's claims (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, and
//!   `kubernetes.io` with the namespace, the ServiceAccount and the bound object's names and
//!   uids), so a token outlives neither its ServiceAccount nor its bound object: deleting
//!   either revokes it, even before it expires.
//! - Nothing about a token is stored; every replica with the same keys accepts every
//!   replica's tokens.
//! - A token that is not ours (another issuer, no key verifies it) is a 401, never anonymous.

pub mod admission;
pub mod authenticate;
pub mod request;

use std::time::Duration;

use flotilla_pki::jwt::{JwtSigner, VerifyingKey};
use serde_json::{json, Value};

/// kubeadm's default `--service-account-issuer`.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// A token's user is this, then `<namespace>:<name>`.
pub const USER_PREFIX: &str = "system:serviceaccount:";
/// Every ServiceAccount is in this group, and in this group followed by `:<namespace>`.
pub const ALL_GROUP: &str = "system:serviceaccounts";
/// The ServiceAccount a pod runs as when it names none; every namespace has one.
pub const DEFAULT_NAME: &str = "default";
/// Shortest lifetime a TokenRequest may ask for (upstream's).
pub const MIN_EXPIRATION: Duration = Duration::from_secs(600);
/// Lifetime of a TokenRequest that asks for none (upstream's default).
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(3600);

/// How this server issues and checks ServiceAccount tokens (the `--service-account-*` flags).
#[derive(Debug)]
pub struct ServiceAccounts {
    /// The `iss` of the tokens issued, and the only one accepted.
    pub issuer: String,
    /// The audiences this server identifies as: a token must name one; a TokenRequest with
    /// none gets these.
    pub audiences: Vec<String>,
    /// Signs tokens (none: this server checks tokens but issues none).
    pub signer: Option<JwtSigner>,
    /// Check tokens' signatures (the signer's own key among them).
    pub keys: Vec<VerifyingKey>,
    /// Longest lifetime issued; longer requests are cut to it (none: no bound).
    pub max_expiration: Option<Duration>,
}

/// The object a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bound {
    /// `Pod`, `Secret` or `Node` (in the claims, its lower-case name is the key).
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// One token to issue.
#[derive(Debug, Clone)]
pub struct Grant {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub audiences: Vec<String>,
    pub lifetime: Duration,
    pub bound: Option<Bound>,
    /// The node of a bound pod.
    pub node: Option<(String, String)>,
}

impl ServiceAccounts {
    /// The token for `grant` and its expiry (Unix seconds).
    pub fn issue(&self, grant: &Grant, now: i64) -> Result<(String, i64), String> {
        let signer = self.signer.as_ref().ok_or("this API server has no --service-account-signing-key-file")?;
        let exp = now.saturating_add(grant.lifetime.as_secs() as i64);
        let claims = self.claims(grant, now, exp);
        let token = signer.sign(claims.to_string().as_bytes()).map_err(|e| e.to_string())?;
        Ok((token, exp))
    }

    fn claims(&self, grant: &Grant, now: i64, exp: i64) -> Value {
        let mut k8s = json!({
            "namespace": grant.namespace,
            "serviceaccount": {"name": grant.name, "uid": grant.uid},
        });
        if let Some(b) = &grant.bound {
            k8s[b.kind.to_ascii_lowercase()] = json!({"name": b.name, "uid": b.uid});
        }
        if let Some((name, uid)) = &grant.node {
            k8s["node"] = json!({"name": name, "uid": uid});
        }
        json!({
            "aud": grant.audiences,
            "exp": exp,
            "iat": now,
            "nbf": now,
            "iss": self.issuer,
            "jti": crate::registry::meta::new_uid(),
            "sub": format!("{USER_PREFIX}{}:{}", grant.namespace, grant.name),
            "kubernetes.io": k8s,
        })
    }
}

#[cfg(test)]
mod tests;
