//! `flotilla-controllers`: the controllers that run on the Raft leader.
//!
//! - [`leadership`]: follows this replica's Raft role; starts the leader-only components
//!   when it becomes leader and stops them at once when it stops being one, and keeps the
//!   `kube-system/flotilla-controllers` Lease naming the replica that runs them.
//! - [`runtime`]: informer caches (list + watch), a work queue that never reconciles one
//!   key twice at once, and rate-limited requeues: what every controller is built on.
//! - One module per controller, each a leadership component: [`replicaset`],
//!   [`deployment`], [`statefulset`], [`daemonset`], [`job`], [`endpoints`],
//!   [`garbage_collector`], [`namespace`], [`node_lifecycle`], [`disruption`], [`volume`].
//! - [`history`]: ControllerRevisions shared by StatefulSets and DaemonSets.
//! - [`pod`]: one pod's state (active, ready, available...) as every controller judges it.

pub mod compactor;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod garbage_collector;
pub mod history;
pub mod job;
pub mod leadership;
pub mod namespace;
pub mod node_lifecycle;
pub mod pod;
pub mod reencrypt;
pub mod replicaset;
pub mod runtime;
pub mod serviceaccount;
pub mod statefulset;
pub mod volume;
