//! The Node object and status the agent reports, computed purely from its configuration,
//! a host [`Sample`] and the status it builds on.
//!
//! Invariants:
//! - Conditions Ready, MemoryPressure, DiskPressure and PIDPressure are always present;
//!   a condition's `lastTransitionTime` moves only when its status changes, its
//!   `lastHeartbeatTime` is the time of this computation.
//! - [`differs`] ignores heartbeat times, so an unchanged node is not rewritten on every
//!   tick (see [`crate::node`] for when it is written anyway).
//! - Pressure thresholds are upstream's default hard eviction thresholds:
//!   `memory.available < 100Mi`, `nodefs.available < 10%`; there is no default PID
//!   threshold, so PIDPressure stays False.
//! - `daemonEndpoints.kubeletEndpoint.Port` is always present: the agent endpoint's port,
//!   or 0 when the agent serves none.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::host::{Identity, Sample};
use crate::config::NodeConfig;

/// The version the agent reports as `kubeletVersion`.
pub const KUBELET_VERSION: &str = "v1.32.0-flotilla";
/// Free memory below which the node reports MemoryPressure (upstream: 100Mi).
const MEMORY_PRESSURE_BYTES: u64 = 100 << 20;
/// Free share of the data file system below which the node reports DiskPressure, in
/// percent (upstream: 10%).
const DISK_PRESSURE_PERCENT: u64 = 10;

/// What a node status is computed from besides its config.
pub struct Facts<'a> {
    pub sample: Sample,
    pub identity: &'a Identity,
    /// e.g. `fake://0.1.0`.
    pub runtime_version: &'a str,
    pub now: Timestamp,
    /// The port of the agent's endpoint ([`crate::server`]) as `daemonEndpoints.
    /// kubeletEndpoint.Port`; 0 when it serves none (API servers then refuse logs/exec).
    pub daemon_port: u16,
}

pub fn os() -> &'static str {
    std::env::consts::OS
}

/// Kubernetes' name for this machine's architecture.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The node's labels: the well-known ones, then the configured ones.
pub fn labels(config: &NodeConfig) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), config.name.clone()),
        ("kubernetes.io/os".to_string(), os().to_string()),
        ("kubernetes.io/arch".to_string(), arch().to_string()),
    ]);
    labels.extend(config.labels.clone());
    labels
}

/// The Node to register.
pub fn node(config: &NodeConfig, facts: &Facts) -> Node {
    Node {
        metadata: ObjectMeta { name: Some(config.name.clone()), labels: Some(labels(config)), ..ObjectMeta::default() },
        spec: Some(NodeSpec {
            taints: (!config.taints.is_empty()).then(|| config.taints.clone()),
            ..NodeSpec::default()
        }),
        status: Some(status(config, facts, None)),
    }
}

fn time(ts: Timestamp) -> Time {
    Time(Timestamp::from_second(ts.as_second()).expect("whole seconds of a valid timestamp are valid"))
}

fn quantities(config: &NodeConfig, s: &Sample) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(format!("{}m", s.cpu_millis))),
        ("memory".to_string(), Quantity(format!("{}Ki", s.memory_bytes / 1024))),
        ("ephemeral-storage".to_string(), Quantity(format!("{}Ki", s.storage_bytes / 1024))),
        ("pods".to_string(), Quantity(config.max_pods.to_string())),
    ])
}

/// The status to report, building on `base` (the status last written or read).
pub fn status(config: &NodeConfig, facts: &Facts, base: Option<&NodeStatus>) -> NodeStatus {
    let s = &facts.sample;
    let memory_pressure = s.memory_bytes > 0 && s.memory_available_bytes < MEMORY_PRESSURE_BYTES;
    let disk_pressure =
        s.storage_bytes > 0 && s.storage_available_bytes * 100 < s.storage_bytes * DISK_PRESSURE_PERCENT;
    let conditions = [
        ("Ready", true, "KubeletReady", "flotilla agent is posting ready status"),
        if memory_pressure {
            ("MemoryPressure", true, "KubeletHasInsufficientMemory", "node has insufficient memory available")
        } else {
            ("MemoryPressure", false, "KubeletHasSufficientMemory", "node has sufficient memory available")
        },
        if disk_pressure {
            ("DiskPressure", true, "KubeletHasDiskPressure", "node has disk pressure")
        } else {
            ("DiskPressure", false, "KubeletHasNoDiskPressure", "node has no disk pressure")
        },
        ("PIDPressure", false, "KubeletHasSufficientPID", "node has sufficient PID available"),
    ];
    let old = |t: &str| base.and_then(|b| b.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == t));
    let conditions = conditions
        .into_iter()
        .map(|(type_, on, reason, message)| {
            let status = if on { "True" } else { "False" };
            let since = old(type_).filter(|o| o.status == status).and_then(|o| o.last_transition_time.clone());
            NodeCondition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
                last_heartbeat_time: Some(time(facts.now)),
                last_transition_time: Some(since.unwrap_or_else(|| time(facts.now))),
            }
        })
        .collect();
    let id = facts.identity;
    let mut status = base.cloned().unwrap_or_default();
    status.capacity = Some(quantities(config, s));
    status.allocatable = Some(quantities(config, s));
    status.conditions = Some(conditions);
    status.addresses = Some(vec![
        NodeAddress { type_: "InternalIP".into(), address: config.address.clone() },
        NodeAddress { type_: "Hostname".into(), address: config.name.clone() },
    ]);
    status.daemon_endpoints =
        Some(NodeDaemonEndpoints { kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(facts.daemon_port) }) });
    status.node_info = Some(NodeSystemInfo {
        architecture: arch().into(),
        operating_system: os().into(),
        boot_id: id.boot_id.clone(),
        machine_id: id.machine_id.clone(),
        system_uuid: id.machine_id.clone(),
        kernel_version: id.kernel_version.clone(),
        os_image: id.os_image.clone(),
        container_runtime_version: facts.runtime_version.to_string(),
        kubelet_version: KUBELET_VERSION.into(),
        kube_proxy_version: String::new(),
    });
    status
}

/// Whether `a` and `b` differ in anything but heartbeat times.
pub fn differs(a: &NodeStatus, b: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        s
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests;
