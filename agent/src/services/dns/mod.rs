//! Cluster DNS: the node agent answers `<svc>.<ns>.svc.<domain>` and friends from the
//! latest services [`Snapshot`](super::model::Snapshot), and forwards every other name to
//! the host's resolvers.
//!
//! Data flow: a query arrives over UDP or TCP (`server`), is decoded, and the name is
//! looked up in the cluster zone (`zone`) against the snapshot current at that moment. A
//! name in the zone gets an authoritative answer (`reply`); a name outside it is sent to
//! the upstreams in order and the first good answer is relayed (`forward`).
//!
//! Invariants:
//! - Every answer comes from the latest snapshot the watch channel holds when the query is
//!   decoded; nothing is cached across queries, so a Service change is seen by the next
//!   query.
//! - The server is authoritative for `<domain>` (and for the reverse names of cluster IPs
//!   and headless endpoints): names under it are answered or denied (NXDOMAIN, or NOERROR
//!   with no answers for a name that exists without records of the asked type), never
//!   forwarded. Everything else is forwarded; a query no upstream answers gets SERVFAIL.
//! - Name comparisons are case-insensitive; answers carry the question's own spelling.
//! - A UDP answer never exceeds what the client can take (512 bytes, or its EDNS size up
//!   to 1232): additional records go first, then the answer is cut with TC set so that the
//!   client retries over TCP.
//! - Work is bounded: queries in flight, TCP connections, and the time spent per upstream
//!   each have a named limit.
//! - Kubernetes names are lower case, so the lower-cased labels of a question index the
//!   snapshot directly.
//!
//! Records follow the Kubernetes DNS specification (schema 1.0.1); the list is in `zone`.

mod forward;
mod reply;
mod resolv;
mod server;
mod zone;

pub use resolv::{cluster_search, host_upstreams};
pub use server::DnsServer;

use std::net::SocketAddr;

use crate::error::AgentError;

/// How the cluster DNS answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The cluster domain, e.g. `cluster.local` (a trailing dot and upper case are accepted).
    pub domain: String,
    /// Where names outside the cluster domain are forwarded, tried in order.
    pub upstreams: Vec<SocketAddr>,
    /// Time-to-live of the records answered from the snapshot, in seconds. Short, because
    /// endpoints change often and a cached stale address is a failed connection.
    pub ttl: u32,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig { domain: "cluster.local".into(), upstreams: Vec::new(), ttl: 5 }
    }
}

impl DnsConfig {
    /// The domain must be a valid DNS name of at least one label.
    pub fn validate(&self) -> Result<(), AgentError> {
        zone::Zone::new(&self.domain, self.ttl).map(|_| ())
    }
}
