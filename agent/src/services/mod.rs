//! Services on the node: the kube-proxy role and cluster DNS (issue 8).
//!
//! - [`model`]: the [`model::Snapshot`] of Services and their ready endpoints, a pure
//!   function of the watched Service and Endpoints objects.
//! - [`proxy`]: nftables rules that send `clusterIP:port` and `nodeIP:nodePort` to a ready
//!   endpoint, rendered from a snapshot and applied atomically.
//! - [`dns`]: the cluster DNS server answering `<svc>.<ns>.svc.cluster.local` from a
//!   snapshot and forwarding other names to the host's resolvers.
//! - [`runner`]: the loop that watches Services and Endpoints, publishes snapshots and runs
//!   the DNS server; [`sync`] programs each snapshot's rules. Pods get the cluster DNS as their resolver through
//!   [`crate::pods::dns`].

pub mod dns;
pub mod model;
pub mod proxy;
pub mod runner;
pub mod sync;
