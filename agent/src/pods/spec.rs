//! What the agent reads from a Pod: restart policy, containers, grace period, and the
//! runtime specs its sandbox and containers are created from.
//!
//! Invariants:
//! - Every sandbox and container spec built here carries the pod's identity labels (see
//!   [`crate::runtime::labels`]), which is what adoption after a restart relies on.
//! - A container spec is built only from a fully resolved configuration ([`Configured`]):
//!   env, mounts, limits and security are worked out (and may fail) before, in
//!   [`super::env`], [`super::volumes`] and [`limits`].
//! - The sandbox publishes every `hostPort` of the pod's app containers, once per
//!   (hostIP, hostPort, protocol).

pub mod limits;
pub mod quantity;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::env::Resolved;
use crate::runtime::{labels, ContainerSpec, Mount, PortMapping, Resources, SandboxSpec, Security};

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
        ports: host_ports(pod),
    }
}

/// The `hostPort`s of `pod`'s app containers (upstream publishes no init container ports).
fn host_ports(pod: &Pod) -> Vec<PortMapping> {
    let mut ports: Vec<PortMapping> = Vec::new();
    let all = containers(pod).iter().flat_map(|c| c.ports.iter().flatten());
    for p in all.filter(|p| p.host_port.is_some_and(|h| h > 0)) {
        let (Ok(host_port), Ok(container_port)) =
            (u16::try_from(p.host_port.unwrap_or_default()), u16::try_from(p.container_port))
        else {
            continue; // out of range: API validation refuses these
        };
        let mapping = PortMapping {
            container_port,
            host_port,
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            host_ip: p.host_ip.clone().filter(|ip| !ip.is_empty()),
        };
        let same = |m: &PortMapping| {
            (m.host_port, &m.protocol, &m.host_ip) == (mapping.host_port, &mapping.protocol, &mapping.host_ip)
        };
        if !ports.iter().any(same) {
            ports.push(mapping);
        }
    }
    ports
}

/// A container's configuration, resolved (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configured {
    pub resolved: Resolved,
    pub mounts: Vec<Mount>,
    pub resources: Resources,
    pub security: Security,
}

/// The spec of attempt `attempt` of `container`, configured as `configured` says.
pub fn container_spec(pod: &Pod, container: &Container, attempt: u32, configured: Configured) -> ContainerSpec {
    let mut labels = pod_labels(pod);
    labels.insert(labels::CONTAINER_NAME.to_string(), container.name.clone());
    labels.insert(labels::ATTEMPT.to_string(), attempt.to_string());
    let Configured { resolved, mounts, resources, security } = configured;
    ContainerSpec {
        pod_uid: uid(pod).to_string(),
        name: container.name.clone(),
        attempt,
        image: container.image.clone().unwrap_or_default(),
        command: resolved.command,
        args: resolved.args,
        env: resolved.env,
        working_dir: container.working_dir.clone().filter(|d| !d.is_empty()),
        labels,
        mounts,
        resources,
        security,
        tty: container.tty.unwrap_or(false),
        stdin: container.stdin.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, PodSpec};

    use super::*;

    fn port(container_port: i32, host_port: Option<i32>, protocol: Option<&str>) -> ContainerPort {
        ContainerPort { container_port, host_port, protocol: protocol.map(str::to_string), ..ContainerPort::default() }
    }

    #[test]
    fn host_ports_of_app_containers_are_published_once() {
        let app = Container {
            name: "app".into(),
            ports: Some(vec![port(80, Some(8080), None), port(53, Some(5353), Some("UDP")), port(9090, None, None)]),
            ..Container::default()
        };
        let twin = Container {
            name: "twin".into(),
            ports: Some(vec![port(81, Some(8080), Some("TCP"))]),
            ..Container::default()
        };
        let init =
            Container { name: "init".into(), ports: Some(vec![port(1, Some(1111), None)]), ..Container::default() };
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![app, twin],
                init_containers: Some(vec![init]),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let ports = sandbox_spec(&pod).ports;
        let seen: Vec<(u16, u16, &str)> =
            ports.iter().map(|p| (p.container_port, p.host_port, p.protocol.as_str())).collect();
        assert_eq!(seen, [(80, 8080, "TCP"), (53, 5353, "UDP")]);
    }

    #[test]
    fn the_container_spec_carries_the_resolved_configuration_and_terminal_flags() {
        let c = Container { name: "app".into(), tty: Some(true), stdin: Some(true), ..Container::default() };
        let configured = Configured {
            resolved: Resolved { env: vec![("A".into(), "1".into())], command: vec!["sh".into()], args: vec![] },
            mounts: vec![Mount { host_path: "/h".into(), container_path: "/c".into(), read_only: true }],
            resources: Resources { memory_bytes: Some(1), ..Resources::default() },
            security: Security { run_as_user: Some(5), ..Security::default() },
        };
        let spec = container_spec(&Pod::default(), &c, 3, configured.clone());
        assert_eq!(
            (spec.env, spec.command, spec.mounts),
            (configured.resolved.env, configured.resolved.command, configured.mounts)
        );
        assert_eq!((spec.resources, spec.security), (configured.resources, configured.security));
        assert!(spec.tty && spec.stdin);
        assert_eq!(spec.labels[labels::ATTEMPT], "3");
    }
}
