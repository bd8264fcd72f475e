//! The API server's error type and its one mapping to Kubernetes `metav1.Status`.
//!
//! Every failure a client can see is an [`ApiError`]; [`ApiError::status`] is the only place
//! that decides its HTTP code, `reason` and `details`, so kubectl and the client libraries
//! (which branch on `reason` and `code`) see the same shapes upstream's API server sends.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotilla_store::StoreError;
use serde_json::{json, Value};

use crate::resources::Resource;

/// One cause of an `Invalid` error (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Upstream cause type: `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// Which object an error is about: fills `details` and the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject {
    /// The group (`apps`, or `""` for core).
    pub group: String,
    /// The plural resource name (`deployments`), as upstream puts in `details.kind` for
    /// NotFound/AlreadyExists/Conflict.
    pub resource: String,
    pub name: String,
}

impl Subject {
    pub fn new(res: &Resource, name: &str) -> Self {
        Self { group: res.group.to_string(), resource: res.plural.to_string(), name: name.to_string() }
    }

    /// `deployments.apps "web"`: how upstream names the object in messages.
    fn describe(&self) -> String {
        let qualified =
            if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) };
        format!("{qualified} \"{}\"", self.name)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("not found")]
    NotFound(Subject),
    #[error("already exists")]
    AlreadyExists(Subject),
    /// A stale resourceVersion or precondition: the object changed since the client read it.
    #[error("conflict")]
    Conflict(Subject),
    /// A precondition (delete's uid/resourceVersion, a binding's unbound pod) that does not
    /// hold: 409 Conflict, `Operation cannot be fulfilled on <subject>: <why>`.
    #[error("{1}")]
    PreconditionFailed(Subject, String),
    /// A path this server does not serve at all.
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// An eviction a PodDisruptionBudget forbids (429; drain retries). The string is the
    /// budget's own explanation, sent as the cause.
    #[error("{0}")]
    DisruptionBudget(String),
    /// Validation failed. `kind` is the object's kind (`Deployment`).
    #[error("invalid")]
    Invalid { kind: String, name: String, group: String, causes: Vec<Cause> },
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed request that cannot be carried out (a JSON patch `test` that fails):
    /// 422 without field causes.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Forbidden(String),
    /// No valid credentials (upstream's body: message and reason `Unauthorized`).
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A resourceVersion or continue token that is too old (compacted).
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// The store could not answer in time (no leader, timeout): retry.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn not_found(res: &Resource, name: &str) -> Self {
        ApiError::NotFound(Subject::new(res, name))
    }

    /// A single-cause `Invalid` error; `message` is the cause without the field
    /// (`Required value`), as upstream puts it in `details.causes[].message`.
    pub fn invalid(res: &Resource, name: &str, reason: &str, field: &str, message: String) -> Self {
        ApiError::Invalid {
            kind: res.kind.to_string(),
            name: name.to_string(),
            group: res.group.to_string(),
            causes: vec![Cause { reason: reason.to_string(), message, field: field.to_string() }],
        }
    }

    /// The HTTP code and the `metav1.Status` body.
    pub fn status(&self) -> (StatusCode, Value) {
        let (code, reason, message, details) = match self {
            ApiError::NotFound(s) => (404, "NotFound", format!("{} not found", s.describe()), subject_details(s)),
            ApiError::AlreadyExists(s) => {
                (409, "AlreadyExists", format!("{} already exists", s.describe()), subject_details(s))
            }
            ApiError::Conflict(s) => (
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {}: the object has been modified; please apply your changes \
                     to the latest version and try again",
                    s.describe()
                ),
                subject_details(s),
            ),
            ApiError::PreconditionFailed(s, m) => {
                (409, "Conflict", format!("Operation cannot be fulfilled on {}: {m}", s.describe()), subject_details(s))
            }
            ApiError::NoRoute => (404, "NotFound", "the server could not find the requested resource".into(), None),
            ApiError::DisruptionBudget(why) => (
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                Some(json!({"causes": [{"reason": "DisruptionBudget", "message": why}]})),
            ),
            ApiError::Invalid { kind, name, group, causes } => {
                let mut summary: Vec<String> = Vec::new();
                for c in causes {
                    let line =
                        if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) };
                    if !summary.contains(&line) {
                        summary.push(line);
                    }
                }
                let message = match summary.as_slice() {
                    [one] => format!("{kind} \"{name}\" is invalid: {one}"),
                    many => format!("{kind} \"{name}\" is invalid: [{}]", many.join(", ")),
                };
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                let mut details = json!({"name": name, "kind": kind, "causes": causes});
                if !group.is_empty() {
                    details["group"] = json!(group);
                }
                (422, "Invalid", message, Some(details))
            }
            ApiError::BadRequest(m) => (400, "BadRequest", m.clone(), None),
            ApiError::Unprocessable(m) => (422, "Invalid", m.clone(), None),
            ApiError::Forbidden(m) => (403, "Forbidden", m.clone(), None),
            ApiError::Unauthorized => (401, "Unauthorized", "Unauthorized".into(), None),
            ApiError::MethodNotAllowed(m) => (405, "MethodNotAllowed", m.clone(), None),
            ApiError::NotAcceptable(m) => (406, "NotAcceptable", m.clone(), None),
            ApiError::UnsupportedMediaType(m) => (415, "UnsupportedMediaType", m.clone(), None),
            ApiError::Expired(m) => (410, "Expired", m.clone(), None),
            ApiError::TooLarge(m) => (413, "RequestEntityTooLarge", m.clone(), None),
            ApiError::TooManyRequests(m) => (429, "TooManyRequests", m.clone(), None),
            ApiError::Unavailable(m) => (503, "ServiceUnavailable", m.clone(), None),
            ApiError::Timeout(m) => (504, "Timeout", m.clone(), None),
            ApiError::Internal(m) => (500, "InternalError", m.clone(), None),
        };
        let mut body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code,
        });
        if let Some(d) = details {
            body["details"] = d;
        }
        (StatusCode::from_u16(code).expect("codes above are valid"), body)
    }
}

