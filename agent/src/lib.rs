//! `flotilla-agent`: the node agent, flotilla's kubelet. It registers a Node, heartbeats
//! through a Lease, runs the pods bound to its node through a container runtime, and
//! reports their status — as an ordinary Kubernetes API client (kube-rs) that knows every
//! control-plane replica and fails over between them.
//!
//! Invariants (the ones the rest of the crate is built to keep):
//! - **A control-plane outage never stops running pods.** Only the API calls wait; pod
//!   workers keep syncing from the last Pod they saw ([`api`], [`pods`]).
//! - **The runtime is the source of truth for containers.** Every container carries
//!   labels naming its pod and attempt, so an agent restart adopts running containers
//!   instead of restarting them ([`runtime`]).
//! - **Decisions are pure.** What to start, stop, restart or delete
//!   ([`pods::sync`]), what status to report ([`pods::status`], [`node::status`]) and
//!   back-off ([`pods::backoff`]) are computed without I/O and unit-tested with an
//!   in-memory runtime; the I/O sits at the edge ([`pods::worker`], [`node`]).
//! - Status is written only when it changes (node: also once a minute as a heartbeat).
//!
//! Layout:
//! - [`api`]: [`api::ApiPool`] (a client per server, failover), [`api::watch`]
//!   (list+watch resumed from the last resourceVersion across failovers) and
//!   [`api::discovery`] (the replicas the agent was not given, from the `kubernetes`
//!   Service's Endpoints).
//! - [`node`]: registration, [`node::lease`] heartbeats, [`node::status`], [`node::host`] facts.
//! - [`pods`]: [`pods::PodManager`] → one [`pods::worker::Worker`] per pod →
//!   [`pods::sync::PodSync`] (pure) → runtime.
//! - [`runtime`]: the [`runtime::Runtime`] trait; [`runtime::docker`], [`runtime::containerd`]
//!   (with CNI), [`runtime::process`] (host processes, no isolation) and [`runtime::fake`]
//!   (in-memory).
//! - [`server`]: the endpoint API servers proxy `kubectl logs`, `exec` and `port-forward` to.
//! - [`Agent`]: one node; [`simulate`]: N simulated nodes in one process.
//!
//! Running it: `flotilla agent --server http://127.0.0.1:6443 --runtime fake` runs one
//! node; `flotilla agent --runtime fake --simulate 100 --node-name-prefix sim-` runs 100
//! hollow nodes whose pods turn Running without running anything. Tests: `cargo nextest
//! run -p flotilla-agent` (unit tests of the sync core, and in-process clusters over
//! HTTP in `agent/tests/`).
//!
//! Not yet: TLS and per-node authorization (issue 9); Services and cluster DNS (issue 8).

pub mod agent;
pub mod api;
pub mod config;
pub mod error;
pub mod node;
pub mod pods;
pub mod runtime;
pub mod server;
pub mod services;
pub mod simulate;

pub use agent::Agent;
pub use config::{AgentConfig, NodeConfig};
pub use error::AgentError;
