//! Containers: containerd containers with a snapshot and a task, from creation to removal.
//!
//! Invariants:
//! - Lifecycle: create = snapshot + container (no task); start = fifos + log copiers +
//!   task; the task lives until its exit is reaped; remove = task (if any), container,
//!   snapshot, then the state files.
//! - State is read, never cached: a task that runs is Running (start time from our label),
//!   a stopped task is reaped on sight, and without a task the exit labels decide between
//!   Exited and Created. So a restarted agent sees what containerd sees.
//! - Reaping may race between the event loop, a stop and an inspect (and a second runtime
//!   over the same namespace), so it is idempotent: the exit code and time are read from
//!   the stopped task and written to the labels *before* the task is deleted, and every
//!   reaper writes the same values. A task is never deleted before its exit is recorded,
//!   so a started container without task and without exit labels lost its task outside
//!   our control: it is reported exited with 137, `ContainerStatusUnknown`.
//! - A task that cannot be created or started leaves the container Exited with 128 and
//!   reason `StartError` and the message in its log, as the process runtime does; the sync
//!   core then restarts it with back-off.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::serde_json;

use containerd_client::services::v1::container::Runtime as TaskRuntime;
use containerd_client::services::v1::snapshots::{MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest, DeleteTaskRequest,
    GetContainerRequest, GetRequest, KillRequest, ListContainersRequest, StartRequest, UpdateContainerRequest,
    WaitRequest,
};
use containerd_client::types::v1::Status as TaskStatus;

use super::client::{self, failed, optional};
use super::{image, logfile, oci, Inner};
use crate::runtime::{labels, ContainerInfo, ContainerSpec, ContainerState, Mount, RuntimeError};

/// Our labels on a container, next to the pod's identity labels.
const SANDBOX: &str = "io.flotilla.containerd.sandbox";
const IMAGE: &str = "io.flotilla.containerd.image";
const IMAGE_ID: &str = "io.flotilla.containerd.image-id";
const TTY: &str = "io.flotilla.containerd.tty";
const STARTED_AT: &str = "io.flotilla.containerd.started-at";
const EXIT_CODE: &str = "io.flotilla.containerd.exit-code";
const FINISHED_AT: &str = "io.flotilla.containerd.finished-at";
const REASON: &str = "io.flotilla.containerd.reason";

const RUNC_SHIM: &str = "io.containerd.runc.v2";
/// How long a SIGKILLed task may take to exit before the stop reports failure.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Exit code and reason of a task that could not start (containerd's own answer).
const START_ERROR: (i32, &str) = (128, "StartError");
/// Exit code and reason of a container whose task vanished (the kubelet's choice).
const UNKNOWN: (i32, &str) = (137, "ContainerStatusUnknown");
/// Exit code and reason of a created container stopped before it ran.
const NEVER_RAN: (i32, &str) = (143, "ContainerCannotRun");

pub fn sandbox_of(c: &Container) -> Option<&str> {
    c.labels.get(SANDBOX).map(String::as_str)
}

pub async fn get(inner: &Inner, id: &str) -> Result<Option<Container>, RuntimeError> {
    let api = &inner.api;
    let got = optional(api.containers().get(api.req(GetContainerRequest { id: id.into() })).await);
    Ok(got.map_err(|s| failed("container", id, s))?.and_then(|r| r.into_inner().container))
}

/// Our containers (of pod `pod_uid`, or all).
pub async fn list(inner: &Inner, pod_uid: Option<&str>) -> Result<Vec<Container>, RuntimeError> {
    let mut filter = match pod_uid {
        Some(uid) => format!("labels.\"{}\"==\"{}\"", labels::POD_UID, uid.replace('"', "")),
        None => format!("labels.\"{}\"", labels::POD_UID),
    };
    if let Some(scope) = &inner.options.scope {
        // A comma joins conditions that must all hold.
        filter.push_str(&format!(",labels.\"{}\"==\"{}\"", labels::SCOPE, scope.replace('"', "")));
    }
    let api = &inner.api;
    let listed = api.containers().list(api.req(ListContainersRequest { filters: vec![filter] })).await;
    Ok(listed.map_err(|s| failed("containers", "", s))?.into_inner().containers)
}

