//! [`ProcessRuntime`]: runs each container's command as a plain host process, for machines
//! with neither Docker nor containerd (like Nomad's `raw_exec`).
//!
//! **No isolation.** A "container" here is a process of the agent's user, with the host's
//! file system, network, pids and limits. Images are not used beyond their name, so a
//! container must set `command` (there is no image to take a default from); resources,
//! volumes and security contexts are not applied. Run only workloads you would run on the
//! host by hand.
//!
//! Invariants:
//! - Each container runs in its own process group (`process_group(0)`), so a stop signal
//!   reaches everything it started, and a terminal's Ctrl-C aimed at the agent does not.
//!   A container ends with its main process: leftovers in its group are then killed, as a
//!   container runtime kills a container's other processes when its init exits.
//! - Stopping is SIGTERM to the group, up to `grace` for the main process to exit, then
//!   SIGKILL. Exit codes are the process's own, or 128 + n when signal n ended it.
//! - Every sandbox and container is a JSON record under the data dir ([`record`]),
//!   written before the call that changed it returns. A new runtime over the same
//!   directory (a restarted agent) lists the same containers with the same identity
//!   labels and adopts processes still running, recognised by pid *and* start time. One
//!   whose process is gone or whose pid now names another process is reported exited with
//!   an unknown exit code (137, reason `ContainerStatusUnknown`, as the kubelet does).
//! - Exits of processes this runtime started are announced on [`Runtime::events`];
//!   exits of adopted ones are noticed when the container is next listed or inspected.
//! - The sandbox is bookkeeping only: the pod IP is the host IP, the pod's default working
//!   directory is `pods/<uid>/` under the data dir, and it is removed with the sandbox.
//!
//! - Logs: the process appends stdout and stderr to its log file itself (so it outlives
//!   the agent); the waiter notes when bytes appeared ([`stamps`]), which `kubectl logs
//!   --timestamps/--since` read ([`logs`]). Exec runs another host process with the
//!   container's env and directory, without a terminal ([`exec`]).
//!
//! Layout under the root directory: `sandboxes/<id>.json`, `containers/<id>.json`,
//! `logs/<container id>.log` (stdout and stderr, appended), `logs/<container id>.stamps`,
//! `pods/<uid>/`.

mod exec;
mod logs;
mod pid;
mod record;
mod spawn;
mod stamps;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::broadcast;

use self::record::{ContainerRecord, Dirs, SandboxRecord};
use super::{labels, ContainerInfo, ContainerSpec, ContainerState, Runtime, RuntimeError, RuntimeEvent};
use super::{ByteStream, ExecRequest, ExecSession, LogOptions, SandboxInfo, SandboxSpec};

/// Buffered runtime events; a subscriber that lags this far behind resyncs everything.
const EVENT_BUFFER: usize = 1024;
/// How often a stop checks whether the process has exited. Short next to any grace period
/// worth setting, long enough that a 30 s grace costs a few hundred cheap checks.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How long a SIGKILLed process may take to be reaped before the stop reports failure
/// (a process in uninterruptible sleep, e.g. on a dead NFS mount, can take this long).
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Exit code of a created container stopped before it ran (the fake runtime's choice too:
/// 128 + SIGTERM, as if it had honoured the stop).
const NEVER_RAN_EXIT_CODE: i32 = 143;
/// Exit code of a container whose fate is unknown (upstream kubelet's choice for
/// `ContainerStatusUnknown`).
pub const UNKNOWN_EXIT_CODE: i32 = 137;
/// Reason reported with [`UNKNOWN_EXIT_CODE`].
pub const UNKNOWN_REASON: &str = "ContainerStatusUnknown";

#[derive(Default)]
struct State {
    sandboxes: BTreeMap<String, SandboxRecord>,
    containers: BTreeMap<String, ContainerRecord>,
    /// Containers whose process this runtime started and waits for (the others were adopted).
    children: BTreeSet<String>,
    /// The last id handed out (nanoseconds since the epoch, kept strictly increasing).
    last_id: u64,
}

/// What the runtime and its waiter tasks share.
struct Shared {
    dirs: Dirs,
    state: Mutex<State>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("process runtime state lock poisoned")
    }

    fn save(&self, record: &ContainerRecord) -> Result<(), RuntimeError> {
        record::save(&self.dirs.containers, &record.info.id, &record.encode())
    }

    /// Record that container `id` exited with `exit_code`, and announce it.
    fn finish(&self, s: &mut State, id: &str, exit_code: i32, reason: Option<&str>) -> Result<(), RuntimeError> {
        let Some(r) = s.containers.get_mut(id) else { return Ok(()) };
        let started_at = match r.info.state {
            ContainerState::Running { started_at } => Some(started_at),
            _ => None,
        };
        let reason = reason.map(str::to_string);
        r.info.state = ContainerState::Exited { exit_code, started_at, finished_at: Timestamp::now(), reason };
        r.process = None;
        let pod_uid = r.info.pod_uid.clone();
        tracing::info!(container = id, pod_uid, exit_code, "container exited");
        let saved = self.save(r);
        let _ = self.events.send(RuntimeEvent { pod_uid });
        saved
    }

    /// Bring container `id` up to date with the host: an adopted process that is gone
    /// (or whose pid was reused) makes the container exited with an unknown exit code.
    fn refresh(&self, s: &mut State, id: &str) -> Result<(), RuntimeError> {
        let Some(r) = s.containers.get(id) else { return Ok(()) };
        let (Some(process), false) = (r.process, s.children.contains(id)) else { return Ok(()) };
        if pid::is_alive(process) {
            return Ok(());
        }
        pid::kill_leftovers(process);
        self.finish(s, id, UNKNOWN_EXIT_CODE, Some(UNKNOWN_REASON))
    }

    /// True once container `id` is not running (or does not exist).
    fn has_stopped(&self, id: &str) -> Result<bool, RuntimeError> {
        let mut s = self.state();
        self.refresh(&mut s, id)?;
        Ok(!s.containers.get(id).is_some_and(|r| r.info.is_running()))
    }
}

