//! Authorization of every authenticated request ([`crate::authz`]), and
//! `SelfSubjectAccessReview` (`kubectl auth can-i`).
//!
//! Only with authentication (TLS): a plain-HTTP server has no users to authorize. The health
//! probes and `/version` are not authorized, so that they answer even when the store cannot
//! (every user may read them anyway, through `system:public-info-viewer`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::authn::UserInfo;
use super::ApiState;
use crate::authz::{rbac, Attributes};
use crate::error::ApiError;

/// Paths every client may reach without a decision.
const UNCHECKED: [&str; 5] = ["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// The middleware: impersonation (`Impersonate-*` headers) if asked and allowed, then 403
/// unless RBAC allows the request.
pub async fn authorize(State(s): State<Arc<ApiState>>, mut req: Request, next: Next) -> Response {
    let Some(mut user) = req.extensions().get::<UserInfo>().cloned() else { return next.run(req).await };
    match impersonate(&s, &user, req.headers()).await {
        Ok(Some(as_user)) => {
            tracing::debug!(user = user.name, as_user = as_user.name, "impersonating");
            req.extensions_mut().insert(as_user.clone());
            user = as_user;
        }
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    if UNCHECKED.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let attrs = Attributes::of_request(req.method(), req.uri().path(), req.uri().query());
    match rbac::authorize(&s.registry, &user, &attrs).await {
        Ok(true) => next.run(req).await,
        Ok(false) => {
            tracing::debug!(user = user.name, ?attrs, "request forbidden");
            ApiError::Forbidden(attrs.forbidden_message(&user.name)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The user `user` acts as through upstream's `Impersonate-User`, `Impersonate-Group` and
/// `Impersonate-Uid` headers, once RBAC allows `user` the verb `impersonate` on each (`users`
/// or `serviceaccounts`, `groups`, `uids`); `None` without the headers.
async fn impersonate(s: &ApiState, user: &UserInfo, headers: &HeaderMap) -> Result<Option<UserInfo>, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(|v| v.trim().to_string()).collect()
    };
    let (names, groups, uids) = (values("Impersonate-User"), values("Impersonate-Group"), values("Impersonate-Uid"));
    let Some(name) = names.first().cloned() else {
        if groups.is_empty() && uids.is_empty() {
            return Ok(None);
        }
        return Err(ApiError::BadRequest("impersonating groups or a uid needs Impersonate-User".into()));
    };
    let check = |resource: &str, group: &str, namespace: &str, target: &str| Attributes::Resource {
        verb: "impersonate".into(),
        group: group.into(),
        resource: resource.into(),
        subresource: String::new(),
        namespace: namespace.into(),
        name: target.into(),
    };
    let mut asks = vec![match name.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
        Some((ns, sa)) => check("serviceaccounts", "", ns, sa),
        None => check("users", "", "", &name),
    }];
    asks.extend(groups.iter().map(|g| check("groups", "", "", g)));
    asks.extend(uids.iter().map(|u| check("uids", "authentication.k8s.io", "", u)));
    for attrs in &asks {
        if !rbac::authorize(&s.registry, user, attrs).await? {
            return Err(ApiError::Forbidden(attrs.forbidden_message(&user.name)));
        }
    }
    let mut as_groups = groups;
    // A ServiceAccount is in its groups, as upstream's token authenticator puts it.
    if let Some((ns, _)) = name.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
        as_groups.extend(["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{ns}")]);
    }
    if !as_groups.iter().any(|g| g == super::authn::AUTHENTICATED) {
        as_groups.push(super::authn::AUTHENTICATED.to_string());
    }
    Ok(Some(UserInfo { name, uid: uids.into_iter().next().unwrap_or_default(), groups: as_groups }))
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: may the caller do what
/// the spec describes? The review comes back with `status.allowed`.
pub async fn self_subject_access_review(
    State(s): State<Arc<ApiState>>,
    Path(version): Path<String>,
    user: Option<Extension<UserInfo>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if version != "v1" {
        return ApiError::NoRoute.into_response();
    }
    let Some(Extension(user)) = user else {
        return ApiError::Forbidden("this server does not authorize requests (plain HTTP)".into()).into_response();
    };
    let cannot = |why: String| ApiError::BadRequest(format!("SelfSubjectAccessReview cannot be decoded: {why}"));
    let review = match super::negotiate::decode_body(&headers, &body, cannot) {
        Ok(review) => review,
        Err(e) => return e.into_response(),
    };
    let Some(attrs) = attributes_of(&review["spec"]) else {
        let message = "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: \
                       Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be \
                       specified";
        return ApiError::Unprocessable(message.into()).into_response();
    };
    let allowed = match rbac::authorize(&s.registry, &user, &attrs).await {
        Ok(allowed) => allowed,
        Err(e) => return e.into_response(),
    };
    let mut status = json!({"allowed": allowed});
    if allowed {
        status["reason"] = json!("allowed by RBAC");
    }
    let answer = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": review["spec"].clone(),
        "status": status,
    });
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// The attributes a review's spec asks about: exactly one of resource or non-resource.
fn attributes_of(spec: &Value) -> Option<Attributes> {
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or("").to_string();
    match (spec.get("resourceAttributes"), spec.get("nonResourceAttributes")) {
        (Some(r), None) if r.is_object() => Some(Attributes::Resource {
            verb: text(r, "verb"),
            group: text(r, "group"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            namespace: text(r, "namespace"),
            name: text(r, "name"),
        }),
        (None, Some(n)) if n.is_object() => {
            Some(Attributes::NonResource { verb: text(n, "verb"), path: text(n, "path") })
        }
        _ => None,
    }
}
