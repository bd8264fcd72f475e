//! Host ports: which (IP, protocol, port) triples a node already hands out.
//!
//! Upstream's `HostPortInfo` rules: a missing protocol is TCP, a missing or unspecified
//! host IP (`""`, `0.0.0.0`, `::`) binds every address. Two bindings conflict when protocol
//! and port are equal and either binds every address or both bind the same one. Only
//! container ports with a `hostPort` count.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::PodSpec;

const ALL_ADDRESSES: &str = "0.0.0.0";

/// One host port a pod binds, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

/// The host ports of a pod's containers.
pub fn pod_host_ports(spec: &PodSpec) -> Vec<HostPort> {
    let ports = spec.containers.iter().flat_map(|c| c.ports.iter().flatten());
    ports
        .filter_map(|p| {
            let port = p.host_port.filter(|port| *port > 0)?;
            let ip = match p.host_ip.as_deref() {
                None | Some("") | Some("::") | Some(ALL_ADDRESSES) => ALL_ADDRESSES.to_string(),
                Some(ip) => ip.to_string(),
            };
            let protocol = p.protocol.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "TCP".to_string());
            Some(HostPort { ip, protocol, port })
        })
        .collect()
}

/// The host ports in use on one node, counted so that removing one of two pods that bind
/// the same address (possible with different IPs) keeps the other's binding.
#[derive(Debug, Clone, Default)]
pub struct PortSet {
    /// port → (protocol, host IP, number of bindings); a port rarely has more than one entry.
    used: HashMap<i32, Vec<(String, String, u32)>>,
}

impl PortSet {
    pub fn add(&mut self, port: &HostPort) {
        let entries = self.used.entry(port.port).or_default();
        match entries.iter_mut().find(|(proto, ip, _)| *proto == port.protocol && *ip == port.ip) {
            Some((_, _, count)) => *count += 1,
            None => entries.push((port.protocol.clone(), port.ip.clone(), 1)),
        }
    }

    pub fn remove(&mut self, port: &HostPort) {
        let Some(entries) = self.used.get_mut(&port.port) else { return };
        if let Some(at) = entries.iter().position(|(proto, ip, _)| *proto == port.protocol && *ip == port.ip) {
            entries[at].2 -= 1;
            if entries[at].2 == 0 {
                entries.swap_remove(at);
            }
        }
        if entries.is_empty() {
            self.used.remove(&port.port);
        }
    }

    pub fn conflicts(&self, port: &HostPort) -> bool {
        let Some(entries) = self.used.get(&port.port) else { return false };
        entries.iter().any(|(proto, ip, _)| {
            *proto == port.protocol && (port.ip == ALL_ADDRESSES || ip == ALL_ADDRESSES || *ip == port.ip)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, ContainerPort};

    use super::*;

    fn hp(ip: &str, protocol: &str, port: i32) -> HostPort {
        HostPort { ip: ip.into(), protocol: protocol.into(), port }
    }

    #[test]
    fn pod_ports_are_normalised_and_container_only_ports_skipped() {
        let port = |host_port: Option<i32>, ip: Option<&str>, proto: Option<&str>| ContainerPort {
            container_port: 80,
            host_port,
            host_ip: ip.map(str::to_string),
            protocol: proto.map(str::to_string),
            ..Default::default()
        };
        let spec = PodSpec {
            containers: vec![Container {
                ports: Some(vec![
                    port(Some(8080), None, None),
                    port(None, None, None),
                    port(Some(0), None, None),
                    port(Some(53), Some("10.0.0.1"), Some("UDP")),
                    port(Some(9000), Some("::"), Some("")),
                ]),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            pod_host_ports(&spec),
            [hp("0.0.0.0", "TCP", 8080), hp("10.0.0.1", "UDP", 53), hp("0.0.0.0", "TCP", 9000)]
        );
    }

    #[test]
    fn conflict_rules() {
        let mut set = PortSet::default();
        set.add(&hp("10.0.0.1", "TCP", 80));
        assert!(set.conflicts(&hp("10.0.0.1", "TCP", 80)), "same address");
        assert!(set.conflicts(&hp("0.0.0.0", "TCP", 80)), "wildcard wants every address");
        assert!(!set.conflicts(&hp("10.0.0.2", "TCP", 80)), "other address");
        assert!(!set.conflicts(&hp("10.0.0.1", "UDP", 80)), "other protocol");
        assert!(!set.conflicts(&hp("10.0.0.1", "TCP", 81)), "other port");
        set.add(&hp("0.0.0.0", "UDP", 53));
        assert!(set.conflicts(&hp("10.9.9.9", "UDP", 53)), "wildcard already bound");
    }

    #[test]
    fn removal_is_counted() {
        let mut set = PortSet::default();
        let port = hp("0.0.0.0", "TCP", 80);
        set.add(&port);
        set.add(&port);
        set.remove(&port);
        assert!(set.conflicts(&port), "one binding remains");
        set.remove(&port);
        assert!(set.is_empty() && !set.conflicts(&port));
        set.remove(&port); // removing what is not there is a no-op
        assert!(set.is_empty());
        let (one, two) = (hp("10.0.0.1", "TCP", 80), hp("10.0.0.2", "TCP", 80));
        set.add(&one);
        set.add(&two);
        set.remove(&one);
        assert!(!set.conflicts(&one) && set.conflicts(&two), "only the removed address is freed");
    }
}