/// The host-process runtime. See the module doc.
pub struct ProcessRuntime {
    shared: Arc<Shared>,
    host_ip: String,
    execs: exec::Execs,
}

impl ProcessRuntime {
    /// A runtime keeping its records under `root` (created if missing) and giving pods
    /// `host_ip`. Records already there are loaded: their running processes are adopted.
    pub fn new(root: &Path, host_ip: impl Into<String>) -> Result<Self, RuntimeError> {
        let dirs = Dirs::create(root)?;
        let mut state = State::default();
        for r in record::load(&dirs.sandboxes, SandboxRecord::decode)? {
            state.sandboxes.insert(r.info.id.clone(), r);
        }
        for r in record::load(&dirs.containers, ContainerRecord::decode)? {
            state.containers.insert(r.info.id.clone(), r);
        }
        let running = state.containers.values().filter(|r| r.process.is_some()).count();
        tracing::info!(root = %root.display(), containers = state.containers.len(), running, "process runtime loaded");
        let shared = Shared { dirs, state: Mutex::new(state), events: broadcast::channel(EVENT_BUFFER).0 };
        Ok(Self { shared: Arc::new(shared), host_ip: host_ip.into(), execs: exec::Execs::default() })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    /// Wait up to `limit` for container `id` to stop; true if it did.
    async fn wait_stopped(&self, id: &str, limit: Duration) -> Result<bool, RuntimeError> {
        let deadline = Instant::now() + limit;
        loop {
            if self.shared.has_stopped(id)? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(STOP_POLL.min(deadline - Instant::now())).await;
        }
    }
}

impl State {
    fn new_id(&mut self) -> u64 {
        let now = u64::try_from(Timestamp::now().as_nanosecond()).unwrap_or(0);
        self.last_id = now.max(self.last_id + 1);
        self.last_id
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        Ok(env!("CARGO_PKG_VERSION").to_string())
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        Ok(Some(super::made_up_image_id(image)))
    }

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxInfo, RuntimeError> {
        let mut s = self.state();
        let id = format!("sandbox-{:016x}", s.new_id());
        let dir = self.shared.dirs.pod(&spec.pod_uid);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::Failed(format!("creating {}: {e}", dir.display())))?;
        let info = SandboxInfo {
            id: id.clone(),
            pod_uid: spec.pod_uid.clone(),
            ip: Some(self.host_ip.clone()),
            labels: spec.labels.clone(),
        };
        let r = SandboxRecord { info: info.clone(), hostname: spec.hostname.clone() };
        record::save(&self.shared.dirs.sandboxes, &id, &r.encode())?;
        s.sandboxes.insert(id, r);
        Ok(info)
    }