/// Create a container of `spec` in sandbox `sandbox_id`. See the module doc.
pub async fn create(inner: &Inner, sandbox_id: &str, spec: &ContainerSpec) -> Result<String, RuntimeError> {
    let sandbox = inner.sandboxes.get(sandbox_id)?.ok_or_else(|| RuntimeError::not_found("sandbox", sandbox_id))?;
    let image = image::resolve(&inner.api, &spec.image, &inner.options.snapshotter).await?;
    let id = format!("{:016x}", rand::random::<u64>());
    let mut mounts = spec.mounts.clone();
    for (host_path, path) in inner.sandboxes.etc_files(sandbox_id) {
        if !mounts.iter().any(|m| m.container_path == path) {
            mounts.push(Mount { host_path, container_path: path.into(), read_only: true });
        }
    }
    let netns = sandbox.netns_path().display().to_string();
    let input = oci::SpecInput {
        process: image::process(spec, &image.config, &sandbox.hostname)?,
        hostname: &sandbox.hostname,
        netns_path: &netns,
        cgroups_path: format!("/flotilla/{id}"),
        mounts: &mounts,
        resources: &spec.resources,
        security: &spec.security,
    };
    let runtime_spec = serde_json::to_vec(&oci::runtime_spec(&input)).expect("JSON encodes");
    let mut container_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    container_labels.insert(labels::ATTEMPT.into(), spec.attempt.to_string());
    container_labels.insert(SANDBOX.into(), sandbox_id.into());
    container_labels.insert(IMAGE.into(), spec.image.clone());
    container_labels.insert(IMAGE_ID.into(), image.digest.clone());
    container_labels.insert(TTY.into(), spec.tty.to_string());
    if let Some(scope) = &inner.options.scope {
        container_labels.insert(labels::SCOPE.into(), scope.clone());
    }
    let mut container = Container {
        id: id.clone(),
        labels: container_labels,
        image: image.name.clone(),
        runtime: Some(TaskRuntime { name: RUNC_SHIM.into(), options: None }),
        spec: Some(Default::default()),
        snapshotter: inner.options.snapshotter.clone(),
        snapshot_key: id.clone(),
        ..Default::default()
    };
    if let Some(any) = container.spec.as_mut() {
        any.type_url = client::SPEC_TYPE_URL.into();
        any.value = runtime_spec;
    }
    prepare_snapshot(inner, &id, &image.top_layer).await?;
    let api = &inner.api;
    let created = api.containers().create(api.req(CreateContainerRequest { container: Some(container) })).await;
    if let Err(s) = created {
        remove_snapshot(inner, &id).await;
        return Err(failed("container", &id, s));
    }
    tracing::info!(container = id, pod_uid = spec.pod_uid, name = spec.name, image = image.name, "container created");
    Ok(id)
}

/// Prepare container `id`'s writable snapshot. It is labelled a GC root: between this call
/// and the container's creation nothing references it, and containerd's garbage collector
/// removed such a snapshot under load ("snapshot not found" at start). It is removed
/// explicitly with its container ([`remove_snapshot`]).
async fn prepare_snapshot(inner: &Inner, id: &str, parent: &str) -> Result<(), RuntimeError> {
    let api = &inner.api;
    let root = ("containerd.io/gc.root".to_string(), k8s_openapi::jiff::Timestamp::now().to_string());
    let request = PrepareSnapshotRequest {
        snapshotter: inner.options.snapshotter.clone(),
        key: id.into(),
        parent: parent.into(),
        labels: HashMap::from([root]),
    };
    api.snapshots().prepare(api.req(request)).await.map_err(|s| failed("snapshot", id, s))?;
    Ok(())
}

async fn remove_snapshot(inner: &Inner, id: &str) {
    let api = &inner.api;
    let request = RemoveSnapshotRequest { snapshotter: inner.options.snapshotter.clone(), key: id.into() };
    if let Err(s) = optional(api.snapshots().remove(api.req(request)).await) {
        tracing::warn!(container = id, error = %s.message(), "cannot remove a container's snapshot");
    }
}