fn subject_details(s: &Subject) -> Option<Value> {
    let mut d = json!({"name": s.name, "kind": s.resource});
    if !s.group.is_empty() {
        d["group"] = json!(s.group);
    }
    Some(d)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoLeader
            | StoreError::LeaderUnreachable { .. }
            | StoreError::Stopped
            | StoreError::NotLeader => ApiError::Unavailable(format!("the store cannot serve this request now: {e}")),
            StoreError::Timeout => ApiError::Timeout(
                "Timeout: request did not complete within the store's deadline; it may or may not have been applied"
                    .into(),
            ),
            StoreError::TooLarge => ApiError::TooLarge("Request entity too large: limit is 1.5 MiB".into()),
            StoreError::Rejected(r) => match r {
                flotilla_store::types::Rejection::Compacted { compact_revision } => ApiError::Expired(format!(
                    "The resourceVersion for the provided list is too old (compacted at {compact_revision})"
                )),
                // As kube-apiserver, which passes etcd's error through as a 500.
                flotilla_store::types::Rejection::NoSpace => {
                    ApiError::Internal("etcdserver: mvcc: database space exceeded".into())
                }
                other => ApiError::Internal(format!("store refused the request: {other}")),
            },
            other => ApiError::Internal(format!("store: {other}")),
        }
    }
}

impl From<crate::patch::PatchError> for ApiError {
    fn from(e: crate::patch::PatchError) -> Self {
        let message = e.to_string();
        match e.status_code() {
            422 => ApiError::Unprocessable(message),
            413 => ApiError::TooLarge(message),
            _ => ApiError::BadRequest(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, body) = self.status();
        if code.is_server_error() {
            tracing::warn!(code = code.as_u16(), error = %body["message"], "request failed");
        }
        (code, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn not_found_names_the_qualified_resource_like_upstream() {
        let res = lookup("apps", "v1", "deployments").unwrap();
        let (code, body) = ApiError::not_found(res, "web").status();
        assert_eq!(code, 404);
        assert_eq!(body["message"], "deployments.apps \"web\" not found");
        assert_eq!(body["details"], json!({"name": "web", "group": "apps", "kind": "deployments"}));
        assert_eq!(body["reason"], "NotFound");
    }

    #[test]
    fn invalid_lists_causes_and_kind() {
        let res = lookup("apps", "v1", "deployments").unwrap();
        let e = ApiError::invalid(
            res,
            "web",
            "FieldValueInvalid",
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0".into(),
        );
        let (code, body) = e.status();
        assert_eq!(code, 422);
        assert_eq!(
            body["message"],
            "Deployment \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(body["details"]["causes"][0]["field"], "spec.replicas");
    }

    #[test]
    fn store_timeouts_are_504_and_no_leader_is_503() {
        assert_eq!(ApiError::from(StoreError::Timeout).status().0, 504);
        assert_eq!(ApiError::from(StoreError::NoLeader).status().0, 503);
    }

    #[test]
    fn a_full_store_is_a_500_with_etcds_message() {
        let (code, body) = ApiError::from(StoreError::Rejected(flotilla_store::types::Rejection::NoSpace)).status();
        assert_eq!(code, 500);
        assert_eq!(body["message"], "etcdserver: mvcc: database space exceeded");
    }
}
