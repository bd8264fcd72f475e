//! Deterministic simulation of the store: a seeded in-process cluster of real [`StoreNode`]s
//! on a simulated network and a virtual clock, with message loss, delay, partitions and
//! crashes, checked by the same checkers as the real harness.
//!
//! What is real: openraft, our log store and state machine on RocksDB (in a temporary
//! directory, on tmpfs when there is one), the MVCC apply, the batcher, read index,
//! forwarding to the leader, and the peer protocol's encoding and service code. What is
//! simulated: the network between replicas ([`net`]), time, and crashes ([`cluster`]).
//!
//! Determinism, the point of the exercise — a failing seed replays exactly:
//! - one thread runs everything: a current-thread tokio runtime with paused time (it jumps to
//!   the next timer whenever every task waits), whose scheduler RNG (`tokio::select!` branch
//!   order) is seeded (`rng_seed`, which needs the `tokio_unstable` cfg set in
//!   `.cargo/config.toml`);
//! - openraft's election timeouts, lease IDs and the like come from the store's thread-local
//!   generator, seeded ([`flotilla_store::determinism`]); blocking RocksDB work runs inline,
//!   so no thread pool decides when it finishes;
//! - the network, the nemesis schedule and every client draw from their own generators
//!   derived from the seed;
//! - nothing else in the loop reads a clock or iterates a randomly ordered map.
//!
//! [`SimReport::digest`] hashes the history and the fault log; a test runs seeds twice and
//! compares digests, so any leak of nondeterminism shows up as a failing test.

mod clients;
mod cluster;
mod faults;
mod net;

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use flotilla_store::Config;
use serde::Serialize;
use tokio::time::Instant;

use self::clients::{Client, ClientOptions, Nodes};
use self::cluster::SimCluster;
pub use self::faults::FaultRecord;
pub use self::net::NetOptions;
use crate::checker::linearizable::{self, RegisterKind};
use crate::checker::{check_all, Checker, Summary, Validity};
use crate::history::History;

/// Salts that give the network, the schedule and the cluster independent generators.
const NET_SALT: u64 = 0x6e65_7477_6f72_6b00;
const PLAN_SALT: u64 = 0x706c_616e_0000_0000;

/// One simulated run.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    pub nodes: usize,
    /// Virtual time of load and faults.
    pub time: Duration,
    pub clients: u32,
    pub keys: u32,
    pub net: NetOptions,
    /// Inject faults (else only the base loss and delay).
    pub faults: bool,
    /// Run the servers in their unsafe local-read mode (the checker must catch it).
    pub unsafe_local_reads: bool,
}

impl SimOptions {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: 3,
            time: Duration::from_secs(10),
            clients: 5,
            keys: 3,
            net: NetOptions::default(),
            faults: true,
            unsafe_local_reads: false,
        }
    }
}

/// What a run did and what the checkers said.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub seed: u64,
    pub ops: usize,
    pub faults: Vec<FaultRecord>,
    pub summary: Summary,
    /// Hash of the history and the fault log: equal for two runs of one seed.
    pub digest: u64,
    #[serde(skip)]
    pub history: History,
}

/// Run one simulation on a thread of its own (the determinism settings are per thread).
pub fn run(opts: &SimOptions) -> anyhow::Result<SimReport> {
    let (opts, seed) = (opts.clone(), opts.seed);
    std::thread::Builder::new()
        .name(format!("sim-{seed}"))
        .spawn(move || {
            flotilla_store::determinism::seed_this_thread(opts.seed);
            flotilla_store::determinism::run_blocking_inline();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .rng_seed(tokio::runtime::RngSeed::from_bytes(&opts.seed.to_le_bytes()))
                .build()
                .context("building the simulation runtime")?;
            runtime.block_on(simulate(&opts))
        })
        .context("starting the simulation thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("seed {seed}: the simulation panicked"))?
}

/// The store's settings in the simulation: short timeouts and frequent snapshots, so that
/// elections, lagging followers and snapshot installs all happen within seconds.
fn store_config(opts: &SimOptions) -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(50),
        election_timeout: Duration::from_millis(500),
        snapshot_logs: 200,
        logs_to_keep: 50,
        request_timeout: Duration::from_secs(2),
        unsafe_local_reads: opts.unsafe_local_reads,
        ..Config::default()
    }
}

