//! The gRPC connection to containerd, scoped to one containerd namespace.
//!
//! Invariants:
//! - Every request carries the `containerd-namespace` header ([`Api::req`] is the only way
//!   requests are made), so flotilla's containers never mix with another client's.
//! - A gRPC `NotFound` stays distinguishable ([`is_not_found`]): removing or stopping a
//!   missing object is not an error for the runtime, anything else is.
//!
//! The channel reconnects by itself when the daemon restarts; clients are cheap views of
//! it, made per call.

use std::path::Path;

use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::{
    containers_client::ContainersClient, content_client::ContentClient, events_client::EventsClient,
    images_client::ImagesClient, tasks_client::TasksClient, version_client::VersionClient,
};
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};

use crate::runtime::RuntimeError;

/// The `type_url` containerd expects on an OCI runtime spec.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// The `type_url` containerd expects on an OCI process spec (exec).
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// A connection to containerd in one namespace.
#[derive(Clone)]
pub struct Api {
    channel: Channel,
    namespace: MetadataValue<containerd_client::tonic::metadata::Ascii>,
}

impl Api {
    /// Connect to the daemon at `socket`, in `namespace`.
    pub async fn connect(socket: &Path, namespace: &str) -> Result<Self, RuntimeError> {
        let namespace = MetadataValue::try_from(namespace)
            .map_err(|e| RuntimeError::Failed(format!("containerd namespace {namespace:?}: {e}")))?;
        let channel = containerd_client::connect(socket)
            .await
            .map_err(|e| RuntimeError::Failed(format!("connecting to containerd at {}: {e}", socket.display())))?;
        Ok(Self { channel, namespace })
    }

    /// `message` as a request in our namespace.
    pub fn req<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("containerd-namespace", self.namespace.clone());
        request
    }

    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    pub fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }

    pub fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone())
    }

    pub fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }

    pub fn events(&self) -> EventsClient<Channel> {
        EventsClient::new(self.channel.clone())
    }

    pub fn version(&self) -> VersionClient<Channel> {
        VersionClient::new(self.channel.clone())
    }
}

/// True if containerd answered that the object does not exist.
pub fn is_not_found(status: &Status) -> bool {
    status.code() == Code::NotFound
}

/// A failed call as a runtime error: `NotFound` for `what`/`id`, `Failed` otherwise.
pub fn failed(what: &'static str, id: &str, status: Status) -> RuntimeError {
    if is_not_found(&status) {
        return RuntimeError::not_found(what, id);
    }
    RuntimeError::Failed(format!("containerd: {what} {id}: {}", status.message()))
}

/// Ok(None) for `NotFound`, the value otherwise.
pub fn optional<T>(result: Result<T, Status>) -> Result<Option<T>, Status> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(s) if is_not_found(&s) => Ok(None),
        Err(s) => Err(s),
    }
}
