//! Who a ServiceAccount token speaks for (see the module doc of [`super`]): first the checks
//! on the token alone ([`check_token`]: signature, issuer, audience, lifetime, subject),
//! then the objects it names ([`check_objects`]: the ServiceAccount, the bound object).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Bound, ServiceAccounts, ALL_GROUP, USER_PREFIX};
use crate::error::ApiError;
use crate::http::authn::{lookup_queue, lookup_turn, LookupQueue, UserInfo, UNAVAILABLE};
use crate::registry::Registry;
use crate::resources;

/// How far a token's `nbf` and `iat` may be ahead of this server's clock (replicas' clocks
/// differ a little), and how long a bound object may have been deleting before its tokens
/// stop working (upstream's grace).
const LEEWAY_SECONDS: i64 = 60;

/// How long a passed object check stands for the same claims: a token used again within
/// it is not looked up again, so a pod calling in a loop costs the store nothing.
/// Upstream checks against informer caches, which lag behind the store too. The cost: a
/// token keeps working up to this long after its ServiceAccount or bound object is deleted.
const CHECKED_FOR: Duration = Duration::from_secs(5);
/// Bound on remembered checks; when full, expired ones go, and if none has, all.
const CHECKED_MAX: usize = 4096;
static CHECKED: LazyLock<Mutex<HashMap<Claims, Instant>>> = LazyLock::new(Default::default);
static QUEUE: LookupQueue = lookup_queue();

/// What a token that passed [`check_token`] says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claims {
    pub namespace: String,
    pub name: String,
    /// The ServiceAccount's uid when the token was issued.
    pub uid: String,
    pub bound: Option<Bound>,
}

impl Claims {
    /// The user: `system:serviceaccount:<ns>:<name>` in `system:serviceaccounts` and
    /// `system:serviceaccounts:<ns>`.
    pub fn user(&self) -> UserInfo {
        UserInfo::authenticated(
            format!("{USER_PREFIX}{}:{}", self.namespace, self.name),
            self.uid.clone(),
            vec![ALL_GROUP.to_string(), format!("{ALL_GROUP}:{}", self.namespace)],
        )
    }
}

/// The user of `token` at `now` (Unix seconds); `Err` with the reason for a 401 (or
/// [`crate::http::authn::BUSY`]).
pub async fn authenticate(
    sa: &ServiceAccounts,
    registry: &Registry,
    token: &str,
    now: i64,
) -> Result<UserInfo, &'static str> {
    let claims = check_token(sa, token, now)?;
    if recently_checked(&claims) {
        return Ok(claims.user());
    }
    let _turn = lookup_turn(&QUEUE).await?;
    check_objects(registry, &claims, now).await?;
    remember(&claims);
    Ok(claims.user())
}

fn recently_checked(claims: &Claims) -> bool {
    let checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    checked.get(claims).is_some_and(|at| at.elapsed() < CHECKED_FOR)
}

fn remember(claims: &Claims) {
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if checked.len() >= CHECKED_MAX {
        checked.retain(|_, at| at.elapsed() < CHECKED_FOR);
        if checked.len() >= CHECKED_MAX {
            checked.clear();
        }
    }
    checked.insert(claims.clone(), Instant::now());
}

/// The checks that need nothing but the token and the clock.
pub fn check_token(sa: &ServiceAccounts, token: &str, now: i64) -> Result<Claims, &'static str> {
    let raw = flotilla_pki::jwt::verify(&sa.keys, token).map_err(|_| "invalid bearer token")?;
    let claims: Value = serde_json::from_slice(&raw).map_err(|_| "the token's claims are not JSON")?;
    if claims["iss"].as_str() != Some(sa.issuer.as_str()) {
        return Err("the token has another issuer");
    }
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.iter().any(|a| sa.audiences.iter().any(|ours| ours == a)) {
        return Err("the token is not for this server's audiences");
    }
    let exp = claims["exp"].as_i64().ok_or("the token has no expiry")?;
    if exp <= now {
        return Err("the token has expired");
    }
    let not_before = claims["nbf"].as_i64().or(claims["iat"].as_i64()).unwrap_or(i64::MIN);
    if not_before > now + LEEWAY_SECONDS {
        return Err("the token is not valid yet");
    }
    let k8s = &claims["kubernetes.io"];
    let namespace = k8s["namespace"].as_str().ok_or("the token names no namespace")?;
    let name = k8s["serviceaccount"]["name"].as_str().ok_or("the token names no service account")?;
    if claims["sub"].as_str() != Some(&format!("{USER_PREFIX}{namespace}:{name}")) {
        return Err("the token's subject does not match its service account");
    }
    let bound = [("pod", "Pod"), ("secret", "Secret"), ("node", "Node")].iter().find_map(|(claim, kind)| {
        let b = &k8s[*claim];
        Some(Bound {
            kind: kind.to_string(),
            name: b["name"].as_str()?.to_string(),
            uid: b["uid"].as_str().unwrap_or_default().to_string(),
        })
    });
    // A pod-bound token also names the pod's node; only the pod decides whether it holds.
    let bound = match bound {
        Some(b) if b.kind == "Node" && !k8s["pod"].is_null() => None,
        other => other,
    };
    Ok(Claims {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: k8s["serviceaccount"]["uid"].as_str().unwrap_or_default().to_string(),
        bound,
    })
}

/// The ServiceAccount, and the object the token is bound to, still exist with the uids the
/// token names, and that object is not long gone into deletion.
pub async fn check_objects(registry: &Registry, claims: &Claims, now: i64) -> Result<(), &'static str> {
    let accounts = resources::lookup("", "v1", "serviceaccounts").expect("serviceaccounts are served");
    let account =
        get(registry, accounts, Some(&claims.namespace), &claims.name).await?.ok_or("the service account is gone")?;
    if account["metadata"]["uid"].as_str() != Some(claims.uid.as_str()) {
        return Err("the service account was deleted and recreated since the token was issued");
    }
    if deleting_since(&account, now - LEEWAY_SECONDS) {
        return Err("the service account is being deleted");
    }
    let Some(bound) = &claims.bound else { return Ok(()) };
    let (plural, namespace) = match bound.kind.as_str() {
        "Pod" => ("pods", Some(claims.namespace.as_str())),
        "Secret" => ("secrets", Some(claims.namespace.as_str())),
        _ => ("nodes", None),
    };
    let res = resources::lookup("", "v1", plural).expect("served");
    let object = get(registry, res, namespace, &bound.name).await?.ok_or("the token's bound object is gone")?;
    if object["metadata"]["uid"].as_str() != Some(bound.uid.as_str()) {
        return Err("the token's bound object was replaced since the token was issued");
    }
    if deleting_since(&object, now - LEEWAY_SECONDS) {
        return Err("the token's bound object is being deleted");
    }
    Ok(())
}

/// Whether `object`'s deletion started before `before` (Unix seconds).
fn deleting_since(object: &Value, before: i64) -> bool {
    let deleting = object["metadata"]["deletionTimestamp"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    deleting.is_some_and(|at| at.as_second() < before)
}

/// The stored object, `None` if there is none; a failing store is also a refusal (the client
/// tries again), never a pass.
async fn get(
    registry: &Registry,
    res: &'static resources::Resource,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, &'static str> {
    match registry.get(res, namespace, name).await {
        Ok(object) => Ok(Some(object)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "cannot check a service account token's objects");
            Err(UNAVAILABLE)
        }
    }
}
