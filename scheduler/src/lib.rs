//! `flotilla-scheduler`: where each pod should run.
//!
//! Two layers. The placement core is pure — no I/O, no async, no store. The loop
//! ([`scheduling_loop`], a leader-only component) watches unbound pods and writes bindings:
//! it keeps a [`Snapshot`] of the cluster current and asks [`schedule()`] for a node per pod:
//!
//! ```text
//!   lists/watch ──► Snapshot::new / upsert_* / remove_*
//!   unbound pod ──► schedule(pod, &snapshot) ──► Ok(node)  ──► bind ──► Snapshot::assume
//!                                            └─► Err(FitError) ──► FailedScheduling event
//! ```
//!
//! A decision runs upstream kube-scheduler's default pipeline, restricted to what Flotilla
//! supports: `filter` (PreFilter + Filter, in upstream's plugin order and wording),
//! [`score`] (weighted 0–100 scores), then a deterministic pick ([`schedule()`]).
//! Supporting modules: [`quantity`] parses resource quantities, [`resources`] sums pod
//! requests, `taints` (the taints a node's conditions imply, soft-taint counts), `ports`,
//! `selector` (pod affinity label selectors), `affinity` (inter-pod terms), `volumes` (bound
//! PV node affinity), [`snapshot`] (the cluster view with per-node totals) and [`error`]
//! (the `FailedScheduling` text). Node selectors and toleration matching are shared with the
//! controllers: `flotilla_apiserver::selector::{node, toleration}`; pod states with
//! `flotilla_controllers::pod`.
//!
//! Not covered: preemption, topology spread constraints, preferred inter-pod affinity,
//! image locality, dynamic resources, scheduling gates (the loop skips gated pods).

pub(crate) mod affinity;
pub mod error;
pub(crate) mod filter;
pub(crate) mod ports;
pub mod quantity;
pub mod resources;
pub mod schedule;
pub mod scheduling_loop;
pub mod score;
pub(crate) mod selector;
pub mod snapshot;
pub(crate) mod taints;
pub(crate) mod volumes;

#[cfg(test)]
pub(crate) mod fixtures;

pub use error::{FitError, QuantityError};
pub use schedule::schedule;
pub use snapshot::{pod_key, Snapshot};
