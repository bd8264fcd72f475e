//! Identifiers of the per-Service-port objects in the table.
//!
//! A name is `<prefix>-<hash>-<tail>`: the hash (64-bit FNV-1a of everything the object
//! stands for) keeps names distinct whatever the Kubernetes names hold, the tail
//! (`ns/name/proto/port`, cleaned to nft's identifier alphabet and cut short) tells a
//! human reading `nft list table` what the object is for. Names are a pure function of
//! their inputs, stable across builds and platforms (no `std` hasher, whose algorithm may
//! change between Rust releases).

use std::net::SocketAddrV4;

use crate::runtime::fnv1a;
use crate::services::model::{ServiceEntry, ServicePort};

/// Longest readable tail: nft allows 255 bytes per name, and listings stay legible.
const MAX_TAIL: usize = 96;

/// The objects of one Service port (`entry`'s `port`).
pub(super) struct PortNames<'a> {
    entry: &'a ServiceEntry,
    port: &'a ServicePort,
}

impl<'a> PortNames<'a> {
    pub(super) fn new(entry: &'a ServiceEntry, port: &'a ServicePort) -> Self {
        PortNames { entry, port }
    }

    fn key(&self) -> [String; 5] {
        let e = self.entry;
        let p = self.port;
        [e.namespace.clone(), e.name.clone(), p.name.clone(), p.protocol.as_str().to_string(), p.port.to_string()]
    }

    fn tail(&self) -> String {
        let e = self.entry;
        clean(&format!("{}/{}/{}/{}", e.namespace, e.name, self.port.protocol.as_str(), self.port.port))
    }

    /// The chain that picks an endpoint of this port.
    pub(super) fn service_chain(&self) -> String {
        format!("svc-{:016x}-{}", hash(&self.key()), self.tail())
    }

    /// The chain that marks and DNATs a connection to `endpoint`.
    pub(super) fn endpoint_chain(&self, endpoint: SocketAddrV4) -> String {
        let mut key = self.key().to_vec();
        key.push(endpoint.to_string());
        format!("sep-{:016x}-{}", hash(&key), endpoint_tail(&self.tail(), endpoint))
    }

    /// The set of clients with affinity to `endpoint`. The timeout is part of the name: a
    /// changed timeout gets a fresh set instead of an update of a set's properties, which
    /// older kernels refuse.
    pub(super) fn affinity_set(&self, endpoint: SocketAddrV4, timeout_secs: u32) -> String {
        let mut key = self.key().to_vec();
        key.push(endpoint.to_string());
        key.push(timeout_secs.to_string());
        format!("aff-{:016x}-{}", hash(&key), endpoint_tail(&self.tail(), endpoint))
    }
}

fn endpoint_tail(port_tail: &str, endpoint: SocketAddrV4) -> String {
    clean(&format!("{port_tail}/{}/{}", endpoint.ip(), endpoint.port()))
}

/// `text` with every byte outside nft's identifier alphabet replaced by `_`, cut to
/// [`MAX_TAIL`] bytes (all ASCII by then, so any cut is a char boundary).
fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') { c } else { '_' })
        .collect();
    out.truncate(MAX_TAIL);
    out
}

/// 64-bit FNV-1a over `parts`, each followed by a 0 byte so `["ab", "c"]` and
/// `["a", "bc"]` differ.
fn hash(parts: &[String]) -> u64 {
    let bytes: Vec<u8> = parts.iter().flat_map(|p| p.bytes().chain([0])).collect();
    fnv1a(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::model::Protocol;

    fn entry(ns: &str, name: &str) -> ServiceEntry {
        ServiceEntry {
            namespace: ns.into(),
            name: name.into(),
            cluster_ip: None,
            headless: false,
            affinity_timeout: None,
            ports: vec![],
            addresses: vec![],
        }
    }

    fn port(name: &str, protocol: Protocol, number: u16) -> ServicePort {
        ServicePort { name: name.into(), protocol, port: number, node_port: None, endpoints: vec![] }
    }

    #[test]
    fn hash_is_fnv1a_and_separates_parts() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_ne!(hash(&["ab".into(), "c".into()]), hash(&["a".into(), "bc".into()]));
    }

    #[test]
    fn names_are_valid_distinct_and_stable() {
        let web = entry("prod", "web");
        let http = port("http", Protocol::Tcp, 80);
        let dns = port("dns", Protocol::Udp, 80);
        let a = PortNames::new(&web, &http);
        let b = PortNames::new(&web, &dns);
        assert_ne!(a.service_chain(), b.service_chain(), "protocol is part of the name");
        assert!(a.service_chain().starts_with("svc-") && a.service_chain().ends_with("-prod/web/tcp/80"));
        assert_eq!(a.service_chain(), PortNames::new(&web, &http).service_chain());
        let ep: SocketAddrV4 = "10.244.0.2:8080".parse().unwrap();
        assert!(a.endpoint_chain(ep).ends_with("-prod/web/tcp/80/10.244.0.2/8080"));
        assert_ne!(a.affinity_set(ep, 10), a.affinity_set(ep, 20), "a new timeout gets a new set");

        let odd = entry("ns with spaces", &"x".repeat(300));
        let name = PortNames::new(&odd, &http).endpoint_chain(ep);
        assert!(name.len() <= 4 + 16 + 1 + MAX_TAIL);
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)), "{name}");
    }
}
