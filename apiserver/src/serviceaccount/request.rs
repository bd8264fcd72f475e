//! `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`: a TokenRequest
//! (`authentication.k8s.io/v1`), answered 201 with the same object, its spec defaulted and
//! `status.token` and `status.expirationTimestamp` filled in. Nothing is stored.
//!
//! The request, as upstream checks it:
//! - `spec.expirationSeconds`: default 3600, at least 600, below 2^32; cut to
//!   `--service-account-max-token-expiration` when that is shorter.
//! - `spec.audiences`: default `--api-audiences`.
//! - `spec.boundObjectRef`: a `v1` Pod, Secret or Node that exists, with the given uid if
//!   one is given; a bound pod must run as this ServiceAccount. The token dies with it.
//! - A node (its agent asks for its pods' tokens) may only ask for a token bound to a pod
//!   bound to it that runs as this ServiceAccount (upstream's NodeRestriction).

use std::time::Duration;

use serde_json::{json, Value};

use super::{Bound, Grant, ServiceAccounts, DEFAULT_EXPIRATION, MIN_EXPIRATION};
use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::Registry;
use crate::resources;

const API_VERSION: &str = "authentication.k8s.io/v1";
const KIND: &str = "TokenRequest";

/// The answer to TokenRequest `body` for ServiceAccount `namespace/name`, asked by
/// `node` (the caller, when it is a node).
pub async fn create(
    registry: &Registry,
    accounts: Option<&ServiceAccounts>,
    namespace: &str,
    name: &str,
    node: Option<&str>,
    mut body: Value,
) -> ApiResult<Value> {
    let Some(accounts) = accounts.filter(|a| a.signer.is_some()) else {
        return Err(ApiError::Unavailable(
            "this API server issues no service account tokens (it has no --service-account-signing-key-file)".into(),
        ));
    };
    check_type(&body)?;
    // A node learns nothing of objects it has no business with: its checks come first, and
    // the pod they read is the one the token is bound to.
    let checked_pod = match node {
        Some(node) => Some(check_node(registry, node, namespace, name, &body["spec"]["boundObjectRef"]).await?),
        None => None,
    };
    let lifetime = lifetime(&body["spec"]["expirationSeconds"], name, accounts.max_expiration)?;
    let audiences = audiences(&body["spec"]["audiences"], accounts)?;
    let sa_res = resources::lookup("", "v1", "serviceaccounts").expect("served");
    let account = registry.get(sa_res, Some(namespace), name).await?;
    let uid = account["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let reference = &body["spec"]["boundObjectRef"];
    let (bound, node_of_pod) = match reference.is_null() {
        true => (None, None),
        false => bind(registry, namespace, name, reference, checked_pod).await?,
    };
    let grant = Grant {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid,
        audiences: audiences.clone(),
        lifetime,
        bound,
        node: node_of_pod,
    };
    let now = jiff::Timestamp::now().as_second();
    let (token, exp) = accounts.issue(&grant, now).map_err(ApiError::Internal)?;
    let expires = jiff::Timestamp::from_second(exp).map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::debug!(namespace, name, bound = ?grant.bound.as_ref().map(|b| &b.name), "issued a service account token");
    body["apiVersion"] = API_VERSION.into();
    body["kind"] = KIND.into();
    body["metadata"] = json!({"name": name, "namespace": namespace, "creationTimestamp": null});
    body["spec"]["audiences"] = json!(audiences);
    body["spec"]["expirationSeconds"] = json!(lifetime.as_secs());
    body["status"] = json!({"token": token, "expirationTimestamp": expires.to_string()});
    Ok(body)
}

fn check_type(body: &Value) -> ApiResult<()> {
    if !body.is_object() {
        return Err(ApiError::BadRequest("a TokenRequest must be an object".into()));
    }
    for (field, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        let v = &body[field];
        if !v.is_null() && v.as_str() != Some(want) {
            return Err(ApiError::BadRequest(format!("{field} must be {want:?}, got {v}")));
        }
    }
    Ok(())
}

fn invalid(name: &str, field: &str, message: String) -> ApiError {
    ApiError::Invalid {
        kind: KIND.into(),
        name: name.into(),
        group: "authentication.k8s.io".into(),
        causes: vec![Cause { reason: "FieldValueInvalid".into(), message, field: field.into() }],
    }
}

/// The token's lifetime from `spec.expirationSeconds` (see the module doc).
fn lifetime(requested: &Value, name: &str, max: Option<Duration>) -> ApiResult<Duration> {
    const FIELD: &str = "spec.expirationSeconds";
    let seconds = match requested {
        Value::Null => DEFAULT_EXPIRATION.as_secs() as i64,
        v => v.as_i64().ok_or_else(|| invalid(name, FIELD, format!("Invalid value: {v}: must be an integer")))?,
    };
    if seconds < MIN_EXPIRATION.as_secs() as i64 {
        return Err(invalid(
            name,
            FIELD,
            format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
        ));
    }
    if seconds >= 1 << 32 {
        return Err(invalid(
            name,
            FIELD,
            format!("Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"),
        ));
    }
    let asked = Duration::from_secs(seconds as u64);
    Ok(max.map_or(asked, |m| asked.min(m)))
}

fn audiences(requested: &Value, accounts: &ServiceAccounts) -> ApiResult<Vec<String>> {
    let Some(list) = requested.as_array().filter(|a| !a.is_empty()) else {
        return Ok(accounts.audiences.clone());
    };
    list.iter()
        .map(|a| a.as_str().filter(|a| !a.is_empty()).map(String::from))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::BadRequest("spec.audiences must be non-empty strings".into()))
}

