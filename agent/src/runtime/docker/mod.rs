//! [`DockerRuntime`]: pods as Docker containers, through the Docker Engine API (bollard).
//!
//! Shape of a pod (as dockershim made it):
//! - a **sandbox** container, from [`DockerOptions::pause_image`] running
//!   [`DockerOptions::pause_command`], on the user-defined bridge network
//!   [`DockerOptions::network`] ([`network`]). It owns the pod's network namespace: the
//!   pod IP is its address on that network, the pod's hostname is its hostname, and it
//!   publishes the pod's `hostPort`s;
//! - **app containers** join the sandbox's network and IPC namespaces, so a pod's
//!   containers reach each other on localhost.
//!
//! Invariants:
//! - **Docker is the memory.** Every object carries the spec's labels plus [`KIND_LABEL`]
//!   (sandbox or container), and lists filter on them, so only flotilla's objects are seen
//!   and a new runtime over the same daemon (a restarted agent) lists and adopts the same
//!   containers with the same identity. Nothing is kept in the agent's memory.
//! - Names follow dockershim (`k8s_POD_<pod>_<ns>_<uid>_<attempt>`,
//!   `k8s_<container>_<pod>_<ns>_<uid>_<attempt>`); a sandbox's attempt is one more than
//!   the pod's previous sandboxes, a container's is its spec's attempt.
//! - Images are never pulled: a missing image is [`RuntimeError::ImageMissing`].
//! - Containers get no restart policy (the agent restarts them as new containers).
//! - Stopping is `docker stop` with the grace rounded up to whole seconds (Docker's unit),
//!   which sends the image's stop signal (SIGTERM) and SIGKILL after the grace; a zero
//!   grace kills at once. A shell as PID 1 ignores SIGTERM unless it traps it, as in any
//!   container runtime.
//!
//! Data flow: [`create`] (spec → Docker request) and [`state`] (inspect → info) are pure;
//! this file makes the calls; [`streams`] does logs and exec; [`events`] turns Docker's
//! `die`/`oom` events into [`RuntimeEvent`]s; [`error`] maps Docker's errors.

mod create;
mod error;
mod events;
mod network;
mod state;
mod streams;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
};
use bollard::Docker;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{labels, ByteStream, ContainerInfo, ContainerSpec, ExecRequest, ExecSession, LogOptions, Runtime};
use super::{RuntimeError, RuntimeEvent, SandboxInfo, SandboxSpec};

/// Label telling sandboxes ([`KIND_SANDBOX`]) from app containers ([`KIND_CONTAINER`]).
pub const KIND_LABEL: &str = "io.flotilla.docker.kind";
pub const KIND_SANDBOX: &str = "sandbox";
pub const KIND_CONTAINER: &str = "container";
/// The test image `scripts/make-test-image` builds, the default pause image.
pub const TEST_IMAGE: &str = "flotilla/busybox:latest";

/// Buffered runtime events; a subscriber that lags this far behind resyncs everything.
const EVENT_BUFFER: usize = 1024;
/// Time allowed to a `docker stop` call beyond the grace itself (the daemon's SIGKILL and
/// cleanup), above bollard's default request timeout for long graces.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// How the Docker runtime lays pods out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerOptions {
    /// The user-defined bridge network sandboxes join (created if missing).
    pub network: String,
    /// The network's subnet when it is created: must not overlap other Docker networks
    /// (Docker's default bridge is 172.17.0.0/16) or routes of the host.
    pub subnet: String,
    /// The sandbox's image; it must be present locally.
    pub pause_image: String,
    /// What the sandbox runs: anything that waits forever and exits on SIGTERM.
    pub pause_command: Vec<String>,
    /// This agent's [`labels::SCOPE`]: put on every object it creates, and the only
    /// objects it lists or hears of, so agents sharing a daemon never touch each other's
    /// pods. None: every flotilla object of the daemon is this agent's.
    pub scope: Option<String>,
}

impl Default for DockerOptions {
    fn default() -> Self {
        let wait = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";
        Self {
            network: "flotilla".to_string(),
            subnet: "10.244.0.0/16".to_string(),
            pause_image: TEST_IMAGE.to_string(),
            pause_command: vec!["sh".to_string(), "-c".to_string(), wait.to_string()],
            scope: None,
        }
    }
}

