use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::node::host::{Host, SimulatedHost};

fn config() -> NodeConfig {
    NodeConfig {
        name: "n1".into(),
        labels: BTreeMap::from([("zone".into(), "a".into())]),
        taints: crate::config::parse_taints("gpu=true:NoSchedule").unwrap(),
        max_pods: 42,
        address: "192.0.2.7".into(),
        host: Host::Simulated(SimulatedHost::default()),
    }
}

fn facts(sample: Sample, now: Timestamp) -> Facts<'static> {
    static IDENTITY: std::sync::OnceLock<Identity> = std::sync::OnceLock::new();
    let identity = IDENTITY.get_or_init(Identity::default);
    Facts { sample, identity, runtime_version: "fake://0.1.0", now, daemon_port: 10250 }
}

fn condition<'a>(s: &'a NodeStatus, t: &str) -> &'a NodeCondition {
    s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == t).unwrap()
}

#[test]
fn the_node_has_labels_taints_capacity_addresses_and_info() {
    let c = config();
    let n = node(&c, &facts(c.host.sample(), Timestamp::now()));
    let labels = n.metadata.labels.unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], "n1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["zone"], "a");
    assert_eq!(n.spec.unwrap().taints.unwrap()[0].effect, "NoSchedule");
    let s = n.status.unwrap();
    let cap = s.capacity.as_ref().unwrap();
    assert_eq!(cap["cpu"].0, "4000m");
    assert_eq!(cap["memory"].0, format!("{}Ki", 16 << 20));
    assert_eq!(cap["pods"].0, "42");
    assert_eq!(s.allocatable, s.capacity);
    assert_eq!(s.addresses.as_ref().unwrap()[0].address, "192.0.2.7");
    let info = s.node_info.as_ref().unwrap();
    assert_eq!(
        (info.kubelet_version.as_str(), info.container_runtime_version.as_str()),
        (KUBELET_VERSION, "fake://0.1.0")
    );
    assert_eq!(condition(&s, "Ready").status, "True");
    let endpoint = s.daemon_endpoints.as_ref().and_then(|d| d.kubelet_endpoint.as_ref()).map(|e| e.port);
    assert_eq!(endpoint, Some(10250));
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(condition(&s, t).status, "False");
    }
}

#[test]
fn heartbeats_alone_are_no_change_and_transitions_keep_their_time() {
    let c = config();
    let t0 = Timestamp::now();
    let first = status(&c, &facts(c.host.sample(), t0), None);
    let later = t0.checked_add(Duration::from_secs(60)).unwrap();
    let second = status(&c, &facts(c.host.sample(), later), Some(&first));
    assert!(!differs(&first, &second), "only heartbeat times moved");
    assert_ne!(condition(&first, "Ready").last_heartbeat_time, condition(&second, "Ready").last_heartbeat_time);

    let mut low = c.host.sample();
    low.memory_available_bytes = 50 << 20;
    low.storage_available_bytes = low.storage_bytes / 20;
    let pressed = status(&c, &facts(low, later), Some(&second));
    assert!(differs(&second, &pressed));
    assert_eq!(condition(&pressed, "MemoryPressure").status, "True");
    assert_eq!(condition(&pressed, "DiskPressure").status, "True");
    assert_eq!(condition(&pressed, "Ready").last_transition_time, condition(&first, "Ready").last_transition_time);
    assert_ne!(
        condition(&pressed, "MemoryPressure").last_transition_time,
        condition(&first, "MemoryPressure").last_transition_time
    );
}