    async fn remove_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state();
        if s.containers.values().any(|c| c.sandbox == id) {
            return Err(RuntimeError::Failed(format!("sandbox {id} still has containers")));
        }
        let Some(sandbox) = s.sandboxes.get(id) else { return Ok(()) };
        let uid = sandbox.info.pod_uid.clone();
        record::remove(&self.shared.dirs.sandboxes, id)?;
        s.sandboxes.remove(id);
        if !s.sandboxes.values().any(|b| b.info.pod_uid == uid) {
            let dir = self.shared.dirs.pod(&uid);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a pod's directory");
            }
        }
        Ok(())
    }

    async fn list_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<SandboxInfo>, RuntimeError> {
        let s = self.state();
        let all = s.sandboxes.values().map(|r| &r.info);
        Ok(all.filter(|b| pod_uid.is_none_or(|u| b.pod_uid == u)).cloned().collect())
    }

    async fn create_container(&self, sandbox: &str, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut s = self.state();
        if !s.sandboxes.contains_key(sandbox) {
            return Err(RuntimeError::not_found("sandbox", sandbox));
        }
        let id = format!("{:016x}", s.new_id());
        let mut labels = spec.labels.clone();
        labels.insert(labels::ATTEMPT.to_string(), spec.attempt.to_string());
        let info = ContainerInfo {
            id: id.clone(),
            pod_uid: spec.pod_uid.clone(),
            name: spec.name.clone(),
            attempt: spec.attempt,
            image: spec.image.clone(),
            image_id: super::made_up_image_id(&spec.image),
            state: ContainerState::Created,
            labels,
        };
        let r = ContainerRecord {
            info,
            sandbox: sandbox.to_string(),
            argv: spec.command.iter().chain(&spec.args).cloned().collect(),
            env: spec.env.clone(),
            working_dir: spec.working_dir.clone(),
            process: None,
        };
        self.shared.save(&r)?;
        s.containers.insert(id.clone(), r);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        spawn::start(&self.shared, id)
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let process = {
            let mut s = self.state();
            self.shared.refresh(&mut s, id)?;
            let r = s.containers.get(id).ok_or_else(|| RuntimeError::not_found("container", id))?;
            match (&r.info.state, r.process) {
                (ContainerState::Created, _) => {
                    return self.shared.finish(&mut s, id, NEVER_RAN_EXIT_CODE, Some("ContainerCannotRun"));
                }
                (ContainerState::Running { .. }, Some(process)) => process,
                _ => return Ok(()),
            }
        };
        tracing::info!(container = id, pid = process.pid, grace_ms = grace.as_millis() as u64, "stopping container");
        pid::signal_group(process.pid, libc::SIGTERM);
        if self.wait_stopped(id, grace).await? {
            return Ok(());
        }
        tracing::info!(container = id, pid = process.pid, "grace period over; killing container");
        if !self.shared.has_stopped(id)? {
            pid::signal_group(process.pid, libc::SIGKILL);
        }
        match self.wait_stopped(id, KILL_WAIT).await? {
            true => Ok(()),
            false => Err(RuntimeError::Failed(format!("container {id} survived SIGKILL for {KILL_WAIT:?}"))),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state();
        self.shared.refresh(&mut s, id)?;
        if s.containers.get(id).is_some_and(|r| r.info.is_running()) {
            return Err(RuntimeError::Failed(format!("container {id} is running")));
        }
        record::remove(&self.shared.dirs.containers, id)?;
        s.containers.remove(id);
        let log = self.shared.dirs.log(id);
        for path in [stamps::path(&log), log] {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(container = id, path = %path.display(), error = %e, "cannot remove a container's log");
                }
            }
        }
        Ok(())
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let mut s = self.state();
        self.shared.refresh(&mut s, id)?;
        s.containers.get(id).map(|r| r.info.clone()).ok_or_else(|| RuntimeError::not_found("container", id))
    }

    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let mut s = self.state();
        let ids: Vec<String> = s
            .containers
            .values()
            .filter(|r| pod_uid.is_none_or(|u| r.info.pod_uid == u))
            .map(|r| r.info.id.clone())
            .collect();
        let mut infos = Vec::with_capacity(ids.len());
        for id in &ids {
            self.shared.refresh(&mut s, id)?;
            infos.extend(s.containers.get(id).map(|r| r.info.clone()));
        }
        Ok(infos)
    }

    async fn log_stream(&self, id: &str, options: &LogOptions) -> Result<ByteStream, RuntimeError> {
        if !self.state().containers.contains_key(id) {
            return Err(RuntimeError::not_found("container", id));
        }
        logs::stream(self.shared.clone(), id.to_string(), self.shared.dirs.log(id), options.clone())
    }

    async fn exec_stream(&self, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
        self.execs.start(&self.shared, id, request)
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<i32, RuntimeError> {
        self.execs.exit_code(exec_id).await
    }

    fn events(&self) -> Option<broadcast::Receiver<RuntimeEvent>> {
        Some(self.shared.events.subscribe())
    }
}
