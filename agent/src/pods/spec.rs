//! What the agent reads from a Pod: restart policy, containers, grace period, and the
//! runtime specs its sandbox and containers are created from.
//!
//! Invariant: every sandbox and container spec built here carries the pod's identity
//! labels (see [`crate::runtime::labels`]), which is what adoption after a restart relies on.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::runtime::{labels, ContainerSpec, SandboxSpec};

/// Grace period of a pod that sets none (upstream's default).
const DEFAULT_GRACE_SECONDS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn of(pod: &Pod) -> Self {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

pub fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// `namespace/name`, for logs.
pub fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

pub fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().and_then(|s| s.init_containers.as_deref()).unwrap_or_default()
}

pub fn containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default()
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// True once the API shows the pod Succeeded or Failed: a terminal phase is final.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// How long containers get between the stop request and the kill: the deletion's grace
/// period, else the pod's `terminationGracePeriodSeconds`.
pub fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    Duration::from_secs(seconds.max(0) as u64)
}

fn pod_labels(pod: &Pod) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::POD_UID.to_string(), uid(pod).to_string()),
        (labels::POD_NAME.to_string(), pod.metadata.name.clone().unwrap_or_default()),
        (labels::POD_NAMESPACE.to_string(), pod.metadata.namespace.clone().unwrap_or_default()),
    ])
}

pub fn sandbox_spec(pod: &Pod) -> SandboxSpec {
    let spec = pod.spec.as_ref();
    let name = pod.metadata.name.clone().unwrap_or_default();
    SandboxSpec {
        pod_uid: uid(pod).to_string(),
        pod_namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        hostname: spec.and_then(|s| s.hostname.clone()).unwrap_or_else(|| name.clone()),
        pod_name: name,
        labels: pod_labels(pod),
        ..SandboxSpec::default()
    }
}

/// The spec of attempt `attempt` of `container`. Only literal env values are passed on
/// (valueFrom and envFrom need the volume and config parts of the agent).
pub fn container_spec(pod: &Pod, container: &Container, attempt: u32) -> ContainerSpec {
    let mut labels = pod_labels(pod);
    labels.insert(labels::CONTAINER_NAME.to_string(), container.name.clone());
    labels.insert(labels::ATTEMPT.to_string(), attempt.to_string());
    let env = container.env.iter().flatten().filter_map(|e| Some((e.name.clone(), e.value.clone()?))).collect();
    ContainerSpec {
        pod_uid: uid(pod).to_string(),
        name: container.name.clone(),
        attempt,
        image: container.image.clone().unwrap_or_default(),
        command: container.command.clone().unwrap_or_default(),
        args: container.args.clone().unwrap_or_default(),
        env,
        working_dir: container.working_dir.clone(),
        labels,
        ..ContainerSpec::default()
    }
}
