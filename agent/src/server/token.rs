//! The shared secret between API servers and agents: a random token in the Secret
//! `kube-system/flotilla-node-proxy-token` (key `token`). API servers send it as a bearer
//! token on every request they proxy to an agent; agents refuse requests without it.
//!
//! Invariants:
//! - Create-if-absent: whoever finds the Secret missing (an agent or an API server) creates
//!   it with a fresh random token; a creation that loses the race (409) reads the winner's,
//!   so every party ends up with the same token.
//! - The agent reads the token once, before its endpoint serves anything.
//!
//! This is an interim scheme: issue 9 replaces it with mutual TLS (the API server presents
//! a client certificate, the agent a serving certificate), as upstream's kubelet does.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

use crate::api::ApiPool;
use crate::error::AgentError;

pub const SECRET_NAMESPACE: &str = "kube-system";
pub const SECRET_NAME: &str = "flotilla-node-proxy-token";
pub const SECRET_KEY: &str = "token";
/// Wait between attempts while the control plane is unreachable or not bootstrapped yet.
const RETRY: Duration = Duration::from_secs(1);

/// A fresh token: 32 random bytes, hex (64 characters, safe in a header).
pub fn generate() -> String {
    rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect()
}

/// The token in `secret`, if it holds a usable one.
pub fn from_secret(secret: &Secret) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(SECRET_KEY)?;
    let token = String::from_utf8(bytes.0.clone()).ok()?;
    (!token.is_empty()).then_some(token)
}

fn secret(token: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.into()),
            namespace: Some(SECRET_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(SECRET_KEY.to_string(), ByteString(token.as_bytes().to_vec()))])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// Read the token, creating the Secret if it is missing. One attempt.
pub async fn fetch(pool: &ApiPool) -> Result<String, AgentError> {
    let api = |c| kube::Api::<Secret>::namespaced(c, SECRET_NAMESPACE);
    let existing = pool.call(move |c| async move { api(c).get_opt(SECRET_NAME).await }).await?;
    let secret = match existing {
        Some(s) => s,
        None => {
            let (pp, fresh) = (&PostParams::default(), &secret(&generate()));
            match pool.call(move |c| async move { api(c).create(pp, fresh).await }).await {
                Err(e) if e.is_already_exists() => {
                    pool.call(move |c| async move { api(c).get(SECRET_NAME).await }).await?
                }
                other => other?,
            }
        }
    };
    from_secret(&secret)
        .ok_or_else(|| AgentError::Client(format!("secret {SECRET_NAMESPACE}/{SECRET_NAME} has no {SECRET_KEY:?} key")))
}

/// Read the token, retrying until it succeeds; None if `cancel` fired first.
pub async fn obtain(pool: &ApiPool, cancel: &CancellationToken) -> Option<String> {
    loop {
        match fetch(pool).await {
            Ok(token) => return Some(token),
            Err(e) => tracing::warn!(error = %e, "cannot read the node proxy token yet; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_round_trip_through_the_secret() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(from_secret(&secret(&a)).as_deref(), Some(a.as_str()));
        assert_eq!(from_secret(&Secret::default()), None);
    }
}
