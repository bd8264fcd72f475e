//! Errors of the agent, split by what the caller does about them.
//!
//! - [`AgentError::Unreachable`]: no API server answered; retry later (running pods are
//!   left alone meanwhile).
//! - [`AgentError::Api`] with a [`ApiStatus`]: the API server answered with a failure;
//!   callers branch on [`AgentError::is_not_found`], [`AgentError::is_conflict`],
//!   [`AgentError::is_gone`], [`AgentError::is_already_exists`].
//! - [`AgentError::Runtime`]: the container runtime refused or failed.
//! - [`AgentError::Config`]: bad flags or configuration; the agent must not start.
//! - [`AgentError::Services`]: the service proxy or the cluster DNS could not do its
//!   job on this host (nft refused a ruleset, a port could not be bound); retried or
//!   reported, pods keep running.
//! - [`AgentError::ContainerConfig`]: a container's configuration cannot be resolved
//!   (a missing ConfigMap key, a refused privileged container): the container is not
//!   created, and its status waits with `reason` and `message` until it can be.

use crate::runtime::RuntimeError;

/// The HTTP code and reason of a failed API request (`metav1.Status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiStatus {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Every API server was tried and none answered (connection refused, timeout, 5xx
    /// that means "not me").
    #[error("no API server answered: {last}")]
    Unreachable { last: String },
    /// The API server refused the request.
    #[error("API error {}: {} ({})", .0.code, .0.message, .0.reason)]
    Api(ApiStatus),
    /// A response that does not decode, or a request that cannot be built.
    #[error("API client: {0}")]
    Client(String),
    #[error("container runtime: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("services: {0}")]
    Services(String),
    /// Container `container` cannot be created as its pod spec asks (`reason` is the
    /// waiting reason its status shows, e.g. `CreateContainerConfigError`).
    #[error("container {container}: {message}")]
    ContainerConfig { container: String, reason: &'static str, message: String },
}

impl AgentError {
    fn code(&self) -> Option<u16> {
        match self {
            AgentError::Api(s) => Some(s.code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }

    /// True for 409 AlreadyExists (a create of an existing object).
    pub fn is_already_exists(&self) -> bool {
        matches!(self, AgentError::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
    }

    /// True for 410 Gone / Expired: the resourceVersion is compacted; re-list.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }
}
