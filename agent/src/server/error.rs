//! [`ServerError`]: every failure of the agent endpoint, answered in exactly one place as a
//! `metav1.Status` body with the matching HTTP code, as the API server and kubectl expect.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::runtime::RuntimeError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// The pod, container or exec is not on this node (404).
    #[error("{0}")]
    NotFound(String),
    /// Bad query parameters, or a request that makes no sense for the container (400).
    #[error("{0}")]
    BadRequest(String),
    /// No or a wrong bearer token (401).
    #[error("Unauthorized")]
    Unauthorized,
    /// The runtime cannot do this (501).
    #[error("{0}")]
    NotSupported(String),
    /// The runtime failed (500).
    #[error("{0}")]
    Internal(String),
}

impl ServerError {
    fn code_and_reason(&self) -> (StatusCode, &'static str) {
        match self {
            ServerError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ServerError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ServerError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ServerError::NotSupported(_) => (StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
            ServerError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    /// The `metav1.Status` describing this error.
    pub fn status(&self) -> Value {
        let (code, reason) = self.code_and_reason();
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        })
    }
}

impl From<RuntimeError> for ServerError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::NotFound { .. } => ServerError::NotFound(e.to_string()),
            RuntimeError::NotSupported { .. } => ServerError::NotSupported(e.to_string()),
            RuntimeError::ImageMissing(_) | RuntimeError::Failed(_) => ServerError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let (code, _) = self.code_and_reason();
        if code.is_server_error() {
            tracing::warn!(error = %self, "agent endpoint request failed");
        }
        (code, [(header::CONTENT_TYPE, "application/json")], self.status().to_string()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_map_to_codes() {
        let e = ServerError::from(RuntimeError::NotSupported { what: "exec", runtime: "fake" });
        assert_eq!(e.status()["code"], 501);
        assert_eq!(e.status()["message"], "exec is not supported by the fake runtime");
        assert_eq!(ServerError::from(RuntimeError::not_found("container", "x")).status()["code"], 404);
        assert_eq!(ServerError::Unauthorized.status()["reason"], "Unauthorized");
    }
}
