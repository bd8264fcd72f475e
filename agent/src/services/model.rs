//! What the service proxy and the cluster DNS need to know about Services, computed from
//! the Service and Endpoints objects the agent watches.
//!
//! A [`Snapshot`] is a pure function of those objects, in a canonical order (services by
//! namespace and name, ports as the Service lists them, endpoints sorted), so two agents
//! with the same objects program the same rules and answer the same records, and an
//! unchanged cluster yields an equal snapshot (nothing to re-apply).
//!
//! Rules taken from upstream:
//! - a Service port's endpoints are the ready addresses of every Endpoints subset that has
//!   a port of the same name and protocol (an unnamed Service port matches the subset's
//!   unnamed port); not-ready addresses are not endpoints;
//! - `clusterIP: None` is a headless Service: no virtual IP, DNS answers with the
//!   endpoints' addresses; a Service of type ExternalName is left out;
//! - an address's `hostname` (set by the endpoints controller for pods whose subdomain
//!   names the Service) gives it a DNS name `<hostname>.<svc>.<ns>.svc.<domain>`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Service};

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// Kubernetes' spelling (`TCP` default; `SCTP` and unknown values are not supported).
    pub fn parse(value: Option<&str>) -> Option<Protocol> {
        match value.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// Lower case, as nftables and DNS SRV names (`_tcp`) spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One port of a Service and where its traffic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Empty for the single unnamed port.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    /// Set for NodePort (and LoadBalancer) Services.
    pub node_port: Option<u16>,
    /// Ready endpoints, sorted.
    pub endpoints: Vec<SocketAddrV4>,
}

/// An endpoint address of a Service (ready ones only).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Address {
    pub ip: Ipv4Addr,
    /// The pod's hostname when its subdomain names the Service (StatefulSet pods).
    pub hostname: Option<String>,
}

/// One Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub namespace: String,
    pub name: String,
    /// The virtual IP; `None` for a headless Service or one not yet allocated.
    pub cluster_ip: Option<Ipv4Addr>,
    /// `clusterIP: None`.
    pub headless: bool,
    /// `sessionAffinity: ClientIP`: its timeout in seconds (upstream default 10800).
    pub affinity_timeout: Option<u32>,
    pub ports: Vec<ServicePort>,
    /// Ready addresses of the Endpoints, sorted, without duplicates.
    pub addresses: Vec<Address>,
}

/// Every Service, by (namespace, name), and the addresses of this node's pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub services: BTreeMap<(String, String), ServiceEntry>,
    /// The pod IPs of the pods bound to this node (their DNS queries go to this node's
    /// DNS server).
    pub local_pods: BTreeSet<Ipv4Addr>,
}

/// Upstream's default ClientIP affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

impl Snapshot {
    /// The snapshot of `services` with the `endpoints` of the same names.
    pub fn build<'a>(
        services: impl IntoIterator<Item = &'a Service>,
        endpoints: impl IntoIterator<Item = &'a Endpoints>,
    ) -> Snapshot {
        let by_key: BTreeMap<(String, String), &Endpoints> =
            endpoints.into_iter().filter_map(|e| Some((key(&e.metadata)?, e))).collect();
        let services = services
            .into_iter()
            .filter_map(|svc| {
                let k = key(&svc.metadata)?;
                let entry = entry(svc, by_key.get(&k).copied())?;
                Some((k, entry))
            })
            .collect();
        Snapshot { services, local_pods: BTreeSet::new() }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&ServiceEntry> {
        self.services.get(&(namespace.to_string(), name.to_string()))
    }
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<(String, String)> {
    Some((meta.namespace.clone().unwrap_or_else(|| "default".into()), meta.name.clone()?))
}

fn entry(svc: &Service, endpoints: Option<&Endpoints>) -> Option<ServiceEntry> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let cluster_ip = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok());
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let config = spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref());
        config.and_then(|c| c.timeout_seconds).and_then(|t| u32::try_from(t).ok()).unwrap_or(DEFAULT_AFFINITY_SECONDS)
    });
    let subsets: &[EndpointSubset] = endpoints.and_then(|e| e.subsets.as_deref()).unwrap_or_default();
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = Protocol::parse(p.protocol.as_deref())?;
            let name = p.name.clone().unwrap_or_default();
            Some(ServicePort {
                endpoints: port_endpoints(subsets, &name, protocol),
                name,
                protocol,
                port: u16::try_from(p.port).ok()?,
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0),
            })
        })
        .collect();
    let mut addresses: Vec<Address> = subsets
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| Some(Address { ip: a.ip.parse().ok()?, hostname: a.hostname.clone() }))
        .collect();
    addresses.sort();
    addresses.dedup();
    Some(ServiceEntry {
        namespace: key(&svc.metadata)?.0,
        name: svc.metadata.name.clone()?,
        cluster_ip,
        headless,
        affinity_timeout,
        ports,
        addresses,
    })
}

