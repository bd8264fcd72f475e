//! The runtime half of a pod worker's I/O: read what the runtime holds for a pod
//! ([`observe`]), carry out one planned step ([`apply`]), and keep a running pod's
//! content volumes current ([`refresh_volumes`]). Shared by the worker and the sync tests,
//! so the tests exercise the same code against the in-memory runtime.
//!
//! Invariants:
//! - [`apply`] does exactly what the step says and nothing else; every decision was made
//!   by [`super::sync::PodSync::plan`].
//! - A container is created only from a fully resolved configuration: env (ConfigMaps,
//!   Secrets, downward API), volumes, mounts, limits and security. When any of it cannot
//!   be resolved, nothing is created and [`apply`] returns
//!   [`AgentError::ContainerConfig`] with the waiting reason and message the container's
//!   status should show ([`config_waiting`] turns it into a [`Waiting`]). An API outage
//!   is not a configuration error: it is returned as is and the step retried.
//! - Removing a sandbox removes the pod's directory of volumes (never hostPath or PV paths).

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;

use super::env::field::NodeFacts;
use super::env::objects::{Objects, Refs};
use super::spec::limits;
use super::spec::Configured;
use super::sync::{Observed, Step, Waiting};
use super::volumes::{mounts, payload};
use super::{dns, env, spec, Context};
use crate::error::AgentError;
use crate::runtime::{Mount, Runtime, RuntimeError, SandboxInfo};

/// Waiting reason of a container whose env, mounts, limits or security cannot be resolved.
pub const CONFIG_ERROR: &str = "CreateContainerConfigError";
/// Waiting reason of a container whose pod's volumes cannot be set up: upstream leaves such
/// containers `ContainerCreating` (and reports `FailedMount`); the message says why.
pub const MOUNT_ERROR: &str = "ContainerCreating";

/// What `runtime` holds for pod `uid`, and which of `pod`'s images are present.
pub async fn observe(runtime: &dyn Runtime, uid: &str, pod: Option<&Pod>) -> Result<Observed, AgentError> {
    let sandbox = runtime.list_sandboxes(Some(uid)).await?.into_iter().next();
    let containers = runtime.list_containers(Some(uid)).await?;
    let mut observed = Observed { sandbox, containers, ..Observed::default() };
    if let Some(pod) = pod {
        let all = spec::init_containers(pod).iter().chain(spec::containers(pod));
        for image in all.filter_map(|c| c.image.as_deref()) {
            if !observed.images.contains_key(image) {
                observed.images.insert(image.to_string(), runtime.image_id(image).await?);
            }
        }
    }
    Ok(observed)
}

/// Carry out `step` (all but [`Step::DeletePod`], which is the API's business).
pub async fn apply(ctx: &Context, pod: Option<&Pod>, observed: &Observed, step: &Step) -> Result<(), AgentError> {
    let runtime = ctx.runtime.as_ref();
    let missing = |what: &str| AgentError::Runtime(RuntimeError::Failed(format!("step {step:?} needs {what}")));
    match step {
        Step::CreateSandbox => {
            runtime.create_sandbox(&spec::sandbox_spec(pod.ok_or_else(|| missing("the pod"))?)).await?;
            flotilla_metrics::agent().pod_starts.inc();
        }
        Step::RunContainer { name, attempt } => {
            let pod = pod.ok_or_else(|| missing("the pod"))?;
            let sandbox = observed.sandbox.as_ref().ok_or_else(|| missing("a sandbox"))?;
            let mut all = spec::init_containers(pod).iter().chain(spec::containers(pod));
            let container = all.find(|c| &c.name == name).ok_or_else(|| missing("a container of that name"))?;
            let configured = configure(ctx, pod, container, sandbox).await?;
            let id = runtime
                .create_container(&sandbox.id, &spec::container_spec(pod, container, *attempt, configured))
                .await?;
            runtime.start_container(&id).await?;
            flotilla_metrics::agent().container_starts.inc();
            tracing::info!(pod = spec::key(pod), container = name, attempt, "container started");
        }
        Step::StopContainer { id, grace } => runtime.stop_container(id, *grace).await?,
        Step::RemoveContainer { id } => runtime.remove_container(id).await?,
        Step::RemoveSandbox { id } => {
            runtime.remove_sandbox(id).await?;
            let uid = observed.sandbox.as_ref().filter(|s| &s.id == id).map(|s| s.pod_uid.as_str());
            if let Some(uid) = uid.or(pod.map(spec::uid)) {
                ctx.volumes.remove_pod(uid).map_err(|e| {
                    AgentError::Runtime(RuntimeError::Failed(format!("removing the volumes of pod {uid}: {e}")))
                })?;
            }
        }
        Step::DeletePod => return Err(missing("the API (the worker deletes pods)")),
    }
    Ok(())
}

