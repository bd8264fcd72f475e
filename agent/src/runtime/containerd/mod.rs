//! [`ContainerdRuntime`]: containers run by containerd (its gRPC API), pods networked by
//! the standard CNI plugins.
//!
//! Invariants:
//! - Everything lives in one containerd namespace (`flotilla` by default); every request
//!   says so ([`client`]).
//! - A sandbox is a network namespace with the pod network in it and a record in the state
//!   dir ([`sandbox`]); its containers join that namespace, so they share the pod IP and
//!   reach each other on localhost.
//! - A container is a containerd container (labels: the pod's identity labels plus ours
//!   under `io.flotilla.containerd.`) with a snapshot of the same id over the image's top
//!   layer and an OCI spec made here ([`oci`]). Its task exists from start until its exit
//!   is collected ("reaped"): then the task is deleted and the exit code, finish time and
//!   reason are put in the container's labels, so inspecting an exited container needs no
//!   task and no shim stays behind ([`container`]).
//! - After an agent restart, a new runtime over the same namespace and state dir finds its
//!   sandboxes (records) and containers (labels), adopts running tasks (their output is
//!   copied again from the same fifos) and reaps the ones that exited meanwhile.
//! - Exits are announced on [`Runtime::events`] from containerd's `/tasks/exit` events
//!   ([`events`]), which also reap.
//! - Logs are CRI-format files written by the agent from the task's fifos ([`logfile`]);
//!   execs are tasks' extra processes with their own fifos ([`exec`]).
//!
//! State dir layout: `sandboxes/` (records, hosts files), `ipam/` (CNI allocations),
//! `containers/<id>/{stdout,stderr,log}`, `execs/<exec id>/{stdin,stdout,stderr}`.

mod client;
mod cni;
mod container;
mod events;
mod exec;
mod image;
mod logfile;
mod oci;
mod sandbox;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use self::client::Api;
use self::sandbox::Sandboxes;
use super::{ByteStream, ContainerInfo, ContainerSpec, ExecRequest, ExecSession, LogOptions, Runtime};
use super::{RuntimeError, RuntimeEvent, SandboxInfo, SandboxSpec};

/// Buffered runtime events; a subscriber that lags this far behind resyncs everything.
const EVENT_BUFFER: usize = 1024;
/// Longest an exited container's log read waits for its last output to be copied.
const LOG_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// How to reach containerd and set pods up.
#[derive(Debug, Clone)]
pub struct ContainerdOptions {
    pub socket: PathBuf,
    pub namespace: String,
    pub snapshotter: String,
    /// Where the CNI plugin binaries are.
    pub cni_bin_dir: PathBuf,
    /// The Linux bridge pods are attached to.
    pub bridge: String,
    /// The pod subnet (CIDR) addresses are allocated from.
    pub subnet: String,
    /// Fifos, logs and sandbox records.
    pub state_dir: PathBuf,
    /// host-local's address allocations; default `<state_dir>/ipam`. Runtimes sharing a
    /// bridge and subnet must share this directory, or they hand out the same addresses.
    pub ipam_dir: Option<PathBuf>,
    /// This agent's [`super::labels::SCOPE`]: put on every container it creates, and the
    /// only containers it lists, so agents sharing a containerd namespace never touch each
    /// other's pods (sandboxes are records in `state_dir`, already per agent). None: every
    /// flotilla container of the namespace is this agent's.
    pub scope: Option<String>,
}

impl Default for ContainerdOptions {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/containerd/containerd.sock"),
            namespace: "flotilla".into(),
            snapshotter: "overlayfs".into(),
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            bridge: "flotilla-cni0".into(),
            subnet: "10.245.0.0/16".into(),
            state_dir: PathBuf::from("/var/lib/flotilla/containerd"),
            ipam_dir: None,
            scope: None,
        }
    }
}

impl ContainerdOptions {
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |what: String| Err(RuntimeError::Failed(what));
        if self.namespace.is_empty() || !self.namespace.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return bad(format!("containerd namespace {:?} is not a valid name", self.namespace));
        }
        if self.bridge.is_empty() || self.bridge.len() > 15 {
            return bad(format!("bridge name {:?} must be 1 to 15 characters", self.bridge));
        }
        if !self.subnet.contains('/') {
            return bad(format!("pod subnet {:?} is not a CIDR", self.subnet));
        }
        Ok(())
    }
}

/// What the runtime and its background tasks share.
struct Inner {
    api: Api,
    options: ContainerdOptions,
    sandboxes: Sandboxes,
    copiers: Arc<logfile::Copiers>,
    events: broadcast::Sender<RuntimeEvent>,
    /// Containers containerd reported out of memory, until their exit is reaped.
    oom: Mutex<HashSet<String>>,
}

impl Inner {
    fn container_dir(&self, id: &str) -> PathBuf {
        self.options.state_dir.join("containers").join(id)
    }

