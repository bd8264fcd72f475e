//! Authorization of every authenticated request ([`crate::authz`]), and
//! `SelfSubjectAccessReview` (`kubectl auth can-i`).
//!
//! Only with authentication (TLS): a plain-HTTP server has no users to authorize. The health
//! probes and `/version` are not authorized, so that they answer even when the store cannot
//! (every user may read them anyway, through `system:public-info-viewer`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::authn::UserInfo;
use super::resource::WriteChecks;
use super::ApiState;
use crate::authz::{forbidden, rbac, Attributes, Authorizer, Verdict};
use crate::error::ApiError;

/// Paths every client may reach without a decision.
const UNCHECKED: [&str; 5] = ["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// The middleware: impersonation (`Impersonate-*` headers) if asked and allowed, then 403
/// unless the node authorizer or RBAC allows the request (see [`decide`]).
pub async fn authorize(State(s): State<Arc<ApiState>>, mut req: Request, next: Next) -> Response {
    if UNCHECKED.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    // This layer exists only behind authentication, which always names a user.
    let Some(mut user) = req.extensions().get::<UserInfo>().cloned() else {
        return ApiError::Forbidden("no authenticated user".into()).into_response();
    };
    let impersonated = match impersonate(&s, &user, req.headers()).await {
        Ok(Some(as_user)) => {
            tracing::debug!(user = user.name, as_user = as_user.name, "impersonating");
            req.extensions_mut().insert(as_user.clone());
            user = as_user.clone();
            Some(Impersonated(as_user))
        }
        Ok(None) => None,
        Err(e) => return e.into_response(),
    };
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let mut resp = match decide(&s, &user, &method, &uri).await {
        Ok(checks) => {
            req.extensions_mut().insert(checks);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    };
    // For the audit log, which wraps this layer and sees only the authenticated user.
    if let Some(impersonated) = impersonated {
        resp.extensions_mut().insert(impersonated);
    }
    resp
}

/// On a response: the request was made as this user (`Impersonate-User`).
#[derive(Debug, Clone)]
pub struct Impersonated(pub UserInfo);

/// Whether `user` may make `req`: `Err` with the answer when not; `Ok` with what the
/// handler must still check.
///
/// - A resource path holding an encoded `/` is refused: the handler decodes path segments,
///   so `pods/p%2Fstatus` would be authorized as a pod but served as its status.
/// - The node authorizer, then RBAC ([`Authorizer`]); then, for a node, the node
///   restriction ([`crate::authz::node::restrict`]), which may refuse what they allowed.
/// - Writes to Roles and ClusterRoles need the `escalate` verb, writes to bindings the
///   `bind` verb, on top of the write itself (stricter than upstream, which also allows
///   them when the caller already holds every permission granted; not implemented).
async fn decide(s: &ApiState, user: &UserInfo, method: &Method, uri: &Uri) -> Result<WriteChecks, ApiError> {
    let path = uri.path();
    if crate::http::split_api_path(path).is_some() && path.to_ascii_lowercase().contains("%2f") {
        return Err(ApiError::BadRequest(format!("{path}: a path segment may not hold an encoded '/'")));
    }
    let attrs = Attributes::of_request(method, path, uri.query());
    let authz = Authorizer::read(&s.registry, user, attrs.namespace()).await?;
    let mut checks = WriteChecks::default();
    match authz.check(&attrs).await? {
        Verdict::Denied(reason) => {
            tracing::debug!(user = user.name, ?attrs, reason, "request forbidden");
            return Err(forbidden(&attrs, user, &reason));
        }
        Verdict::Node(named) => checks.named_create = named,
        Verdict::Rbac => {}
    }
    if let Some(extra) = attrs.escalation_verb().map(|verb| attrs.with_verb(verb)) {
        if let Verdict::Denied(reason) = authz.check(&extra).await? {
            return Err(forbidden(&extra, user, &reason));
        }
    }
    if let Some(create) = attrs.create_on_write() {
        if let Verdict::Denied(reason) = authz.check(&create).await? {
            checks.create_denied = Some(forbidden(&create, user, &reason).to_string());
        }
    }
    if let Some(named) = authz.restrict(&attrs).await? {
        checks.named_create = Some(named);
    }
    checks.node = crate::authz::node::node_name(user).map(String::from);
    Ok(checks)
}

/// The user `user` acts as through upstream's `Impersonate-User`, `Impersonate-Group` and
/// `Impersonate-Uid` headers, once RBAC allows `user` the verb `impersonate` on each (`users`
/// or `serviceaccounts`, `groups`, `uids`); `None` without the headers.
async fn impersonate(s: &ApiState, user: &UserInfo, headers: &HeaderMap) -> Result<Option<UserInfo>, ApiError> {
    if headers.keys().any(|k| k.as_str().starts_with("impersonate-extra-")) {
        return Err(ApiError::BadRequest("Impersonate-Extra-* headers are not supported by this server".into()));
    }
    // Unreadable values are refused (never dropped, which would act as the caller); empty
    // ones are absent, as upstream.
    let values = |name: &str| -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        for v in headers.get_all(name) {
            let v = v.to_str().map_err(|_| ApiError::BadRequest(format!("{name}: not a readable value")))?;
            if !v.trim().is_empty() {
                out.push(v.trim().to_string());
            }
        }
        Ok(out)
    };
    let (names, groups, uids) = (values("Impersonate-User")?, values("Impersonate-Group")?, values("Impersonate-Uid")?);
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
    // The caller's rules are read once per scope the asks need, not once per ask.
    let mut rules: Vec<(Option<&str>, Vec<rbac::Rule>)> = Vec::new();
    for attrs in asks.iter().filter(|_| !rbac::is_master(user)) {
        let scope = attrs.namespace();
        let at = match rules.iter().position(|(s, _)| *s == scope) {
            Some(at) => at,
            None => {
                rules.push((scope, rbac::rules_for(&s.registry, user, scope).await?));
                rules.len() - 1
            }
        };
        if !rules[at].1.iter().any(|r| r.allows(attrs)) {
            return Err(ApiError::Forbidden(attrs.forbidden_message(&user.name)));
        }
    }
    Ok(Some(UserInfo {
        uid: uids.into_iter().next().unwrap_or_default(),
        groups: impersonated_groups(&name, groups),
        name,
    }))
}

/// The groups of an impersonated user, as upstream completes them: a ServiceAccount asked
/// for without groups is in its own; `system:anonymous` is unauthenticated; everyone else
/// (unless asked to be unauthenticated) is in `system:authenticated`.
fn impersonated_groups(name: &str, mut groups: Vec<String>) -> Vec<String> {
    use super::authn::{ANONYMOUS_USER, AUTHENTICATED, UNAUTHENTICATED};
    if groups.is_empty() {
        if let Some((ns, _)) = name.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
            groups.extend(["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{ns}")]);
        }
    }
    let has = |groups: &[String], g: &str| groups.iter().any(|x| x == g);
    if name == ANONYMOUS_USER {
        if !has(&groups, UNAUTHENTICATED) {
            groups.push(UNAUTHENTICATED.to_string());
        }
    } else if !has(&groups, AUTHENTICATED) && !has(&groups, UNAUTHENTICATED) {
        groups.push(AUTHENTICATED.to_string());
    }
    groups
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
    let status = match review_status(&s, &user, &attrs).await {
        Ok(status) => status,
        Err(e) => return e.into_response(),
    };
    let answer = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": review["spec"].clone(),
        "status": status,
    });
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// A review's `status`: what [`decide`] would answer `user` asking `attrs`, node restriction
/// included where the attributes name the object (a create without a name is answered as
/// its authorizers answer, since its object's name is not known).
async fn review_status(s: &ApiState, user: &UserInfo, attrs: &Attributes) -> Result<Value, ApiError> {
    let authz = Authorizer::read(&s.registry, user, attrs.namespace()).await?;
    let verdict = authz.check(attrs).await?;
    let restricted = match verdict {
        Verdict::Denied(_) => None,
        // A missing pod has no node to be checked against: the authorizers' answer stands.
        _ => match authz.restrict(attrs).await {
            Err(ApiError::Forbidden(why)) => Some(why),
            Ok(_) | Err(ApiError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
    };
    Ok(match (verdict, restricted) {
        (_, Some(why)) => json!({"allowed": false, "reason": why}),
        (Verdict::Denied(why), _) if !why.is_empty() => json!({"allowed": false, "reason": why}),
        (Verdict::Denied(_), _) => json!({"allowed": false}),
        (Verdict::Rbac, _) => json!({"allowed": true, "reason": "allowed by RBAC"}),
        (Verdict::Node(_), _) => json!({"allowed": true, "reason": "allowed by the node authorizer"}),
    })
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

#[cfg(test)]
mod tests {
    use super::impersonated_groups;

    fn groups(name: &str, asked: &[&str]) -> Vec<String> {
        impersonated_groups(name, asked.iter().map(|g| g.to_string()).collect())
    }

    #[test]
    fn impersonated_users_get_upstreams_groups() {
        assert_eq!(groups("jane", &["dev"]), ["dev", "system:authenticated"]);
        assert_eq!(groups("system:anonymous", &[]), ["system:unauthenticated"]);
        assert_eq!(groups("jane", &["system:unauthenticated"]), ["system:unauthenticated"]);
        assert_eq!(
            groups("system:serviceaccount:ci:builder", &[]),
            ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"]
        );
        assert_eq!(groups("system:serviceaccount:ci:builder", &["x"]), ["x", "system:authenticated"]);
    }
}
