//! The runtime half of a pod worker's I/O: read what the runtime holds for a pod
//! ([`observe`]) and carry out one planned step ([`apply`]). Shared by the worker and the
//! sync tests, so the tests exercise the same code against the in-memory runtime.
//!
//! Invariant: [`apply`] does exactly what the step says and nothing else; every decision
//! was made by [`super::sync::PodSync::plan`].

use k8s_openapi::api::core::v1::Pod;

use super::{spec, Context};
use super::sync::{Observed, Step};
use crate::error::AgentError;
use crate::runtime::{Runtime, RuntimeError};

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
pub async fn apply(
    ctx: &Context,
    pod: Option<&Pod>,
    observed: &Observed,
    step: &Step,
) -> Result<(), AgentError> {
    let runtime = ctx.runtime.as_ref();
    let missing = |what: &str| AgentError::Runtime(RuntimeError::Failed(format!("step {step:?} needs {what}")));
    match step {
        Step::CreateSandbox => {
            runtime.create_sandbox(&spec::sandbox_spec(pod.ok_or_else(|| missing("the pod"))?)).await?;
        }
        Step::RunContainer { name, attempt } => {
            let pod = pod.ok_or_else(|| missing("the pod"))?;
            let sandbox = observed.sandbox.as_ref().ok_or_else(|| missing("a sandbox"))?;
            let mut all = spec::init_containers(pod).iter().chain(spec::containers(pod));
            let container = all.find(|c| &c.name == name).ok_or_else(|| missing("a container of that name"))?;
            let id = runtime.create_container(&sandbox.id, &spec::container_spec(pod, container, *attempt)).await?;
            runtime.start_container(&id).await?;
            tracing::info!(pod = spec::key(pod), container = name, attempt, "container started");
        }
        Step::StopContainer { id, grace } => runtime.stop_container(id, *grace).await?,
        Step::RemoveContainer { id } => runtime.remove_container(id).await?,
        Step::RemoveSandbox { id } => runtime.remove_sandbox(id).await?,
        Step::DeletePod => return Err(missing("the API (the worker deletes pods)")),
    }
    Ok(())
}
