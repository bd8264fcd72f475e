//! The container runtime behind one narrow trait, and what the agent knows of containers.
//!
//! Invariants:
//! - **The runtime is the agent's memory.** Every sandbox and container the agent creates
//!   carries [`labels`] naming its pod (uid, namespace, name), its container name and its
//!   attempt (= restart count). After an agent restart, [`Runtime::list_containers`] and
//!   [`Runtime::list_sandboxes`] are all the agent needs to adopt running containers
//!   instead of restarting them, and to report restart counts and last states.
//! - Containers are never restarted in place: a restart is a new container with the next
//!   attempt number, so an exited container's state stays inspectable (lastState).
//! - Timestamps are wall-clock times reported by the runtime; the agent's back-off uses
//!   its own monotonic clock.
//!
//! Design: the trait is object-safe (`async_trait`), so `--runtime` picks an
//! `Arc<dyn Runtime>` at startup and the pod sync code has one non-generic path for every
//! runtime. The boxing costs one allocation per call, negligible next to a container start.
//! Logs and exec have default methods that answer [`RuntimeError::NotSupported`]; runtimes
//! that can do them override them. [`Runtime::exec`] (probes, one-shot commands) is built on
//! [`Runtime::exec_stream`] (interactive `kubectl exec`), so a runtime implements exec once.
//!
//! Volumes reach runtimes already made: the agent turns every volume into a host
//! directory or file, and a runtime only bind-mounts [`Mount`]s.

pub mod containerd;
pub mod docker;
pub mod fake;
pub mod process;

use std::collections::BTreeMap;
use std::time::Duration;

use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use k8s_openapi::jiff::Timestamp;
use tokio::io::AsyncWrite;
use tokio::sync::broadcast;

/// The label keys put on every sandbox and container the agent creates.
pub mod labels {
    /// The owning pod's `metadata.uid`.
    pub const POD_UID: &str = "io.flotilla.pod.uid";
    pub const POD_NAME: &str = "io.flotilla.pod.name";
    pub const POD_NAMESPACE: &str = "io.flotilla.pod.namespace";
    /// The container's name in the pod spec (absent on sandboxes).
    pub const CONTAINER_NAME: &str = "io.flotilla.container.name";
    /// The attempt number, which is the container's restart count (decimal).
    pub const ATTEMPT: &str = "io.flotilla.container.attempt";
    /// Which agent owns the object, for runtimes several agents share (one Docker daemon
    /// or containerd for every agent of `flotilla up`): each agent lists only its own.
    pub const SCOPE: &str = "io.flotilla.scope";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} is not supported by the {runtime} runtime")]
    NotSupported { what: &'static str, runtime: &'static str },
    #[error("image {0} is not present on this node")]
    ImageMissing(String),
    #[error("{0}")]
    Failed(String),
}

impl RuntimeError {
    /// `NotFound` for the `what` (container, sandbox) named `id`.
    pub fn not_found(what: &'static str, id: &str) -> Self {
        RuntimeError::NotFound { what, id: id.to_string() }
    }
}

/// What a pod's sandbox (its network namespace, IP and hostname) is created from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxSpec {
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub hostname: String,
    /// Includes the [`labels`] naming the pod.
    pub labels: BTreeMap<String, String>,
    /// `hostPort`s of the pod's containers: published on the node's address by the
    /// sandbox, which owns the network namespace.
    pub ports: Vec<PortMapping>,
}

/// A container port published on the node (`ports[].hostPort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
    /// `TCP`, `UDP` or `SCTP`, as the pod spec says.
    pub protocol: String,
    /// `hostIP` of the port, if set (default: every address).
    pub host_ip: Option<String>,
}

/// A bind mount: every volume is made into a host path by the agent before the container
/// is created, so runtimes only bind-mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

/// Limits applied to a container (from `resources.limits`; requests only schedule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU limit in millicores.
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// CPU request in millicores (runtimes may map it to shares/weight).
    pub cpu_request_millis: Option<u64>,
}

/// The parts of `securityContext` runtimes apply. Privileged containers are refused by the
/// agent unless allowed, so a runtime sees `privileged: true` only when it was allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub read_only_root_filesystem: bool,
    pub privileged: bool,
}

/// A sandbox as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub id: String,
    pub pod_uid: String,
    /// The pod's IP, once it has one.
    pub ip: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// What a container is created from (the parts of a pod's container spec runtimes use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// Includes the [`labels`] naming the pod, the container and the attempt.
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    pub resources: Resources,
    pub security: Security,
    /// `tty` and `stdin` of the container spec.
    pub tty: bool,
    pub stdin: bool,
}

/// A container's state as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running { started_at: Timestamp },
    Exited { exit_code: i32, started_at: Option<Timestamp>, finished_at: Timestamp, reason: Option<String> },
}

/// A container as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The runtime's id, without scheme.
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
    pub image: String,
    pub image_id: String,
    pub state: ContainerState,
    pub labels: BTreeMap<String, String>,
}

impl ContainerInfo {
    pub fn is_running(&self) -> bool {
        matches!(self.state, ContainerState::Running { .. })
    }

    /// Pod uid, container name and attempt from a container's labels, if it is one of ours.
    pub fn identity(labels: &BTreeMap<String, String>) -> Option<(String, String, u32)> {
        let uid = labels.get(labels::POD_UID)?;
        let name = labels.get(labels::CONTAINER_NAME)?;
        let attempt = labels.get(labels::ATTEMPT)?.parse().ok()?;
        Some((uid.clone(), name.clone(), attempt))
    }
}

/// A change the runtime noticed by itself (a container exited): the pod to look at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    pub pod_uid: String,
}

