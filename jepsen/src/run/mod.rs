//! The runner: workloads against a cluster under faults, then the checks and the run folder.
//!
//! Data flow of [`execute`]: write `run.json`; start one clock; spawn the workloads on the
//! [`Target`]'s endpoints and the [`Faults`] at once; after `config.time` cancel the faults
//! and wait until they have healed everything, then cancel the workloads and wait for their
//! final phases; merge the histories, check them ([`folder::check`]), and write
//! `history.jsonl`, `timeline.jsonl`, `verdicts.json` and `report.html`.
//!
//! Invariants: the load keeps running while the faults heal, so final reads happen against
//! a healed cluster; every time in the folder is on the one clock; the verdict of a run is
//! `Valid` only if every checker of every workload said `Valid` ([`folder::exit_code`]).
//!
//! The cluster and the nemeses are behind two small traits so the runner works with a plain
//! local cluster ([`local`]) as well as with the network-namespace cluster and its nemeses.

pub mod folder;
pub mod local;
pub mod nemesis;
pub mod progress;
pub mod report;
pub mod svg;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use self::progress::CurrentFault;
use crate::checker::Summary;
use crate::workload::{self, cancel_pair, Cancel, Clock, Ctx, Kind, Opts, Stats};

/// The cluster under test, as clients see it.
pub trait Target {
    /// etcd client URLs of every replica.
    fn endpoints(&self) -> Vec<String>;
}

/// A fixed list of endpoints as the target (when the cluster itself is lent to the faults).
#[derive(Debug, Clone)]
pub struct Endpoints(pub Vec<String>);

impl Target for Endpoints {
    fn endpoints(&self) -> Vec<String> {
        self.0.clone()
    }
}

/// One injected fault, from injection to heal, on the run's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultInterval {
    pub start_ns: u64,
    pub end_ns: u64,
    /// The nemesis ("partition", "kill", ...).
    pub fault: String,
    /// What exactly (which nodes, which halves).
    pub detail: String,
}

/// A nemesis schedule.
pub trait Faults {
    /// Injects faults until `cancel`, then heals everything and returns what it did. While a
    /// fault is active it shows it in `current` (the progress line prints it).
    fn run(
        &mut self,
        clock: Clock,
        current: CurrentFault,
        cancel: Cancel,
    ) -> impl Future<Output = Vec<FaultInterval>> + Send;
}

/// No faults at all (a baseline run, and the only schedule of the plain local cluster).
#[derive(Debug, Default)]
pub struct NoFaults;

impl Faults for NoFaults {
    async fn run(&mut self, _clock: Clock, _current: CurrentFault, mut cancel: Cancel) -> Vec<FaultInterval> {
        cancel.cancelled().await;
        Vec::new()
    }
}

/// What to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub workloads: Vec<Kind>,
    /// Length of the fault/load phase (final phases come on top).
    pub time: Duration,
    pub seed: u64,
    pub clients: u32,
    pub keys: u32,
    pub op_timeout: Duration,
    /// Nemeses named on the command line (recorded in `run.json`).
    pub nemeses: Vec<String>,
    pub run_dir: PathBuf,
    /// Period of the progress line.
    pub progress_every: Duration,
}

impl RunConfig {
    fn opts(&self) -> Opts {
        Opts { clients: self.clients, keys: self.keys, op_timeout: self.op_timeout, seed: self.seed, ..Opts::default() }
    }
}

/// Runs `config` against `target` under `faults`; returns the checked summary. The run
/// folder is complete when this returns `Ok`.
pub async fn execute<T: Target, F: Faults>(target: &T, faults: &mut F, config: &RunConfig) -> anyhow::Result<Summary> {
    anyhow::ensure!(!config.workloads.is_empty(), "no workload to run");
    let dir = &config.run_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating the run folder {}", dir.display()))?;
    folder::write_config(dir, config)?;
    let clock = Clock::start();
    let stats = Arc::new(Stats::default());
    let current = CurrentFault::default();
    let (load_handle, load_cancel) = cancel_pair();
    let (fault_handle, fault_cancel) = cancel_pair();
    let ctx = Ctx { clock, stats: stats.clone(), cancel: load_cancel };
    let tasks: Vec<_> = config
        .workloads
        .iter()
        .map(|&kind| tokio::spawn(workload::run(kind, target.endpoints(), config.opts(), ctx.clone())))
        .collect();
    let (progress_stop, progress_cancel) = cancel_pair();
    let progress =
        tokio::spawn(progress::report_every(config.progress_every, clock, stats, current.clone(), progress_cancel));
    let (timeline, ()) = tokio::join!(faults.run(clock, current.clone(), fault_cancel), async {
        tokio::time::sleep(config.time).await;
        fault_handle.cancel();
    });
    current.set(Some("final phase".to_string()));
    load_handle.cancel();
    let mut histories = Vec::new();
    for task in tasks {
        histories.push(task.await.context("a workload task panicked")?.ops);
    }
    progress_stop.cancel();
    let _ = progress.await;
    let history = workload::client::merge(histories);
    let summary = folder::check(&history, &config.workloads);
    folder::write_results(dir, &history, &timeline, &summary)?;
    report::write(dir, &history, &timeline, &summary)?;
    Ok(summary)
}