/// The ready endpoints of the Service port named `name` with `protocol`.
fn port_endpoints(subsets: &[EndpointSubset], name: &str, protocol: Protocol) -> Vec<SocketAddrV4> {
    let mut out: Vec<SocketAddrV4> = subsets
        .iter()
        .flat_map(|subset| {
            let port = subset.ports.iter().flatten().find(|p| {
                p.name.as_deref().unwrap_or_default() == name
                    && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
            });
            let port = port.and_then(|p| u16::try_from(p.port).ok());
            let ips = subset.addresses.iter().flatten().filter_map(|a| a.ip.parse::<Ipv4Addr>().ok());
            ips.filter_map(move |ip| Some(SocketAddrV4::new(ip, port?)))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    fn endpoints(value: serde_json::Value) -> Endpoints {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn ports_take_the_ready_addresses_of_subsets_with_the_same_port_name() {
        let svc = service(json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"clusterIP": "10.96.0.20", "type": "NodePort", "ports": [
                {"name": "http", "port": 80, "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "sctp", "port": 9, "protocol": "SCTP"}
            ]}
        }));
        let eps = endpoints(json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "subsets": [
                {"addresses": [{"ip": "10.244.0.3"}, {"ip": "10.244.0.2", "hostname": "web-0"}],
                 "notReadyAddresses": [{"ip": "10.244.0.9"}],
                 "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]},
                {"addresses": [{"ip": "10.244.1.7"}], "ports": [{"name": "http", "port": 8081}]}
            ]
        }));
        let snap = Snapshot::build([&svc], [&eps]);
        let web = snap.get("prod", "web").unwrap();
        assert_eq!(web.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 20)));
        assert!(!web.headless);
        assert_eq!(web.ports.len(), 2, "SCTP is left out");
        let http = &web.ports[0];
        assert_eq!((http.port, http.node_port, http.protocol), (80, Some(30080), Protocol::Tcp));
        let want: Vec<SocketAddrV4> =
            ["10.244.0.2:8080", "10.244.0.3:8080", "10.244.1.7:8081"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(http.endpoints, want);
        let dns = &web.ports[1];
        assert_eq!(dns.endpoints, vec!["10.244.0.2:5353".parse().unwrap(), "10.244.0.3:5353".parse().unwrap()]);
        assert_eq!(web.addresses.len(), 3);
        assert_eq!(web.addresses[0].hostname.as_deref(), Some("web-0"));
    }

    #[test]
    fn headless_affinity_and_external_name() {
        let headless = service(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "sessionAffinity": "ClientIP", "ports": [{"port": 5432}]}
        }));
        let external = service(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.org"}
        }));
        let snap = Snapshot::build([&headless, &external], []);
        let db = snap.get("default", "db").unwrap();
        assert!(db.headless && db.cluster_ip.is_none());
        assert_eq!(db.affinity_timeout, Some(DEFAULT_AFFINITY_SECONDS));
        assert!(db.ports[0].endpoints.is_empty() && db.ports[0].name.is_empty());
        assert!(snap.get("default", "ext").is_none());
    }
}