    fn exec_dir(&self, exec_id: &str) -> PathBuf {
        self.options.state_dir.join("execs").join(exec_id)
    }
}

/// The containerd runtime. See the module doc.
pub struct ContainerdRuntime {
    inner: Arc<Inner>,
    /// Stops the event subscription when the runtime is dropped.
    cancel: CancellationToken,
}

impl Drop for ContainerdRuntime {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn create_dir(path: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(path).map_err(|e| RuntimeError::Failed(format!("creating {}: {e}", path.display())))
}

impl ContainerdRuntime {
    /// Connect to containerd, adopt what a previous agent left running, and start
    /// listening for exits. Needs a Tokio runtime.
    pub async fn new(options: ContainerdOptions) -> Result<Self, RuntimeError> {
        options.validate()?;
        let ipam_dir = options.ipam_dir.clone().unwrap_or_else(|| options.state_dir.join("ipam"));
        for dir in ["sandboxes", "containers", "execs"] {
            create_dir(&options.state_dir.join(dir))?;
        }
        create_dir(&ipam_dir)?;
        let api = Api::connect(&options.socket, &options.namespace).await?;
        let network = cni::Network {
            bin_dir: options.cni_bin_dir.clone(),
            bridge: options.bridge.clone(),
            subnet: options.subnet.clone(),
            ipam_dir,
        };
        let sandboxes = Sandboxes { dir: options.state_dir.join("sandboxes"), network };
        let inner = Arc::new(Inner {
            api,
            options,
            sandboxes,
            copiers: Arc::default(),
            events: broadcast::channel(EVENT_BUFFER).0,
            oom: Mutex::default(),
        });
        let cancel = CancellationToken::new();
        tokio::spawn(events::run(inner.clone(), cancel.clone()));
        container::adopt(&inner).await?;
        Ok(Self { inner, cancel })
    }

    /// The options the runtime was made with.
    pub fn options(&self) -> &ContainerdOptions {
        &self.inner.options
    }
}

#[async_trait]
impl Runtime for ContainerdRuntime {
    fn name(&self) -> &'static str {
        "containerd"
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        let api = &self.inner.api;
        let v = api.version().version(api.req(())).await.map_err(|s| client::failed("version", "", s))?;
        Ok(v.into_inner().version)
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        Ok(image::digest(&self.inner.api, image).await?.map(|(_, digest)| digest))
    }

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxInfo, RuntimeError> {
        let id = format!("{:016x}", rand::random::<u64>());
        let sandbox = self.inner.sandboxes.create(&id, spec).await?;
        tracing::info!(sandbox = id, pod_uid = spec.pod_uid, ip = ?sandbox.info.ip, "sandbox created");
        Ok(sandbox.info)
    }

    async fn remove_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        if !container::list(&self.inner, None).await?.iter().all(|c| container::sandbox_of(c) != Some(id)) {
            return Err(RuntimeError::Failed(format!("sandbox {id} still has containers")));
        }
        self.inner.sandboxes.remove(id).await
    }

    async fn list_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<SandboxInfo>, RuntimeError> {
        let all = self.inner.sandboxes.list()?.into_iter().map(|s| s.info);
        Ok(all.filter(|s| pod_uid.is_none_or(|u| s.pod_uid == u)).collect())
    }

    async fn create_container(&self, sandbox: &str, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        container::create(&self.inner, sandbox, spec).await
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        container::start(&self.inner, id).await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        container::stop(&self.inner, id, grace).await
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        container::remove(&self.inner, id).await
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let c = container::get(&self.inner, id).await?.ok_or_else(|| RuntimeError::not_found("container", id))?;
        container::info(&self.inner, c).await
    }

    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let mut infos = Vec::new();
        for c in container::list(&self.inner, pod_uid).await? {
            infos.push(container::info(&self.inner, c).await?);
        }
        Ok(infos)
    }

    async fn log_stream(&self, id: &str, options: &LogOptions) -> Result<ByteStream, RuntimeError> {
        // An exit is reported as soon as the task ends, a moment before the copiers have
        // written its last output: an exited container's log is read once they are done.
        if matches!(self.inspect_container(id).await?.state, super::ContainerState::Exited { .. }) {
            self.inner.copiers.drained(id, LOG_DRAIN).await;
        }
        let path = self.inner.container_dir(id).join("log");
        logfile::stream(path, options.clone(), self.inner.copiers.clone(), id.to_string()).await
    }

    async fn exec_stream(&self, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
        exec::start(&self.inner, id, request).await
    }

    async fn exec_resize(&self, exec_id: &str, width: u16, height: u16) -> Result<(), RuntimeError> {
        exec::resize(&self.inner, exec_id, width, height).await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<i32, RuntimeError> {
        exec::exit_code(&self.inner, exec_id).await
    }

    fn events(&self) -> Option<broadcast::Receiver<RuntimeEvent>> {
        Some(self.inner.events.subscribe())
    }
}
