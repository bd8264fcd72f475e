//! resolv.conf in and out: the host's nameservers become the upstreams, and a pod with
//! `dnsPolicy: ClusterFirst` gets the Kubernetes search path ([`crate::pods::dns`] writes
//! the file).

use std::net::{IpAddr, SocketAddr};

/// The port resolv.conf nameservers listen on (the file has no way to name another).
const NAMESERVER_PORT: u16 = 53;
/// The most search domains a pod gets (the kubelet's `MaxDNSSearchPaths`).
const MAX_SEARCH_DOMAINS: usize = 32;
/// The longest search line a pod gets, in characters (the kubelet's `MaxDNSSearchListChars`).
const MAX_SEARCH_CHARS: usize = 2048;

/// The host's `nameservers` (as [`crate::pods::dns::Resolv`] read them from resolv.conf), in
/// order, without duplicates, as port-53 addresses.
///
/// Loopback ones (a stub resolver such as systemd-resolved's 127.0.0.53) are kept: the
/// cluster DNS forwards from the agent's own network namespace, where they answer. IPv6
/// addresses with a zone (`fe80::1%eth0`) are skipped, as they cannot be written as a
/// socket address without resolving the interface.
pub fn host_upstreams(nameservers: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for ip in nameservers.iter().filter_map(|n| n.parse::<IpAddr>().ok()) {
        let addr = SocketAddr::new(ip, NAMESERVER_PORT);
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// The search path of a pod in `pod_namespace` with cluster DNS (`dnsPolicy: ClusterFirst`):
/// `<ns>.svc.<domain> svc.<domain> <domain>` then the host's own search domains (duplicates
/// and the root dropped, within the kubelet's limits). With `ndots:5`, `<svc>` and
/// `<svc>.<ns>` go through it first.
pub fn cluster_search(pod_namespace: &str, domain: &str, host_search: &[String]) -> Vec<String> {
    let domain = domain.trim_end_matches('.');
    let mut search = vec![format!("{pod_namespace}.svc.{domain}"), format!("svc.{domain}"), domain.to_string()];
    let mut chars = search.iter().map(|s| s.len() + 1).sum::<usize>();
    for host in host_search.iter().map(|s| s.trim_end_matches('.')) {
        if host.is_empty() || search.iter().any(|s| s.eq_ignore_ascii_case(host)) {
            continue;
        }
        if search.len() == MAX_SEARCH_DOMAINS || chars + host.len() + 1 > MAX_SEARCH_CHARS {
            break;
        }
        chars += host.len() + 1;
        search.push(host.to_string());
    }
    search
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::dns::Resolv;

    #[test]
    fn nameservers_become_port_53_upstreams() {
        let text = "# generated\n; also a comment\nsearch lan\nnameserver 192.168.1.1\nnameserver  127.0.0.53 # stub\n\
                    nameserver 2001:db8::1\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 192.168.1.1\n\
                    options edns0\n  nameserver 10.0.0.2\n";
        let want: Vec<SocketAddr> =
            ["192.168.1.1:53", "127.0.0.53:53", "[2001:db8::1]:53", "10.0.0.2:53"].map(|s| s.parse().unwrap()).into();
        assert_eq!(host_upstreams(&Resolv::parse(text).nameservers), want);
        assert!(host_upstreams(&[]).is_empty());
    }

    #[test]
    fn cluster_first_search_path_then_the_hosts() {
        let host = ["lan".to_string(), "cluster.local".into(), ".".into(), "corp.example.".into()];
        let search = cluster_search("shop", "cluster.local.", &host);
        assert_eq!(search, ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "lan", "corp.example"]);
    }

    #[test]
    fn search_path_stays_within_the_kubelet_limits() {
        let many: Vec<String> = (0..100).map(|i| format!("d{i}.example")).collect();
        let search = cluster_search("default", "cluster.local", &many);
        assert_eq!(search.len(), MAX_SEARCH_DOMAINS);
        assert_eq!(search[..4], ["default.svc.cluster.local", "svc.cluster.local", "cluster.local", "d0.example"]);
        let long: Vec<String> = (0..4).map(|i| format!("{i}{}", "x".repeat(600))).collect();
        let search = cluster_search("default", "cluster.local", &long);
        assert!(search.join(" ").len() <= MAX_SEARCH_CHARS);
        assert_eq!(search.len(), 6);
    }
}
