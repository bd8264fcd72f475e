//! Workloads: clients that drive a cluster through the etcd API and record a [`History`].
//!
//! Data flow: the runner gives a workload the endpoints, its [`Opts`] and a [`Ctx`] (one
//! clock, the op counters, the cancel signal); the workload spawns its processes, which run
//! ops until cancelled, then runs its final phase (a set's final read, the watchers'
//! catch-up), and returns the merged history. [`Kind::checkers`] names the checkers that
//! judge it and [`Kind::owns`] picks its ops out of a run's combined history.
//!
//! Invariants:
//! - each workload writes only under its own key prefix and uses its own range of process
//!   ids ([`Kind::process_base`]), so workloads can run at once against one cluster;
//! - values are unique `i64`s per run (process id in the high half, see
//!   [`client::Process::unique_value`]);
//! - timeouts and lost connections are `Info`, never `Fail`, for anything that writes;
//! - a versioned read of a missing key reports revision 0.

pub mod client;
pub mod context;
pub mod control_plane;
pub mod lease;
pub mod register;
pub mod set;
pub mod watch;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::context::{cancel_pair, Cancel, CancelHandle, Clock, Ctx, Stats};
use crate::checker::{lease as lease_checker, linearizable, Checker};
use crate::history::{History, Op};

/// Process ids of one workload: `[base, base + PROCESS_SPAN)`.
const PROCESS_SPAN: u32 = 1000;

/// Settings shared by all workloads.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Client processes doing ops.
    pub clients: u32,
    /// Keys of the register workload (and of the watch writer).
    pub keys: u32,
    /// Bound on one op; past it the op is indeterminate.
    pub op_timeout: Duration,
    /// How long a final phase (final read, watcher catch-up) may retry.
    pub final_timeout: Duration,
    pub seed: u64,
}

impl Default for Opts {
    fn default() -> Self {
        // 10 clients on 10 keys: enough contention for CAS failures and for concurrent ops
        // on a key, small enough per-key histories for the linearizability search.
        Self {
            clients: 10,
            keys: 10,
            op_timeout: Duration::from_secs(1),
            final_timeout: Duration::from_secs(30),
            seed: 0,
        }
    }
}

/// The workloads there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Register,
    Set,
    Watch,
    Lease,
    /// A Deployment scaled under faults on hollow nodes (needs the API and the agent, so it
    /// is not in [`Kind::ALL`], the `--all` preset).
    ControlPlane,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Register, Kind::Set, Kind::Watch, Kind::Lease];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Set => "set",
            Kind::Watch => "watch",
            Kind::Lease => "lease",
            Kind::ControlPlane => "control-plane",
        }
    }

    /// The key prefix this workload writes under.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Register => register::PREFIX,
            Kind::Set => set::PREFIX,
            Kind::Watch => watch::PREFIX,
            Kind::Lease => lease::PREFIX,
            // It writes Kubernetes objects through the API, no keys of its own.
            Kind::ControlPlane => "",
        }
    }

    /// The first process id of this workload.
    pub fn process_base(self) -> u32 {
        let index = Kind::ALL.iter().position(|k| *k == self).unwrap_or(Kind::ALL.len());
        (index as u32 + 1) * PROCESS_SPAN
    }

    /// Whether `op` belongs to this workload (by process id).
    pub fn owns(self, op: &Op) -> bool {
        (self.process_base()..self.process_base() + PROCESS_SPAN).contains(&op.process)
    }

    /// The checkers that judge this workload's history.
    pub fn checkers(self) -> Vec<Checker> {
        let versioned = linearizable::Config { model: linearizable::RegisterKind::Versioned, ..Default::default() };
        match self {
            Kind::Register => vec![Checker::Linearizable(versioned)],
            Kind::Set => vec![Checker::Set],
            Kind::Watch => vec![Checker::Watch, Checker::Linearizable(versioned)],
            Kind::Lease => vec![Checker::Lease(lease_checker::Config::default())],
            Kind::ControlPlane => vec![Checker::ControlPlane(Default::default())],
        }
    }
}

/// Runs workload `kind` until `ctx.cancel`, then its final phase; returns its history.
pub async fn run(kind: Kind, endpoints: Vec<String>, opts: Opts, ctx: Ctx) -> History {
    assert!(opts.clients > 0 && opts.clients < PROCESS_SPAN / 2, "clients must fit the process range");
    match kind {
        Kind::Register => spawn_clients(kind, &endpoints, &opts, &ctx, register::client).await,
        Kind::Set => set::run(endpoints, opts, ctx).await,
        Kind::Watch => watch::run(endpoints, opts, ctx).await,
        Kind::Lease => lease::run(endpoints, opts, ctx).await,
        Kind::ControlPlane => control_plane::run(endpoints, opts, ctx).await,
    }
}

/// Spawns `opts.clients` processes running `client` and merges their ops.
async fn spawn_clients<F, Fut>(kind: Kind, endpoints: &[String], opts: &Opts, ctx: &Ctx, client: F) -> History
where
    F: Fn(client::Process, Opts) -> Fut,
    Fut: std::future::Future<Output = Vec<Op>> + Send + 'static,
{
    let mut tasks = Vec::new();
    for i in 0..opts.clients {
        let process = client::Process::new(kind.process_base() + i, endpoints.to_vec(), opts.op_timeout, ctx.clone());
        tasks.push(tokio::spawn(client(process, opts.clone())));
    }
    let mut parts = Vec::new();
    for task in tasks {
        // A client task only ends by returning its ops; a panic there is a harness bug.
        parts.push(task.await.expect("workload client panicked"));
    }
    client::merge(parts)
}