/// Start container `id`'s task. See the module doc.
pub async fn start(inner: &Inner, id: &str) -> Result<(), RuntimeError> {
    let c = get(inner, id).await?.ok_or_else(|| RuntimeError::not_found("container", id))?;
    if c.labels.contains_key(STARTED_AT) || c.labels.contains_key(EXIT_CODE) {
        return Err(RuntimeError::Failed(format!("container {id} is not in state created")));
    }
    let tty = c.labels.get(TTY).is_some_and(|t| t == "true");
    let dir = inner.container_dir(id);
    std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::Failed(format!("creating {}: {e}", dir.display())))?;
    let log = logfile::open_log(&dir.join("log"))?;
    let streams: &[&'static str] = if tty { &["stdout"] } else { &["stdout", "stderr"] };
    for stream in streams {
        logfile::mkfifo(&dir.join(stream))?;
        logfile::spawn_copier(&inner.copiers, id, dir.join(stream), stream, log.clone());
    }
    if let Err(e) = create_and_start_task(inner, id, &dir, tty).await {
        tracing::warn!(container = id, error = %e, "container failed to start");
        let _ = log.lock().expect("log lock").write_all(&logfile::format(
            Timestamp::now(),
            "stderr",
            false,
            e.to_string().as_bytes(),
        ));
        for stream in streams {
            logfile::unblock(&dir.join(stream));
        }
        let (code, reason) = START_ERROR;
        record_exit(inner, id, code, Timestamp::now(), reason).await?;
        let api = &inner.api;
        let _ = api.tasks().delete(api.req(DeleteTaskRequest { container_id: id.into() })).await;
        return Ok(());
    }
    tracing::info!(container = id, "container started");
    Ok(())
}

async fn create_and_start_task(inner: &Inner, id: &str, dir: &Path, tty: bool) -> Result<(), RuntimeError> {
    let api = &inner.api;
    let snapshotter = inner.options.snapshotter.clone();
    let mounts = api.snapshots().mounts(api.req(MountsRequest { snapshotter, key: id.into() })).await;
    let rootfs = mounts.map_err(|s| failed("snapshot", id, s))?.into_inner().mounts;
    let path = |s: &str| dir.join(s).display().to_string();
    let request = CreateTaskRequest {
        container_id: id.into(),
        rootfs,
        stdout: path("stdout"),
        stderr: if tty { String::new() } else { path("stderr") },
        terminal: tty,
        ..Default::default()
    };
    api.tasks().create(api.req(request)).await.map_err(|s| failed("task", id, s))?;
    // Written while the task is Created, so a started container always has a task or
    // exit labels (see the module doc).
    set_labels(inner, id, &[(STARTED_AT, Timestamp::now().to_string())]).await?;
    let started = api.tasks().start(api.req(StartRequest { container_id: id.into(), exec_id: String::new() })).await;
    started.map_err(|s| failed("task", id, s))?;
    Ok(())
}

async fn set_labels(inner: &Inner, id: &str, pairs: &[(&str, String)]) -> Result<(), RuntimeError> {
    let mut c = get(inner, id).await?.ok_or_else(|| RuntimeError::not_found("container", id))?;
    for (k, v) in pairs {
        c.labels.insert(k.to_string(), v.clone());
    }
    let api = &inner.api;
    let request = UpdateContainerRequest { container: Some(c), update_mask: None };
    api.containers().update(api.req(request)).await.map_err(|s| failed("container", id, s))?;
    Ok(())
}

async fn record_exit(inner: &Inner, id: &str, code: i32, at: Timestamp, reason: &str) -> Result<(), RuntimeError> {
    let pairs = [(EXIT_CODE, code.to_string()), (FINISHED_AT, at.to_string()), (REASON, reason.to_string())];
    set_labels(inner, id, &pairs).await
}

/// Collect container `id`'s exit if its task has stopped: record the exit in the labels,
/// then delete the task. False if it has no stopped task. See the module doc.
pub async fn reap(inner: &Inner, id: &str) -> Result<bool, RuntimeError> {
    let api = &inner.api;
    let got = optional(api.tasks().get(api.req(GetRequest { container_id: id.into(), exec_id: String::new() })).await);
    let process = got.map_err(|s| failed("task", id, s))?.and_then(|r| r.into_inner().process);
    let Some(p) = process.filter(|p| p.status == TaskStatus::Stopped as i32) else { return Ok(false) };
    let code = i32::try_from(p.exit_status).unwrap_or(i32::MAX);
    let at = p.exited_at.and_then(|t| Timestamp::new(t.seconds, t.nanos).ok()).unwrap_or_else(Timestamp::now);
    let oom = inner.oom.lock().expect("oom lock").contains(id);
    let reason = match (code, oom) {
        (0, _) => "Completed",
        (_, true) => "OOMKilled",
        _ => "Error",
    };
    record_exit(inner, id, code, at, reason).await?;
    inner.oom.lock().expect("oom lock").remove(id);
    let deleted = optional(api.tasks().delete(api.req(DeleteTaskRequest { container_id: id.into() })).await);
    if let Err(s) = deleted {
        // A concurrent reaper's Delete can fail this one; the task is gone either way.
        tracing::debug!(container = id, error = %s.message(), "task delete failed");
    }
    tracing::info!(container = id, exit_code = code, reason, "container exited");
    Ok(true)
}

