//! Conntrack entries of UDP flows that the rules no longer describe.
//!
//! NAT rules only see a connection's first packet; conntrack keeps every later packet on
//! the endpoint chosen then. For TCP that is what we want (a connection ends with its
//! endpoint). A UDP "connection" is just a 5-tuple that keeps being reused — a DNS client
//! or a game client sending from one port — so without cleanup:
//! - traffic keeps going to an endpoint that left the Service (a deleted or not-ready pod)
//!   until the entry idles out (30–120 s);
//! - traffic sent while the Service had no endpoint is tracked un-NATed (to the clusterIP
//!   itself) and keeps going nowhere after an endpoint appears.
//!
//! So after each apply the proxy deletes, as kube-proxy does:
//! - for every (UDP clusterIP:port or nodePort, endpoint) pair that is gone: the entries
//!   of that destination DNATed to that endpoint's address;
//! - for every UDP destination that gained its first endpoint: every entry of it.
//!
//! [`stale`] computes that (pure); [`delete`] runs `conntrack -D` (conntrack-tools) for
//! each. Without the `conntrack` tool the cleanup is skipped with a warning: the flows then
//! recover when their entries idle out.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use tokio::process::Command;

use crate::services::model::{Protocol, Snapshot};

/// Where UDP traffic of a Service port arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Destination {
    ClusterIp(Ipv4Addr, u16),
    /// Any local address, this port.
    NodePort(u16),
}

/// One `conntrack -D`: the UDP entries to `destination`, only those DNATed to `endpoint`
/// when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flush {
    pub destination: Destination,
    pub endpoint: Option<Ipv4Addr>,
}

impl Flush {
    fn args(&self) -> Vec<String> {
        let mut args = vec!["-D".to_string(), "-p".into(), "udp".into()];
        match self.destination {
            Destination::ClusterIp(ip, port) => {
                args.extend(["--orig-dst".into(), ip.to_string(), "--orig-port-dst".into(), port.to_string()])
            }
            Destination::NodePort(port) => args.extend(["--orig-port-dst".into(), port.to_string()]),
        }
        if let Some(ep) = self.endpoint {
            args.extend(["--dst-nat".into(), ep.to_string()]);
        }
        args
    }
}

/// The UDP destinations a snapshot serves, with their endpoints.
fn udp_destinations(snapshot: &Snapshot) -> BTreeMap<Destination, BTreeSet<SocketAddrV4>> {
    let mut out: BTreeMap<Destination, BTreeSet<SocketAddrV4>> = BTreeMap::new();
    for entry in snapshot.services.values() {
        let Some(vip) = entry.cluster_ip.filter(|_| !entry.headless) else { continue };
        for port in entry.ports.iter().filter(|p| p.protocol == Protocol::Udp) {
            let mut dests = vec![Destination::ClusterIp(vip, port.port)];
            dests.extend(port.node_port.map(Destination::NodePort));
            for d in dests {
                out.entry(d).or_default().extend(port.endpoints.iter().copied());
            }
        }
    }
    out
}

/// What to delete after going from the rules of `old` to those of `new`.
pub fn stale(old: &Snapshot, new: &Snapshot) -> Vec<Flush> {
    let (old, new) = (udp_destinations(old), udp_destinations(new));
    let none = BTreeSet::new();
    let mut flushes = BTreeSet::new();
    for (dest, before) in &old {
        let after = new.get(dest).unwrap_or(&none);
        for gone in before.difference(after) {
            // Still an endpoint on another port: its entries for this one go all the same.
            flushes.insert(Flush { destination: *dest, endpoint: Some(*gone.ip()) });
        }
    }
    for (dest, after) in &new {
        if !after.is_empty() && old.get(dest).is_none_or(BTreeSet::is_empty) {
            flushes.insert(Flush { destination: *dest, endpoint: None });
        }
    }
    flushes.into_iter().collect()
}

/// Run `conntrack -D` for each flush; "nothing matched" is success. Stops at the first
/// failure (e.g. no `conntrack` tool).
pub async fn delete(flushes: &[Flush]) -> io::Result<()> {
    for f in flushes {
        let out = Command::new("conntrack").args(f.args()).output().await?;
        // conntrack-tools exits 1 when no entry matched ("0 flow entries have been deleted").
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !stderr.contains("0 flow entries") {
            return Err(io::Error::other(format!("conntrack {}: {}", f.args().join(" "), stderr.trim())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::model::{ServiceEntry, ServicePort};

    const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 53);

    fn snapshot(udp_endpoints: &[&str], tcp_endpoints: &[&str]) -> Snapshot {
        let eps = |list: &[&str]| list.iter().map(|e| e.parse().unwrap()).collect();
        let port = |protocol, port, node_port, endpoints| ServicePort {
            name: String::new(),
            protocol,
            port,
            node_port,
            endpoints,
        };
        let entry = ServiceEntry {
            namespace: "default".into(),
            name: "dns".into(),
            cluster_ip: Some(VIP),
            headless: false,
            affinity_timeout: None,
            ports: vec![
                port(Protocol::Udp, 53, Some(30053), eps(udp_endpoints)),
                port(Protocol::Tcp, 80, None, eps(tcp_endpoints)),
            ],
            addresses: Vec::new(),
        };
        Snapshot { services: [(("default".into(), "dns".into()), entry)].into(), ..Snapshot::default() }
    }

    fn flush(destination: Destination, endpoint: Option<&str>) -> Flush {
        Flush { destination, endpoint: endpoint.map(|e| e.parse().unwrap()) }
    }

    #[test]
    fn a_removed_udp_endpoint_loses_its_entries_on_the_cluster_ip_and_the_node_port() {
        let old = snapshot(&["10.244.0.2:53", "10.244.0.3:53"], &[]);
        let new = snapshot(&["10.244.0.3:53"], &[]);
        assert_eq!(
            stale(&old, &new),
            vec![
                flush(Destination::ClusterIp(VIP, 53), Some("10.244.0.2")),
                flush(Destination::NodePort(30053), Some("10.244.0.2")),
            ]
        );
        assert!(stale(&new, &new).is_empty(), "no change, nothing to delete");
    }

    #[test]
    fn the_first_endpoint_clears_the_un_nated_entries_and_tcp_is_left_alone() {
        let old = snapshot(&[], &["10.244.0.9:80"]);
        let new = snapshot(&["10.244.0.2:53"], &[]);
        assert_eq!(
            stale(&old, &new),
            vec![flush(Destination::ClusterIp(VIP, 53), None), flush(Destination::NodePort(30053), None)]
        );
    }

    #[test]
    fn a_deleted_service_loses_every_endpoints_entries() {
        let old = snapshot(&["10.244.0.2:53"], &[]);
        assert_eq!(
            stale(&old, &Snapshot::default()),
            vec![
                flush(Destination::ClusterIp(VIP, 53), Some("10.244.0.2")),
                flush(Destination::NodePort(30053), Some("10.244.0.2")),
            ]
        );
    }

    #[test]
    fn flushes_spell_conntrack_arguments() {
        let f = flush(Destination::ClusterIp(VIP, 53), Some("10.244.0.2"));
        assert_eq!(f.args().join(" "), "-D -p udp --orig-dst 10.96.0.53 --orig-port-dst 53 --dst-nat 10.244.0.2");
        assert_eq!(flush(Destination::NodePort(30053), None).args().join(" "), "-D -p udp --orig-port-dst 30053");
    }
}