async fn simulate(opts: &SimOptions) -> anyhow::Result<SimReport> {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.context("data directory")?;
    let net = net::SimNet::new(opts.seed ^ NET_SALT, opts.net.clone());
    let mut cluster = SimCluster::start(opts.nodes, dir.path(), net.clone(), store_config(opts)).await?;
    let nodes: Nodes = Arc::new(Mutex::new(Vec::new()));
    faults::publish(&cluster, &nodes);

    let start = Instant::now();
    let client_opts = ClientOptions {
        keys: opts.keys,
        op_timeout: Duration::from_secs(3),
        think: Duration::from_millis(5)..Duration::from_millis(40),
    };
    let client = |process| Client::new(process, opts.seed, start, nodes.clone(), client_opts.clone());
    let running: Vec<_> = (0..opts.clients).map(|p| tokio::spawn(client(p).run(start + opts.time))).collect();
    let schedule = if opts.faults { faults::plan(opts.seed ^ PLAN_SALT, opts.nodes, opts.time) } else { Vec::new() };
    let records = faults::play(&mut cluster, &nodes, &schedule, start).await?;
    let mut parts = Vec::new();
    for handle in running {
        parts.push(handle.await.context("a simulated client panicked")?.ops);
    }
    // Every fault is healed: give the cluster a moment, then read the whole set.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut last = client(opts.clients);
    let until = Instant::now() + Duration::from_secs(30);
    last.read_set(until).await;
    parts.push(last.ops);
    cluster.shutdown().await;

    let history = crate::workload::client::merge(parts);
    let versioned = linearizable::Config { model: RegisterKind::Versioned, ..Default::default() };
    let summary = check_all(&history, &[Checker::Linearizable(versioned), Checker::Set]);
    Ok(SimReport {
        seed: opts.seed,
        ops: history.ops.len(),
        digest: digest(&history, &records),
        faults: records,
        summary,
        history,
    })
}

fn digest(history: &History, faults: &[FaultRecord]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    history.ops.hash(&mut hasher);
    faults.hash(&mut hasher);
    hasher.finish()
}

/// Run each of `seeds` with `template`'s other settings, one line per seed on stdout. A seed
/// that is not valid (or every seed, with `keep_all`) leaves `history.jsonl` and
/// `verdicts.json` in `out/<seed>/`. The summary holds every seed's verdicts, named
/// `seed N: checker`.
pub fn run_seeds(
    seeds: impl IntoIterator<Item = u64>,
    template: &SimOptions,
    out: &Path,
    keep_all: bool,
) -> anyhow::Result<Summary> {
    let mut verdicts = Vec::new();
    for seed in seeds {
        let began = std::time::Instant::now();
        let report = run(&SimOptions { seed, ..template.clone() })?;
        println!(
            "seed {seed}: {:?}, {} ops, {} faults, digest {:016x} ({:.1} s)",
            report.summary.valid,
            report.ops,
            report.faults.len(),
            report.digest,
            began.elapsed().as_secs_f64()
        );
        if keep_all || report.summary.valid != Validity::Valid {
            let dir = out.join(seed.to_string());
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            report.history.write_jsonl(std::fs::File::create(dir.join("history.jsonl"))?)?;
            std::fs::write(dir.join("verdicts.json"), serde_json::to_vec_pretty(&report)?)?;
            println!("  kept in {}; replay with: flotilla-jepsen sim --seeds {seed}", dir.display());
        }
        verdicts.extend(report.summary.verdicts.into_iter().map(|mut v| {
            v.checker = format!("seed {seed}: {}", v.checker);
            v
        }));
    }
    Ok(Summary { valid: Validity::all(verdicts.iter().map(|v| v.valid)), verdicts })
}