/// The container and the status it waits with, when `error` is a configuration error.
pub fn config_waiting(error: &AgentError) -> Option<(String, Waiting)> {
    match error {
        AgentError::ContainerConfig { container, reason, message } => {
            Some((container.clone(), Waiting { reason, message: message.clone() }))
        }
        _ => None,
    }
}

/// Resolve everything `container` of `pod` is created with. See the module doc.
async fn configure(
    ctx: &Context,
    pod: &Pod,
    container: &Container,
    sandbox: &SandboxInfo,
) -> Result<Configured, AgentError> {
    let fail = |reason: &'static str, message: String| AgentError::ContainerConfig {
        container: container.name.clone(),
        reason,
        message,
    };
    let resources = limits::resources(container).map_err(|e| fail(CONFIG_ERROR, e))?;
    let security = limits::security(pod, container, ctx.allow_privileged).map_err(|e| fail(CONFIG_ERROR, e))?;
    let mut refs = Refs::of_container(container);
    if !ctx.volumes.is_simulated() {
        refs.merge(Refs::of_volumes(pod));
    }
    let objects = fetch(ctx, pod, &refs).await?;
    let facts = NodeFacts {
        pod_ips: sandbox.ip.iter().cloned().collect(),
        host_ip: ctx.host_ip.clone(),
        allocatable: objects.allocatable.clone(),
    };
    let resolved = env::resolve(pod, container, &objects, &facts).map_err(|e| fail(CONFIG_ERROR, e.0))?;
    let volumes = ctx.volumes.prepare(pod, &objects, &facts).map_err(|e| fail(MOUNT_ERROR, e.to_string()))?;
    let mut mounts = if ctx.volumes.is_simulated() {
        Vec::new()
    } else {
        mounts::mounts(container, &volumes, &resolved.env).map_err(|e| fail(CONFIG_ERROR, e))?
    };
    if let Some(mount) = resolv_conf_mount(ctx, pod, &mounts).map_err(|e| fail(MOUNT_ERROR, e))? {
        mounts.push(mount);
    }
    Ok(Configured { resolved, mounts, resources, security })
}

/// The pod's `/etc/resolv.conf` for its DNS policy, written to the pod's directory, as a
/// read-only mount; none when the runtime's default stands or the container mounts its own.
fn resolv_conf_mount(ctx: &Context, pod: &Pod, mounts: &[Mount]) -> Result<Option<Mount>, String> {
    const PATH: &str = "/etc/resolv.conf";
    let Some(dir) = ctx.volumes.pod_dir(spec::uid(pod)) else { return Ok(None) };
    let Some(text) = ctx.dns.resolv_conf(pod) else { return Ok(None) };
    if mounts.iter().any(|m| m.container_path == PATH) {
        return Ok(None);
    }
    let host_path = dns::write(&dir, &text).map_err(|e| format!("cannot write {PATH} for the pod: {e}"))?;
    Ok(Some(Mount { host_path, container_path: PATH.into(), read_only: true }))
}

async fn fetch(ctx: &Context, pod: &Pod, refs: &Refs) -> Result<Objects, AgentError> {
    if refs.is_empty() {
        return Ok(Objects::default());
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut objects = Objects::fetch(&ctx.pool, namespace, &ctx.node_name, refs).await?;
    if !refs.tokens.is_empty() {
        objects.tokens = ctx.tokens.tokens(&ctx.pool, pod, &refs.tokens).await?;
    }
    Ok(objects)
}

/// Bring `pod`'s configMap, secret, downwardAPI and projected volumes up to date with
/// their sources, at most once per [`super::volumes::VolumeManager::refresh_interval`];
/// the names of the volumes rewritten. The worker calls this on every sync of a pod.
pub async fn refresh_volumes(ctx: &Context, pod: &Pod) -> Result<Vec<String>, AgentError> {
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    let has_content = volumes.clone().any(|v| payload::kind(v).is_some());
    if !has_content || spec::is_terminating(pod) || !ctx.volumes.refresh_due(spec::uid(pod), Instant::now()) {
        return Ok(Vec::new());
    }
    let mut refs = Refs::of_volumes(pod);
    refs.claims.clear();
    let objects = fetch(ctx, pod, &refs).await?;
    let status = pod.status.as_ref();
    let facts = NodeFacts {
        pod_ips: status.and_then(|s| s.pod_ips.as_ref()).into_iter().flatten().map(|ip| ip.ip.clone()).collect(),
        host_ip: ctx.host_ip.clone(),
        allocatable: objects.allocatable.clone(),
    };
    let changed = ctx.volumes.refresh(pod, &objects, &facts);
    if !changed.is_empty() {
        tracing::info!(pod = spec::key(pod), volumes = ?changed, "volumes updated from their sources");
    }
    Ok(changed)
}