/// The object `reference` names (`known` when it was read already), checked (see the module
/// doc), and a bound pod's node (name, uid).
async fn bind(
    registry: &Registry,
    namespace: &str,
    account: &str,
    reference: &Value,
    known: Option<Value>,
) -> ApiResult<(Option<Bound>, Option<(String, String)>)> {
    let kind = reference["kind"].as_str().unwrap_or_default();
    let api_version = reference["apiVersion"].as_str().unwrap_or("v1");
    let (plural, ns) = match (kind, api_version) {
        ("Pod", "v1") => ("pods", Some(namespace)),
        ("Secret", "v1") => ("secrets", Some(namespace)),
        ("Node", "v1") => ("nodes", None),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "cannot bind token for object of type {api_version}, Kind={kind}: only v1 Pod, Secret and Node"
            )))
        }
    };
    let name = reference["name"].as_str().filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| ApiError::BadRequest("spec.boundObjectRef.name is required".into()))?;
    let res = resources::lookup("", "v1", plural).expect("served");
    let object = match known {
        Some(object) => object,
        None => registry.get(res, ns, name).await?,
    };
    let uid = object["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    match reference["uid"].as_str().filter(|u| !u.is_empty()) {
        Some(asked) if asked != uid => {
            return Err(ApiError::PreconditionFailed(
                crate::error::Subject::new(res, name),
                format!(
                    "the UID in the bound object reference ({asked}) does not match the UID in record. The object \
                     might have been deleted and then recreated"
                ),
            ))
        }
        _ => {}
    }
    let mut node = None;
    if kind == "Pod" {
        let runs_as = super::admission::account_name(&object);
        if runs_as != account {
            return Err(ApiError::BadRequest(format!(
                "cannot bind token for pod {name:?}: the pod runs as service account {runs_as:?}, not {account:?}"
            )));
        }
        if let Some(node_name) = object["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            let nodes = resources::lookup("", "v1", "nodes").expect("served");
            let node_uid = match registry.get(nodes, None, node_name).await {
                Ok(n) => n["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
                Err(ApiError::NotFound(_)) => String::new(),
                Err(e) => return Err(e),
            };
            node = Some((node_name.to_string(), node_uid));
        }
    }
    Ok((Some(Bound { kind: kind.to_string(), name: name.to_string(), uid }), node))
}

/// A node may ask only for tokens bound (by uid) to a pod bound to it that runs as
/// `account`; every other request gets the same 403, whatever exists. Returns that pod.
async fn check_node(
    registry: &Registry,
    node: &str,
    namespace: &str,
    account: &str,
    reference: &Value,
) -> ApiResult<Value> {
    let refuse = || {
        ApiError::Forbidden(format!(
            "serviceaccounts \"{account}\" is forbidden: node \"{node}\" can only request tokens bound to pods \
             scheduled to it that run as this service account"
        ))
    };
    let (kind, api_version) = (reference["kind"].as_str(), reference["apiVersion"].as_str().unwrap_or("v1"));
    let (Some("Pod"), "v1") = (kind, api_version) else { return Err(refuse()) };
    let (Some(name), Some(uid)) = (reference["name"].as_str(), reference["uid"].as_str().filter(|u| !u.is_empty()))
    else {
        return Err(refuse());
    };
    let pods = resources::lookup("", "v1", "pods").expect("served");
    let pod = match registry.get(pods, Some(namespace), name).await {
        Ok(pod) => pod,
        Err(ApiError::NotFound(_)) => return Err(refuse()),
        Err(e) => return Err(e),
    };
    let ok = pod["metadata"]["uid"].as_str() == Some(uid)
        && pod["spec"]["nodeName"].as_str() == Some(node)
        && super::admission::account_name(&pod) == account;
    if ok {
        Ok(pod)
    } else {
        Err(refuse())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_default_are_bounded_and_cut_to_the_maximum() {
        assert_eq!(lifetime(&Value::Null, "sa", None).unwrap(), DEFAULT_EXPIRATION);
        assert_eq!(lifetime(&json!(7200), "sa", None).unwrap(), Duration::from_secs(7200));
        assert_eq!(lifetime(&json!(7200), "sa", Some(Duration::from_secs(3600))).unwrap(), DEFAULT_EXPIRATION);
        let short = lifetime(&json!(599), "sa", None).unwrap_err();
        assert!(
            matches!(&short, ApiError::Invalid { causes, .. } if causes[0].message.contains("less than 10 minutes"))
        );
        assert!(matches!(lifetime(&json!(1_i64 << 32), "sa", None), Err(ApiError::Invalid { .. })));
        assert!(matches!(lifetime(&json!("1h"), "sa", None), Err(ApiError::Invalid { .. })));
    }

    #[test]
    fn the_type_must_be_a_token_request_when_named() {
        assert!(check_type(&json!({"spec": {}})).is_ok());
        assert!(check_type(&json!({"apiVersion": API_VERSION, "kind": KIND})).is_ok());
        assert!(check_type(&json!({"kind": "Pod"})).is_err());
        assert!(check_type(&json!([1])).is_err());
    }
}