/// What `kubectl logs` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep the stream open and send new output as it is written.
    pub follow: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<u64>,
    /// Only output written at or after this time.
    pub since: Option<Timestamp>,
    /// Prefix every line with its RFC 3339 time (nanoseconds) and a space.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

/// A stream of bytes (a log, an exec's output).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, RuntimeError>> + Send>>;

/// A command to run in a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// Attach the caller's stdin ([`ExecSession::stdin`] is then `Some`).
    pub stdin: bool,
    /// Allocate a terminal (stdout and stderr are then one stream, reported as stdout).
    pub tty: bool,
}

/// A chunk of an exec's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// A running exec: its id (for [`Runtime::exec_resize`] and [`Runtime::exec_exit_code`]),
/// its stdin if asked for, and its output, which ends when the command exits.
pub struct ExecSession {
    pub id: String,
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    pub output: Pin<Box<dyn Stream<Item = Result<ExecOutput, RuntimeError>> + Send>>,
}

/// A container runtime: sandboxes, containers, images. Object-safe; see the module doc.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The runtime's name as reported in `nodeInfo.containerRuntimeVersion` (`fake`, `docker`).
    fn name(&self) -> &'static str;
    /// The runtime's version.
    async fn version(&self) -> Result<String, RuntimeError>;
    /// The image's id if the image is present locally (no registry is ever contacted).
    async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError>;

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxInfo, RuntimeError>;
    /// Remove a sandbox whose containers are removed. Removing a missing one is not an error.
    async fn remove_sandbox(&self, id: &str) -> Result<(), RuntimeError>;
    /// Sandboxes of `pod_uid`, or all of them.
    async fn list_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<SandboxInfo>, RuntimeError>;

    /// Create (not start) a container in `sandbox`; its id.
    async fn create_container(&self, sandbox: &str, spec: &ContainerSpec) -> Result<String, RuntimeError>;
    async fn start_container(&self, id: &str) -> Result<(), RuntimeError>;
    /// Ask the container to stop, and kill it after `grace`. Stopping a stopped one is a no-op.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;
    /// Remove a stopped container. Removing a missing one is not an error.
    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError>;
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, RuntimeError>;
    /// Containers of `pod_uid` (any state), or all containers carrying our labels.
    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerInfo>, RuntimeError>;

    /// A container's log (stdout and stderr as written), as `kubectl logs` asks for it.
    async fn log_stream(&self, _id: &str, _options: &LogOptions) -> Result<ByteStream, RuntimeError> {
        Err(RuntimeError::NotSupported { what: "logs", runtime: self.name() })
    }

    /// Start `request` in running container `id` (`kubectl exec`, exec probes).
    async fn exec_stream(&self, _id: &str, _request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
        Err(RuntimeError::NotSupported { what: "exec", runtime: self.name() })
    }

    /// Resize an exec's terminal.
    async fn exec_resize(&self, _exec_id: &str, _width: u16, _height: u16) -> Result<(), RuntimeError> {
        Err(RuntimeError::NotSupported { what: "terminal resize", runtime: self.name() })
    }

    /// The exit code of an exec whose output has ended.
    async fn exec_exit_code(&self, _exec_id: &str) -> Result<i32, RuntimeError> {
        Err(RuntimeError::NotSupported { what: "exec", runtime: self.name() })
    }

    /// The whole log of container `id` as it is now.
    async fn logs(&self, id: &str) -> Result<Vec<u8>, RuntimeError> {
        collect(self.log_stream(id, &LogOptions::default()).await?).await
    }

    /// Run `command` in container `id` without stdin; its exit code and combined output.
    async fn exec(&self, id: &str, command: &[String]) -> Result<(i32, Vec<u8>), RuntimeError> {
        let request = ExecRequest { command: command.to_vec(), ..ExecRequest::default() };
        let session = self.exec_stream(id, &request).await?;
        let output = session.output.map(|chunk| {
            chunk.map(|c| match c {
                ExecOutput::Stdout(b) | ExecOutput::Stderr(b) => b,
            })
        });
        let output = collect(Box::pin(output)).await?;
        Ok((self.exec_exit_code(&session.id).await?, output))
    }

    /// Changes the runtime notices by itself, if it can tell. Without them the agent only
    /// sees exits on its periodic resync.
    fn events(&self) -> Option<broadcast::Receiver<RuntimeEvent>> {
        None
    }
}

async fn collect(mut stream: ByteStream) -> Result<Vec<u8>, RuntimeError> {
    let mut all = Vec::new();
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk?);
    }
    Ok(all)
}

/// A stable `sha256:`-style id made from an image's name (FNV-1a), for runtimes that keep no
/// images (`fake`, `process`): equal names give equal ids, so status comparisons hold.
pub(crate) fn made_up_image_id(image: &str) -> String {
    format!("sha256:{:016x}", fnv1a(image.as_bytes()))
}

/// 64-bit FNV-1a of `bytes`: a stable, non-cryptographic name hash (made-up image ids,
/// runtime scopes).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// The runtime scope of an agent: its node name and a hash of its data directory, so two
/// agents of different clusters that share a node name and a daemon (or a host's nftables)
/// still never see each other's pods or rules, and a restarted agent (same name, same
/// directory) finds its own.
pub fn scope(node: &str, data_dir: &std::path::Path) -> std::io::Result<String> {
    let dir = data_dir.canonicalize()?;
    let hash = fnv1a(dir.to_string_lossy().as_bytes());
    Ok(format!("{node}.{:08x}", hash as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_differ_by_directory_and_are_stable() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        assert_eq!(scope("n1", a.path()).unwrap(), scope("n1", a.path()).unwrap());
        assert_ne!(scope("n1", a.path()).unwrap(), scope("n1", b.path()).unwrap());
        assert!(scope("n1", a.path()).unwrap().starts_with("n1."));
    }
}