impl DockerOptions {
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let problem = if self.network.is_empty() {
            "the network name is empty"
        } else if !self.subnet.contains('/') {
            "the subnet is not in CIDR form (a.b.c.d/n)"
        } else if self.pause_image.is_empty() || self.pause_command.is_empty() {
            "no pause image or command"
        } else {
            return Ok(());
        };
        Err(RuntimeError::Failed(format!("docker runtime options: {problem}")))
    }
}

/// The Docker runtime. See the module doc.
pub struct DockerRuntime {
    docker: Docker,
    options: DockerOptions,
    events: broadcast::Sender<RuntimeEvent>,
    /// Ends the event task when the runtime is dropped.
    _events_task: DropGuard,
}

impl DockerRuntime {
    /// Connect to the local daemon (`DOCKER_HOST` or the default socket), negotiate the
    /// API version, make sure the pod network exists and start following exits.
    pub async fn connect(options: DockerOptions) -> Result<Self, RuntimeError> {
        options.validate()?;
        let docker = Docker::connect_with_local_defaults().map_err(|e| error::failed(e, "connecting"))?;
        let docker = docker.negotiate_version().await.map_err(|e| error::failed(e, "reaching the daemon"))?;
        network::ensure(&docker, &options.network, &options.subnet).await?;
        let events = broadcast::channel(EVENT_BUFFER).0;
        let cancel = CancellationToken::new();
        tokio::spawn(events::run(docker.clone(), options.scope.clone(), events.clone(), cancel.clone()));
        Ok(Self { docker, options, events, _events_task: cancel.drop_guard() })
    }

    async fn inspect(&self, what: &'static str, id: &str) -> Result<ContainerInspectResponse, RuntimeError> {
        let options = None::<InspectContainerOptions>;
        self.docker.inspect_container(id, options).await.map_err(|e| error::classify(e, what, id))
    }

    /// `labels` plus this agent's scope label, if it has one.
    fn scoped(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut all = labels.clone();
        all.extend(self.options.scope.as_ref().map(|s| (labels::SCOPE.to_string(), s.clone())));
        all
    }

