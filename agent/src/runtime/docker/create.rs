//! Pure mappings from the agent's specs to Docker's create requests: names, labels,
//! host config. No I/O, so every rule here is unit-tested.
//!
//! Rules (Kubernetes semantics, as dockershim applied them):
//! - `command` replaces the image's ENTRYPOINT and `args` its CMD; when `command` is set
//!   and `args` is not, Docker itself drops the image's CMD.
//! - Limits: `NanoCpus` = millicores × 10⁶, `Memory` = bytes; the CPU request becomes
//!   `CpuShares` = millicores × 1024 / 1000, at least 2 (the kernel's minimum).
//! - `runAsUser`/`runAsGroup` become `User: "uid[:gid]"`; a group without a user is
//!   refused (Docker's `User` cannot name a group alone).
//! - No restart policy: restarts are new containers made by the agent.
//! - App containers join the sandbox's network and IPC namespaces
//!   (`container:<sandbox id>`), so a pod's containers share localhost.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};

use super::{KIND_CONTAINER, KIND_LABEL, KIND_SANDBOX};
use crate::runtime::{labels, ContainerSpec, PortMapping, RuntimeError, SandboxSpec};

/// The sandbox's name, as dockershim named it: `k8s_POD_<pod>_<ns>_<uid>_<attempt>`.
pub(super) fn sandbox_name(spec: &SandboxSpec, attempt: u32) -> String {
    format!("k8s_POD_{}_{}_{}_{attempt}", spec.pod_name, spec.pod_namespace, spec.pod_uid)
}

/// A container's name: `k8s_<container>_<pod>_<ns>_<uid>_<attempt>`.
pub(super) fn container_name(spec: &ContainerSpec) -> String {
    let label = |key: &str| spec.labels.get(key).map(String::as_str).unwrap_or("unknown");
    let (pod, namespace) = (label(labels::POD_NAME), label(labels::POD_NAMESPACE));
    format!("k8s_{}_{pod}_{namespace}_{}_{}", spec.name, spec.pod_uid, spec.attempt)
}

/// The sandbox container: `image` running `command`, on `network`, publishing the pod's
/// host ports, with the pod's hostname.
pub(super) fn sandbox_body(
    spec: &SandboxSpec,
    attempt: u32,
    image: &str,
    command: &[String],
    network: &str,
) -> ContainerCreateBody {
    let mut labels = with_kind(&spec.labels, KIND_SANDBOX);
    labels.insert(labels::POD_UID.to_string(), spec.pod_uid.clone());
    labels.insert(labels::ATTEMPT.to_string(), attempt.to_string());
    let (exposed, bindings) = ports(&spec.ports);
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(command.to_vec()),
        cmd: None,
        hostname: Some(spec.hostname.clone()).filter(|h| !h.is_empty()),
        labels: Some(labels),
        exposed_ports: Some(exposed).filter(|e| !e.is_empty()),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_string()),
            // App containers join its IPC namespace, which Docker allows only when shareable.
            ipc_mode: Some("shareable".to_string()),
            port_bindings: Some(bindings).filter(|b| !b.is_empty()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

/// An app container of the sandbox `sandbox_id`.
pub(super) fn container_body(sandbox_id: &str, spec: &ContainerSpec) -> Result<ContainerCreateBody, RuntimeError> {
    let mut labels = with_kind(&spec.labels, KIND_CONTAINER);
    labels.insert(labels::POD_UID.to_string(), spec.pod_uid.clone());
    labels.insert(labels::CONTAINER_NAME.to_string(), spec.name.clone());
    labels.insert(labels::ATTEMPT.to_string(), spec.attempt.to_string());
    let non_empty = |v: &Vec<String>| Some(v.clone()).filter(|v| !v.is_empty());
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: non_empty(&spec.command),
        cmd: non_empty(&spec.args),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.working_dir.clone(),
        user: user(spec)?,
        labels: Some(labels),
        tty: Some(spec.tty),
        open_stdin: Some(spec.stdin),
        attach_stdin: Some(false),
        host_config: Some(host_config(sandbox_id, spec)),
        ..ContainerCreateBody::default()
    })
}

fn host_config(sandbox_id: &str, spec: &ContainerSpec) -> HostConfig {
    let binds = spec.mounts.iter().map(|m| {
        let mode = if m.read_only { ":ro" } else { "" };
        format!("{}:{}{mode}", m.host_path.display(), m.container_path)
    });
    let r = &spec.resources;
    let millis = |m: u64| i64::try_from(m).unwrap_or(i64::MAX);
    HostConfig {
        network_mode: Some(format!("container:{sandbox_id}")),
        ipc_mode: Some(format!("container:{sandbox_id}")),
        binds: Some(binds.collect()),
        nano_cpus: r.cpu_millis.map(|m| millis(m).saturating_mul(1_000_000)),
        memory: r.memory_bytes.map(millis),
        cpu_shares: r.cpu_request_millis.map(|m| (millis(m).saturating_mul(1024) / 1000).max(2)),
        readonly_rootfs: Some(spec.security.read_only_root_filesystem),
        privileged: Some(spec.security.privileged),
        ..HostConfig::default()
    }
}

fn user(spec: &ContainerSpec) -> Result<Option<String>, RuntimeError> {
    match (spec.security.run_as_user, spec.security.run_as_group) {
        (None, None) => Ok(None),
        (Some(uid), None) => Ok(Some(uid.to_string())),
        (Some(uid), Some(gid)) => Ok(Some(format!("{uid}:{gid}"))),
        (None, Some(_)) => Err(RuntimeError::Failed(format!(
            "container {}: runAsGroup needs runAsUser with the docker runtime",
            spec.name
        ))),
    }
}

