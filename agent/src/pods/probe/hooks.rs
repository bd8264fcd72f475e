//! Lifecycle hooks around the steps that start and stop containers: [`apply`] is
//! [`effects::apply`] with the container's `postStart` and `preStop` hooks run where
//! upstream runs them. The worker and the sync tests both execute steps through it.
//!
//! Invariants:
//! - `preStop` runs before a running container is stopped, within the stop's grace
//!   period; the stop then gets what remains of it (at least [`MIN_GRACE`], as upstream).
//!   A hook that fails or runs out of time is logged and the stop goes on.
//! - `postStart` runs right after a start, for at most the pod's grace period (upstream
//!   sets no bound; a hook that never ends must not hold the pod's worker forever); if it
//!   fails, the new container is stopped (with the pod's grace period) and the normal
//!   restart path takes over.
//! - Hooks need the Pod: a pod gone from the API is torn down without them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;

use super::action;
use super::run;
use super::state::Outcome;
use crate::error::AgentError;
use crate::pods::sync::{Observed, Step};
use crate::pods::{effects, spec, Context};

/// What a stop gets at least after a `preStop` hook used up its grace (upstream's
/// `minimumGracePeriodInSeconds`).
pub const MIN_GRACE: Duration = Duration::from_secs(2);

/// Carry out `step` with the lifecycle hooks around it. See the module doc.
pub async fn apply(ctx: &Context, pod: Option<&Pod>, observed: &Observed, step: &Step) -> Result<(), AgentError> {
    match (step, pod) {
        (Step::StopContainer { id, grace }, Some(pod)) => {
            let grace = pre_stop(ctx, pod, observed, id, *grace).await;
            let step = Step::StopContainer { id: id.clone(), grace };
            effects::apply(ctx, Some(pod), observed, &step).await
        }
        (Step::RunContainer { name, attempt }, Some(pod)) => {
            effects::apply(ctx, Some(pod), observed, step).await?;
            post_start(ctx, pod, name, *attempt).await
        }
        _ => effects::apply(ctx, pod, observed, step).await,
    }
}

/// The container `name` of `pod` (init or app).
fn container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    spec::init_containers(pod).iter().chain(spec::containers(pod)).find(|c| c.name == name)
}

/// The pod's IP, where hooks and probes connect by default (the node's for runtimes
/// whose sandboxes have no address of their own).
pub fn pod_ip(ctx: &Context, sandbox_ip: Option<&str>) -> String {
    sandbox_ip.unwrap_or(&ctx.host_ip).to_string()
}

fn sandbox_ip(observed: &Observed) -> Option<&str> {
    observed.sandbox.as_ref().and_then(|s| s.ip.as_deref())
}

/// Run the preStop hook of container `id`, if it has one; the grace left for the stop.
async fn pre_stop(ctx: &Context, pod: &Pod, observed: &Observed, id: &str, grace: Duration) -> Duration {
    let info = observed.containers.iter().find(|c| c.id == id && c.is_running());
    let Some(c) = info.and_then(|i| container(pod, &i.name)) else { return grace };
    let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else { return grace };
    if grace.is_zero() {
        return grace;
    }
    let action = action::of_hook(handler, c, &pod_ip(ctx, sandbox_ip(observed)));
    let started = Instant::now();
    let outcome = run::run(ctx.runtime.as_ref(), id, &action, grace).await;
    log_outcome(pod, &c.name, "PreStop", &outcome);
    grace.saturating_sub(started.elapsed()).max(MIN_GRACE)
}

/// Run the postStart hook of the attempt just started, if it has one; stop it on failure.
async fn post_start(ctx: &Context, pod: &Pod, name: &str, attempt: u32) -> Result<(), AgentError> {
    let Some(c) = container(pod, name) else { return Ok(()) };
    let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else { return Ok(()) };
    let containers = ctx.runtime.list_containers(Some(spec::uid(pod))).await?;
    let Some(info) = containers.into_iter().find(|i| i.name == name && i.attempt == attempt) else { return Ok(()) };
    let sandbox = ctx.runtime.list_sandboxes(Some(spec::uid(pod))).await?.into_iter().next();
    let action = action::of_hook(handler, c, &pod_ip(ctx, sandbox.as_ref().and_then(|s| s.ip.as_deref())));
    let outcome = run::run(ctx.runtime.as_ref(), &info.id, &action, spec::grace_period(pod)).await;
    log_outcome(pod, name, "PostStart", &outcome);
    if matches!(outcome, Outcome::Failure(_)) {
        ctx.runtime.stop_container(&info.id, spec::grace_period(pod)).await?;
    }
    Ok(())
}

fn log_outcome(pod: &Pod, container: &str, hook: &str, outcome: &Outcome) {
    let pod = spec::key(pod);
    match outcome {
        Outcome::Success => tracing::debug!(pod, container, hook, "lifecycle hook done"),
        Outcome::Failure(why) => tracing::warn!(pod, container, hook, error = why, "lifecycle hook failed"),
        Outcome::Unknown(why) => tracing::warn!(pod, container, hook, error = why, "lifecycle hook could not run"),
    }
}