/// Record that started container `id` lost its task without a recorded exit.
async fn lost(inner: &Inner, id: &str) -> Result<(), RuntimeError> {
    // Looked at again: a concurrent reaper may have recorded the exit and deleted the task
    // since the caller read the container.
    let c = get(inner, id).await?.ok_or_else(|| RuntimeError::not_found("container", id))?;
    if c.labels.contains_key(EXIT_CODE) {
        return Ok(());
    }
    tracing::warn!(container = id, "container's task is gone without an exit status");
    record_exit(inner, id, UNKNOWN.0, Timestamp::now(), UNKNOWN.1).await
}

async fn task_status(inner: &Inner, id: &str) -> Result<Option<TaskStatus>, RuntimeError> {
    let api = &inner.api;
    let got = optional(api.tasks().get(api.req(GetRequest { container_id: id.into(), exec_id: String::new() })).await);
    let process = got.map_err(|s| failed("task", id, s))?.and_then(|r| r.into_inner().process);
    Ok(process.map(|p| TaskStatus::try_from(p.status).unwrap_or(TaskStatus::Unknown)))
}

/// Ask container `id` to stop, kill it after `grace`, and reap it.
pub async fn stop(inner: &Inner, id: &str, grace: Duration) -> Result<(), RuntimeError> {
    let c = get(inner, id).await?.ok_or_else(|| RuntimeError::not_found("container", id))?;
    match task_status(inner, id).await? {
        None if c.labels.contains_key(EXIT_CODE) => return Ok(()),
        None if c.labels.contains_key(STARTED_AT) => return lost(inner, id).await,
        None => return record_exit(inner, id, NEVER_RAN.0, Timestamp::now(), NEVER_RAN.1).await,
        Some(TaskStatus::Stopped) => {}
        Some(_) => {
            tracing::info!(container = id, grace_ms = grace.as_millis() as u64, "stopping container");
            if !signal_and_wait(inner, id, libc::SIGTERM, grace).await? {
                tracing::info!(container = id, "grace period over; killing container");
                if !signal_and_wait(inner, id, libc::SIGKILL, KILL_WAIT).await? {
                    return Err(RuntimeError::Failed(format!("container {id} survived SIGKILL for {KILL_WAIT:?}")));
                }
            }
        }
    }
    reap(inner, id).await?;
    Ok(())
}

/// Send `signal` to the task and wait up to `limit` for it to exit; true if it did.
async fn signal_and_wait(inner: &Inner, id: &str, signal: i32, limit: Duration) -> Result<bool, RuntimeError> {
    let api = &inner.api;
    let kill = KillRequest { container_id: id.into(), exec_id: String::new(), signal: signal as u32, all: true };
    if let Err(s) = api.tasks().kill(api.req(kill)).await {
        // An exited task refuses signals; the wait below tells.
        tracing::debug!(container = id, error = %s.message(), "signal not delivered");
    }
    let deadline = tokio::time::Instant::now() + limit;
    let mut tasks = api.tasks();
    let wait = tasks.wait(api.req(WaitRequest { container_id: id.into(), exec_id: String::new() }));
    match tokio::time::timeout_at(deadline, wait).await {
        Err(_) => Ok(false),
        Ok(Ok(_)) => Ok(true),
        Ok(Err(s)) if client::is_not_found(&s) => Ok(true),
        // The wait's connection to the shim can close as the task exits ("ttrpc: closed"):
        // the task's status tells whether it did.
        Ok(Err(s)) => {
            tracing::debug!(container = id, error = %s.message(), "wait failed; polling the task's status");
            while tokio::time::Instant::now() < deadline {
                if matches!(task_status(inner, id).await?, None | Some(TaskStatus::Stopped)) {
                    return Ok(true);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(failed("task", id, s))
        }
    }
}

/// Remove stopped container `id` and everything of it.
pub async fn remove(inner: &Inner, id: &str) -> Result<(), RuntimeError> {
    if get(inner, id).await?.is_none() {
        return Ok(());
    }
    match task_status(inner, id).await? {
        Some(TaskStatus::Stopped) | Some(TaskStatus::Created) => {
            reap(inner, id).await?;
        }
        Some(_) => return Err(RuntimeError::Failed(format!("container {id} is running"))),
        None => {}
    }
    let api = &inner.api;
    let deleted = optional(api.containers().delete(api.req(DeleteContainerRequest { id: id.into() })).await);
    deleted.map_err(|s| failed("container", id, s))?;
    remove_snapshot(inner, id).await;
    let dir = inner.container_dir(id);
    for stream in ["stdout", "stderr"] {
        logfile::unblock(&dir.join(stream));
    }
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(container = id, error = %e, "cannot remove a container's state files");
        }
    }
    Ok(())
}