fn with_kind(labels: &BTreeMap<String, String>, kind: &str) -> HashMap<String, String> {
    let mut all: HashMap<String, String> = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    all.insert(KIND_LABEL.to_string(), kind.to_string());
    all
}

type ExposedPorts = HashMap<String, HashMap<(), ()>>;
type PortBindings = HashMap<String, Option<Vec<PortBinding>>>;

/// `ExposedPorts` and `PortBindings` for the pod's host ports (`8080/tcp` keys).
fn ports(ports: &[PortMapping]) -> (ExposedPorts, PortBindings) {
    let mut exposed = HashMap::new();
    let mut bindings: PortBindings = HashMap::new();
    for p in ports {
        let key = format!("{}/{}", p.container_port, p.protocol.to_ascii_lowercase());
        exposed.insert(key.clone(), HashMap::new());
        let binding = PortBinding { host_ip: p.host_ip.clone(), host_port: Some(p.host_port.to_string()) };
        bindings.entry(key).or_default().get_or_insert_with(Vec::new).push(binding);
    }
    (exposed, bindings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Mount, Resources, Security};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            pod_uid: "uid-1".into(),
            name: "web".into(),
            attempt: 2,
            image: "flotilla/busybox:latest".into(),
            labels: BTreeMap::from([
                (labels::POD_NAME.into(), "p".into()),
                (labels::POD_NAMESPACE.into(), "ns".into()),
                ("extra".into(), "x".into()),
            ]),
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn names_follow_dockershim() {
        assert_eq!(container_name(&spec()), "k8s_web_p_ns_uid-1_2");
        let sandbox = SandboxSpec {
            pod_uid: "u".into(),
            pod_namespace: "ns".into(),
            pod_name: "p".into(),
            ..SandboxSpec::default()
        };
        assert_eq!(sandbox_name(&sandbox, 0), "k8s_POD_p_ns_u_0");
    }

    #[test]
    fn command_and_args_replace_entrypoint_and_cmd_only_when_set() {
        let mut s = spec();
        let body = container_body("sb", &s).unwrap();
        assert_eq!((body.entrypoint, body.cmd), (None, None), "the image's own ENTRYPOINT and CMD");
        s.args = vec!["-x".into()];
        let body = container_body("sb", &s).unwrap();
        assert_eq!((body.entrypoint, body.cmd), (None, Some(vec!["-x".to_string()])));
        s.command = vec!["sh".into(), "-c".into()];
        let body = container_body("sb", &s).unwrap();
        assert_eq!(body.entrypoint, Some(vec!["sh".to_string(), "-c".to_string()]));
        assert_eq!(body.cmd, Some(vec!["-x".to_string()]));
    }

    #[test]
    fn labels_carry_identity_and_kind() {
        let body = container_body("sb", &spec()).unwrap();
        let labels = body.labels.unwrap();
        assert_eq!(labels[labels::POD_UID], "uid-1");
        assert_eq!(labels[labels::CONTAINER_NAME], "web");
        assert_eq!(labels[labels::ATTEMPT], "2");
        assert_eq!(labels[KIND_LABEL], KIND_CONTAINER);
        assert_eq!(labels["extra"], "x");
    }

    #[test]
    fn resources_security_mounts_and_namespaces_reach_the_host_config() {
        let mut s = spec();
        s.resources = Resources { cpu_millis: Some(500), memory_bytes: Some(64 << 20), cpu_request_millis: Some(1) };
        s.security = Security {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            read_only_root_filesystem: true,
            privileged: false,
        };
        s.mounts = vec![
            Mount { host_path: "/h/a".into(), container_path: "/a".into(), read_only: true },
            Mount { host_path: "/h/b".into(), container_path: "/b".into(), read_only: false },
        ];
        s.env = vec![("A".into(), "1".into())];
        let body = container_body("sb1", &s).unwrap();
        assert_eq!(body.user.as_deref(), Some("1000:3000"));
        assert_eq!(body.env, Some(vec!["A=1".to_string()]));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.nano_cpus, Some(500_000_000));
        assert_eq!(hc.memory, Some(64 << 20));
        assert_eq!(hc.cpu_shares, Some(2), "the kernel's minimum");
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.binds, Some(vec!["/h/a:/a:ro".to_string(), "/h/b:/b".to_string()]));
        assert_eq!(hc.network_mode.as_deref(), Some("container:sb1"));
        assert_eq!(hc.restart_policy, None, "the agent restarts, not docker");
    }

    #[test]
    fn a_group_without_a_user_is_refused() {
        let mut s = spec();
        s.security.run_as_group = Some(5);
        assert!(matches!(container_body("sb", &s), Err(RuntimeError::Failed(_))));
        s.security.run_as_user = Some(7);
        s.security.run_as_group = None;
        assert_eq!(container_body("sb", &s).unwrap().user.as_deref(), Some("7"));
    }

    #[test]
    fn the_sandbox_publishes_host_ports_on_its_network() {
        let sandbox = SandboxSpec {
            pod_uid: "u".into(),
            hostname: "web-0".into(),
            ports: vec![PortMapping { container_port: 80, host_port: 8080, protocol: "TCP".into(), host_ip: None }],
            ..SandboxSpec::default()
        };
        let body = sandbox_body(&sandbox, 1, "pause", &["sleep".into()], "flotilla");
        assert_eq!(body.hostname.as_deref(), Some("web-0"));
        assert!(body.exposed_ports.unwrap().contains_key("80/tcp"));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("flotilla"));
        let binding = &hc.port_bindings.unwrap()["80/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_port.as_deref(), Some("8080"));
        let labels = body.labels.unwrap();
        assert_eq!((labels[KIND_LABEL].as_str(), labels[labels::ATTEMPT].as_str()), (KIND_SANDBOX, "1"));
    }
}
