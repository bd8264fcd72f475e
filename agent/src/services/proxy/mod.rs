//! The kube-proxy role of the node agent: nftables rules that send traffic for
//! `clusterIP:port` and `<any local address>:nodePort` to a ready endpoint of the Service
//! port, chosen at random per new connection.
//!
//! Data flow: a [`Snapshot`](super::model::Snapshot) → [`render`] (pure: the whole table
//! as one nft script) → [`apply`] (one `nft -f` transaction, then a sweep of objects the
//! script no longer declares) the first time, [`apply_change`] (only what differs from the
//! script in place, `delta.rs`) after that. [`remove`] deletes the table when the agent stops;
//! [`owners`] deletes the tables of agents that died without doing so.
//!
//! The table (family `ip`, one per agent, named by [`ProxyOptions::table`]):
//! - `nat-prerouting` (traffic from pods) and `nat-output` (from the host itself) jump to
//!   `dns-redirect` first, then `services`, which looks the destination up in two verdict
//!   maps: `service-ips` (`clusterIP . proto . port`) and, for destinations of type
//!   `local`, `service-nodeports` (`proto . port`). Each hit goes to the Service port's
//!   chain, which picks an endpoint chain with `numgen random`; the endpoint chain marks
//!   the packet for masquerade and DNATs it. Conntrack keeps every later packet of the
//!   connection on that endpoint (nat chains only see a connection's first packet).
//! - `nat-postrouting` masquerades marked packets (see [`MASQUERADE_MARK`]), and gives the
//!   host's own redirected DNS queries the source 127.0.0.1 (`dns-from-host`), so that
//!   the answers of a server on the wildcard address match the connection.
//! - `filter-forward`/`filter-output` (priority -110, before DNAT) and `filter-input`
//!   reject new connections to Service ports and nodePorts that have no ready endpoint,
//!   found in the sets `no-endpoint-services` and `no-endpoint-nodeports`: a client gets
//!   "connection refused" at once instead of a timeout.
//! - sessionAffinity ClientIP: one dynamic set per endpoint remembers the client
//!   addresses sent there (`update` refreshes the timeout on every new connection); the
//!   Service port's chain sends a remembered client to its endpoint before picking.
//!
//! Invariants:
//! - [`render`] is deterministic: the same snapshot and options give the same text, so
//!   callers can skip re-applying an unchanged script. Every identifier is a fixed name
//!   or a prefix + hash + readable tail (`names.rs`), valid whatever the Kubernetes names.
//! - An apply replaces every rule and map element atomically but keeps affinity sets of
//!   endpoints that still exist, so a change elsewhere in the cluster does not move a
//!   client with ClientIP affinity (`rules.rs` explains why the table is flushed rather
//!   than deleted).
//! - Headless Services and Services without a clusterIP get no rules (they are DNS-only).

pub mod conntrack;
mod delta;
mod names;
mod nft;
pub mod owners;
mod rules;
#[cfg(test)]
mod tests;

use std::io;
use std::net::Ipv4Addr;

pub use nft::{apply, apply_change, nft, remove};
pub use rules::{objects, render};

/// The packet mark bit an endpoint chain sets on a connection's first packet so that
/// `nat-postrouting` masquerades it (kube-proxy's bit, cleared again before the packet
/// leaves).
///
/// Every DNATed connection is masqueraded, which is kube-proxy's `masqueradeAll`: replies
/// always come back through this host, so conntrack can undo the DNAT. That covers a pod
/// reaching itself through its Service (hairpin), clients on the same bridge as the
/// endpoint (without br_netfilter their replies would go straight back, un-NATed), and
/// `127.0.0.1` sources of NodePort connections from the host. The price: endpoints see
/// the node's address as the client, not the client's own.
pub const MASQUERADE_MARK: u32 = 0x4000;

/// Where the sysctl lives; `/proc/sys/net` shows the network namespace of the thread
/// that opens it.
const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

/// What the proxy programs, besides the Services of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    /// The nft table this agent owns (family ip), e.g. `flotilla-svc-node1`; several agents
    /// on one host each own one. Must be a valid nft identifier (a letter, then letters,
    /// digits, `-`, `_`, `.`, `/`).
    pub table: String,
    /// Redirect cluster DNS to a server on this host.
    pub dns: Option<DnsRedirect>,
}

/// Traffic to `cluster_ip:53` (udp and tcp) goes to this host's port `local_port`
/// (`redirect to :port`): from pods it lands on the address they reached the host by
/// (the server sees the pod's address), from the host itself on 127.0.0.1 (from
/// 127.0.0.1), so the DNS server must listen on the wildcard address.
/// The redirect comes before the Service rules, so it wins over a Service (e.g. kube-dns)
/// with the same clusterIP and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsRedirect {
    pub cluster_ip: Ipv4Addr,
    pub local_port: u16,
}

/// Set `net.ipv4.conf.all.route_localnet=1` in the calling thread's network namespace.
///
/// A NodePort reached from the host on `127.0.0.1` is DNATed to an endpoint on another
/// interface; without this sysctl the kernel refuses to route a packet whose source is a
/// loopback address anywhere but `lo`, and the connection times out (masquerade rewrites
/// the source only later, in postrouting). The sysctl also lets packets *to* 127.0.0.0/8
/// arrive from the network, so `filter-input` drops those unless they were DNATed by
/// these rules (kube-proxy's guard for CVE-2020-8558): services bound to localhost stay
/// local.
pub fn enable_route_localnet() -> io::Result<()> {
    std::fs::write(ROUTE_LOCALNET, b"1\n")
}