fn label_time(c: &Container, key: &str) -> Option<Timestamp> {
    c.labels.get(key)?.parse().ok()
}

/// Container `c` as the runtime reports it (reaping its task if it has stopped).
pub async fn info(inner: &Inner, c: Container) -> Result<ContainerInfo, RuntimeError> {
    let mut c = c;
    let status = task_status(inner, &c.id).await?;
    let vanished = status.is_none() && !c.labels.contains_key(EXIT_CODE) && c.labels.contains_key(STARTED_AT);
    if vanished {
        lost(inner, &c.id).await?;
    }
    if status == Some(TaskStatus::Stopped) {
        reap(inner, &c.id).await?;
    }
    if vanished || status == Some(TaskStatus::Stopped) {
        c = get(inner, &c.id).await?.ok_or_else(|| RuntimeError::not_found("container", &c.id))?;
    }
    let started_at = label_time(&c, STARTED_AT);
    let state = match (status, c.labels.get(EXIT_CODE)) {
        (_, Some(code)) => ContainerState::Exited {
            exit_code: code.parse().unwrap_or(START_ERROR.0),
            started_at,
            finished_at: label_time(&c, FINISHED_AT).unwrap_or_else(Timestamp::now),
            reason: c.labels.get(REASON).cloned(),
        },
        (Some(TaskStatus::Created) | None, None) => ContainerState::Created,
        (Some(_), None) => ContainerState::Running { started_at: started_at.unwrap_or_else(Timestamp::now) },
    };
    let labels: std::collections::BTreeMap<String, String> = c.labels.into_iter().collect();
    let (pod_uid, name, attempt) = ContainerInfo::identity(&labels)
        .ok_or_else(|| RuntimeError::Failed(format!("container {} has no flotilla identity labels", c.id)))?;
    Ok(ContainerInfo {
        id: c.id,
        pod_uid,
        name,
        attempt,
        image: labels.get(IMAGE).cloned().unwrap_or(c.image),
        image_id: labels.get(IMAGE_ID).cloned().unwrap_or_default(),
        state,
        labels,
    })
}

/// After a restart: copy the output of running tasks again, reap the stopped ones.
pub async fn adopt(inner: &Inner) -> Result<(), RuntimeError> {
    let (mut running, mut reaped) = (0, 0);
    for c in list(inner, None).await? {
        match task_status(inner, &c.id).await? {
            Some(TaskStatus::Stopped) => reaped += usize::from(reap(inner, &c.id).await?),
            Some(TaskStatus::Running | TaskStatus::Paused | TaskStatus::Pausing) => {
                // Only containers started over this state dir have their fifos here.
                let dir = inner.container_dir(&c.id);
                if !dir.join("stdout").exists() || inner.copiers.is_active(&c.id) {
                    continue;
                }
                let log = logfile::open_log(&dir.join("log"))?;
                for stream in ["stdout", "stderr"] {
                    if dir.join(stream).exists() {
                        logfile::spawn_copier(&inner.copiers, &c.id, dir.join(stream), stream, log.clone());
                    }
                }
                running += 1;
            }
            _ => {}
        }
    }
    tracing::info!(running, reaped, "containerd runtime adopted its containers");
    Ok(())
}
