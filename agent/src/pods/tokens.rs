//! ServiceAccount tokens for pods' `serviceAccountToken` projections, as the kubelet's token
//! manager keeps them: requested from the API (a TokenRequest bound to the pod, which the
//! node may ask only for its own pods) and reused until they are due for renewal.
//!
//! Invariants:
//! - One token per (pod uid, audience, lifetime); a pod's projected file is rewritten only
//!   when its token is renewed, so the volume refresh does not mint a token every pass.
//! - A token is renewed once 80% of its lifetime has passed or it is 24 hours old
//!   (upstream's rule). If the renewal fails while the old token is still valid, the old
//!   one stays and the next pass tries again; an expired token is never handed out.
//! - Expired entries are dropped on every use, so tokens of pods gone from the node do not
//!   pile up for longer than their lifetime.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::PostParams;
use tokio::time::Instant;

use crate::api::ApiPool;
use crate::error::AgentError;
use crate::pods::spec;

/// Upstream's default lifetime of a projected token.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Renew after this share of the lifetime...
const RENEW_AT: f64 = 0.8;
/// ...or after this long, whichever comes first.
const RENEW_AFTER: Duration = Duration::from_secs(24 * 3600);

/// One token a pod's projections need.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenRef {
    /// Empty: the API server's own audiences.
    pub audience: String,
    pub expiration_seconds: i64,
}

impl TokenRef {
    pub fn of(projection: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection) -> Self {
        Self {
            audience: projection.audience.clone().unwrap_or_default(),
            expiration_seconds: projection.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        }
    }
}

#[derive(Debug, Clone)]
struct Cached {
    token: String,
    fetched: Instant,
    lifetime: Duration,
}

impl Cached {
    fn due(&self, now: Instant) -> bool {
        let age = now.saturating_duration_since(self.fetched);
        age >= self.lifetime.mul_f64(RENEW_AT) || age >= RENEW_AFTER
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.fetched) >= self.lifetime
    }
}

/// The node's pods' tokens. See the module doc.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<(String, TokenRef), Cached>>,
}

impl TokenCache {
    /// The tokens `wanted` for `pod`, from the cache or the API.
    pub async fn tokens(
        &self,
        pool: &ApiPool,
        pod: &Pod,
        wanted: &BTreeSet<TokenRef>,
    ) -> Result<BTreeMap<TokenRef, String>, AgentError> {
        let uid = spec::uid(pod).to_string();
        let mut tokens = BTreeMap::new();
        for want in wanted {
            let now = Instant::now();
            let cached = self.cached(&uid, want, now);
            let token = match cached {
                Some(c) if !c.due(now) => c.token,
                cached => match request(pool, pod, want).await {
                    Ok((token, lifetime)) => {
                        let entry = Cached { token: token.clone(), fetched: now, lifetime };
                        self.lock().insert((uid.clone(), want.clone()), entry);
                        token
                    }
                    Err(e) => match cached {
                        Some(old) => {
                            tracing::warn!(pod = spec::key(pod), error = %e, "cannot renew a service account token; keeping the current one");
                            old.token
                        }
                        None => return Err(e),
                    },
                },
            };
            tokens.insert(want.clone(), token);
        }
        Ok(tokens)
    }

    /// The unexpired token of `uid` for `want`, dropping every expired one.
    fn cached(&self, uid: &str, want: &TokenRef, now: Instant) -> Option<Cached> {
        let mut entries = self.lock();
        entries.retain(|_, c| !c.expired(now));
        entries.get(&(uid.to_string(), want.clone())).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, TokenRef), Cached>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A TokenRequest for `pod`'s ServiceAccount, bound to the pod: the token and its lifetime.
async fn request(pool: &ApiPool, pod: &Pod, want: &TokenRef) -> Result<(String, Duration), AgentError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
    let body = TokenRequest {
        spec: TokenRequestSpec {
            audiences: if want.audience.is_empty() { Vec::new() } else { vec![want.audience.clone()] },
            expiration_seconds: Some(want.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                kind: Some("Pod".into()),
                api_version: Some("v1".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let (body, account) = (&body, account.as_str());
    let answer: TokenRequest = pool
        .call(move |c| async move {
            kube::Api::<ServiceAccount>::namespaced(c, namespace)
                .create_subresource("token", account, &PostParams::default(), body)
                .await
        })
        .await?;
    let token = answer.status.map(|s| s.token).filter(|t| !t.is_empty());
    let token = token.ok_or_else(|| AgentError::Config("the TokenRequest answer holds no token".into()))?;
    // The server may have cut the lifetime; it says so in the answer's spec.
    let seconds = answer.spec.expiration_seconds.unwrap_or(want.expiration_seconds).max(1);
    Ok((token, Duration::from_secs(seconds as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_due_at_80_percent_or_a_day_and_expires_at_its_lifetime() {
        let t0 = Instant::now();
        let hour = Cached { token: "t".into(), fetched: t0, lifetime: Duration::from_secs(3600) };
        assert!(!hour.due(t0 + Duration::from_secs(2879)));
        assert!(hour.due(t0 + Duration::from_secs(2880)));
        assert!(!hour.expired(t0 + Duration::from_secs(3599)) && hour.expired(t0 + Duration::from_secs(3600)));
        let year = Cached { token: "t".into(), fetched: t0, lifetime: Duration::from_secs(365 * 24 * 3600) };
        assert!(!year.due(t0 + Duration::from_secs(23 * 3600)) && year.due(t0 + RENEW_AFTER));
    }

    #[test]
    fn expired_entries_are_dropped_and_never_returned() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        let want = TokenRef { audience: String::new(), expiration_seconds: 600 };
        let entry = Cached { token: "t".into(), fetched: t0, lifetime: Duration::from_secs(600) };
        cache.lock().insert(("u1".into(), want.clone()), entry.clone());
        cache.lock().insert(("gone".into(), want.clone()), entry);
        assert_eq!(cache.cached("u1", &want, t0 + Duration::from_secs(599)).map(|c| c.token).as_deref(), Some("t"));
        assert!(cache.cached("u1", &want, t0 + Duration::from_secs(600)).is_none());
        assert!(cache.lock().is_empty(), "both expired entries dropped");
    }
}