    /// Inspections of our objects of `kind` (of `pod_uid`, or all); ones removed meanwhile
    /// are left out.
    async fn list(
        &self,
        kind: &'static str,
        pod_uid: Option<&str>,
    ) -> Result<Vec<ContainerInspectResponse>, RuntimeError> {
        let mut label = vec![format!("{KIND_LABEL}={kind}")];
        label.extend(pod_uid.map(|uid| format!("{}={uid}", labels::POD_UID)));
        label.extend(self.options.scope.as_ref().map(|s| format!("{}={s}", labels::SCOPE)));
        let filters = HashMap::from([("label".to_string(), label)]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let summaries = self.docker.list_containers(Some(options)).await.map_err(|e| error::failed(e, "listing"))?;
        let ids = summaries.into_iter().filter_map(|s| s.id);
        let inspections = futures::future::join_all(ids.map(|id| async move { self.inspect(kind, &id).await })).await;
        let mut found = Vec::with_capacity(inspections.len());
        for inspection in inspections {
            match inspection {
                Ok(i) => found.push(i),
                Err(RuntimeError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// Remove container `id` (forcibly: running or not); a missing one is no error.
    async fn remove(&self, what: &'static str, id: &str, force: bool) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::default().force(force).v(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Err(e) if error::status(&e) != Some(404) => Err(error::classify(e, what, id)),
            _ => Ok(()),
        }
    }

    async fn kill(&self, id: &str) -> Result<(), RuntimeError> {
        let options = KillContainerOptionsBuilder::default().signal("KILL").build();
        match self.docker.kill_container(id, Some(options)).await {
            // 409: not running, which is what a kill wants.
            Err(e) if error::status(&e) != Some(409) => Err(error::classify(e, "container", id)),
            _ => Ok(()),
        }
    }

    /// The next sandbox attempt of the pod: one more than any it had.
    async fn next_sandbox_attempt(&self, pod_uid: &str) -> Result<u32, RuntimeError> {
        let sandboxes = self.list(KIND_SANDBOX, Some(pod_uid)).await?;
        let attempt = |i: &ContainerInspectResponse| {
            let labels = i.config.as_ref()?.labels.as_ref()?;
            labels.get(labels::ATTEMPT)?.parse::<u32>().ok()
        };
        Ok(sandboxes.iter().filter_map(attempt).max().map_or(0, |a| a + 1))
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        let version = self.docker.version().await.map_err(|e| error::failed(e, "asking the version"))?;
        Ok(version.version.unwrap_or_default())
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.id),
            Err(e) if error::status(&e) == Some(404) => Ok(None),
            Err(e) => Err(error::classify(e, "image", image)),
        }
    }

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxInfo, RuntimeError> {
        let attempt = self.next_sandbox_attempt(&spec.pod_uid).await?;
        let o = &self.options;
        let spec = &SandboxSpec { labels: self.scoped(&spec.labels), ..spec.clone() };
        let body = create::sandbox_body(spec, attempt, &o.pause_image, &o.pause_command, &o.network);
        let name = create::sandbox_name(spec, attempt);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.docker.create_container(Some(options), body).await;
        let id = created.map_err(|e| error::classify_create(e, &o.pause_image, &name))?.id;
        if let Err(e) = self.docker.start_container(&id, None::<StartContainerOptions>).await {
            let _ = self.remove(KIND_SANDBOX, &id, true).await;
            return Err(error::classify(e, "sandbox", &name));
        }
        tracing::info!(pod_uid = spec.pod_uid, sandbox = name, id, "sandbox started");
        Ok(state::sandbox_info(&self.inspect("sandbox", &id).await?, &o.network))
    }

    async fn remove_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        self.remove("sandbox", id, true).await
    }

    async fn list_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<SandboxInfo>, RuntimeError> {
        let found = self.list(KIND_SANDBOX, pod_uid).await?;
        Ok(found.iter().map(|i| state::sandbox_info(i, &self.options.network)).collect())
    }

    async fn create_container(&self, sandbox: &str, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.inspect("sandbox", sandbox).await?;
        let spec = &ContainerSpec { labels: self.scoped(&spec.labels), ..spec.clone() };
        let body = create::container_body(sandbox, spec)?;
        let name = create::container_name(spec);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.docker.create_container(Some(options), body).await;
        Ok(created.map_err(|e| error::classify_create(e, &spec.image, &name))?.id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let started = self.docker.start_container(id, None::<StartContainerOptions>).await;
        started.map_err(|e| error::classify(e, "container", id))
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        if secs == 0 {
            return self.kill(id).await;
        }
        let t = i32::try_from(secs).unwrap_or(i32::MAX);
        let docker = self.docker.clone().with_timeout(self.docker.timeout().max(grace + STOP_SLACK));
        let stopped = docker.stop_container(id, Some(StopContainerOptionsBuilder::default().t(t).build())).await;
        stopped.map_err(|e| error::classify(e, "container", id))
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.remove("container", id, false).await
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        state::container_info(&self.inspect("container", id).await?)
    }

    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.list(KIND_CONTAINER, pod_uid).await?.iter().map(state::container_info).collect()
    }

    async fn log_stream(&self, id: &str, options: &LogOptions) -> Result<ByteStream, RuntimeError> {
        self.inspect("container", id).await?;
        Ok(streams::log_stream(&self.docker, id, options))
    }

    async fn exec_stream(&self, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
        streams::exec_stream(&self.docker, id, request).await
    }

    async fn exec_resize(&self, exec_id: &str, width: u16, height: u16) -> Result<(), RuntimeError> {
        let options = bollard::exec::ResizeExecOptions { width, height };
        self.docker.resize_exec(exec_id, options).await.map_err(|e| error::classify(e, "exec", exec_id))
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<i32, RuntimeError> {
        streams::exec_exit_code(&self.docker, exec_id).await
    }

    fn events(&self) -> Option<broadcast::Receiver<RuntimeEvent>> {
        Some(self.events.subscribe())
    }
}
