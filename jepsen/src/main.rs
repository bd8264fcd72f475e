//! `flotilla-jepsen`: runs workloads against a flotilla cluster under faults, checks the
//! histories, and leaves a run folder with a report.
//!
//! `run` starts the cluster, runs, checks and exits 0 only when every checker said Valid
//! (Invalid and Unknown: 1; a harness error: 2). `check --run-dir D` checks a saved folder
//! again with the same exit codes. Flags starting with `--unsafe-` are taken out before
//! parsing and handed to the servers (self-check of the checkers).
//!
//! The cluster under test is `flotilla server` processes in network namespaces with the
//! seeded nemeses ([`flotilla_jepsen::cluster`], [`flotilla_jepsen::nemesis`]; needs root);
//! `--local` runs against a plain `flotilla up` cluster on loopback, without faults.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};
use flotilla_jepsen::cluster::{self, Cluster, ClusterOptions};
use flotilla_jepsen::nemesis::{self, Schedule, ScheduleOptions};
use flotilla_jepsen::run::nemesis::NemesisFaults;
use flotilla_jepsen::run::{self, folder, local::LocalCluster, Endpoints, NoFaults, RunConfig};
use flotilla_jepsen::sim;
use flotilla_jepsen::workload::Kind;

#[derive(Parser)]
#[command(name = "flotilla-jepsen", about = "Jepsen-style fault injection for flotilla")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run workloads against a fresh cluster and check them.
    Run(RunArgs),
    /// Check a saved run folder again (rewrites verdicts.json and report.html).
    Check {
        #[arg(long)]
        run_dir: PathBuf,
    },
    /// Deterministic simulation of the store: seeded in-process clusters with message loss,
    /// delay, partitions and crashes on a virtual clock; a seed replays exactly.
    Sim(SimArgs),
}

#[derive(clap::Args)]
struct SimArgs {
    /// Seeds to run: `N` or `FIRST-LAST` (inclusive).
    #[arg(long, default_value = "1-100", value_parser = seed_range)]
    seeds: std::ops::RangeInclusive<u64>,
    /// Replicas.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Virtual seconds of load and faults per seed.
    #[arg(long, default_value_t = 10)]
    time: u64,
    #[arg(long, default_value_t = 5)]
    clients: u32,
    #[arg(long, default_value_t = 3)]
    keys: u32,
    /// Only the base message loss and delay, no scheduled faults.
    #[arg(long)]
    no_faults: bool,
    /// Where failing seeds leave their history and verdicts.
    #[arg(long, default_value = "sim-runs")]
    out: PathBuf,
    /// Keep every seed's history and verdicts, not only failing ones.
    #[arg(long)]
    keep: bool,
}

/// `N` or `FIRST-LAST`.
fn seed_range(s: &str) -> Result<std::ops::RangeInclusive<u64>, String> {
    let parse = |x: &str| x.trim().parse::<u64>().map_err(|e| format!("{x:?}: {e}"));
    match s.split_once('-') {
        None => parse(s).map(|n| n..=n),
        Some((first, last)) => {
            let (first, last) = (parse(first)?, parse(last)?);
            if first > last {
                return Err(format!("{s:?}: FIRST is after LAST"));
            }
            Ok(first..=last)
        }
    }
}

#[derive(clap::Args)]
struct RunArgs {
    /// Replicas of the cluster under test.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seconds of load and faults (final phases come on top).
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Workloads to run at once, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "register")]
    workload: Vec<Kind>,
    /// Nemeses, comma-separated (`none` for a fault-free run).
    #[arg(long, value_delimiter = ',', default_value = "none")]
    nemesis: Vec<String>,
    /// Every workload and every nemesis the target supports.
    #[arg(long)]
    all: bool,
    /// Seed of the workloads' and nemeses' choices (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Run folder (default: jepsen-runs/<unix time>).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    clients: u32,
    #[arg(long, default_value_t = 10)]
    keys: u32,
    /// Per-op timeout in milliseconds (past it the op is indeterminate).
    #[arg(long, default_value_t = 1000)]
    op_timeout_ms: u64,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 5)]
    progress_secs: u64,
    /// The flotilla binary (default: next to this one).
    #[arg(long, env = "FLOTILLA_BIN")]
    flotilla_bin: Option<PathBuf>,
    /// Run against a plain `flotilla up` cluster on loopback (no root needed, no faults).
    #[arg(long)]
    local: bool,
    /// Seconds each fault lasts: `MIN-MAX`, drawn per fault from the seed.
    #[arg(long, default_value = "5-15", value_parser = seconds_range)]
    fault_seconds: std::ops::Range<Duration>,
    /// Seconds of quiet between faults: `MIN-MAX`.
    #[arg(long, default_value = "5-10", value_parser = seconds_range)]
    quiet_seconds: std::ops::Range<Duration>,
}

/// `MIN-MAX` in whole seconds, MIN < MAX.
fn seconds_range(s: &str) -> Result<std::ops::Range<Duration>, String> {
    let parse = |x: &str| x.trim().parse::<u64>().map_err(|e| format!("{x:?}: {e}"));
    let (lo, hi) = s.split_once('-').ok_or_else(|| format!("{s:?}: want MIN-MAX seconds"))?;
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if lo == 0 || lo >= hi {
        return Err(format!("{s:?}: want 0 < MIN < MAX"));
    }
    Ok(Duration::from_secs(lo)..Duration::from_secs(hi))
}

fn main() -> ExitCode {
    let (unsafe_flags, args): (Vec<String>, Vec<String>) = std::env::args().partition(|a| a.starts_with("--unsafe-"));
    let cli = Cli::parse_from(args);
    // The simulation's replicas log every refused message; only RUST_LOG asks for that.
    if !matches!(cli.command, Command::Sim(_)) || std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::Error::new(e).context("starting the tokio runtime")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run_command(args, unsafe_flags).await,
            Command::Check { run_dir } => folder::recheck(&run_dir),
            Command::Sim(args) => sim_command(args, &unsafe_flags),
        }
    });
    match result {
        Ok(summary) => {
            let (code, message) = folder::exit_code(&summary);
            println!("flotilla-jepsen: {message}");
            ExitCode::from(code as u8)
        }
        Err(e) => fail(e),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("flotilla-jepsen: error: {e:#}");
    ExitCode::from(2)
}

fn sim_command(args: SimArgs, unsafe_flags: &[String]) -> anyhow::Result<flotilla_jepsen::Summary> {
    let mut template = sim::SimOptions::new(0);
    for flag in unsafe_flags {
        match flag.as_str() {
            "--unsafe-local-reads" => template.unsafe_local_reads = true,
            other => bail!("{other}: the simulation knows only --unsafe-local-reads"),
        }
    }
    (template.nodes, template.time) = (args.nodes, Duration::from_secs(args.time));
    (template.clients, template.keys, template.faults) = (args.clients, args.keys, !args.no_faults);
    sim::run_seeds(args.seeds, &template, &args.out, args.keep)
}

async fn run_command(args: RunArgs, unsafe_flags: Vec<String>) -> anyhow::Result<flotilla_jepsen::Summary> {
    let (workloads, nemeses) = if args.all {
        (Kind::ALL.to_vec(), if args.local { Vec::new() } else { nemesis::Kind::ALL.to_vec() })
    } else {
        let named: Vec<&str> = args.nemesis.iter().map(String::as_str).filter(|n| *n != "none").collect();
        (args.workload.clone(), nemesis::Kind::parse_list(&named.join(","))?)
    };
    if args.local && !nemeses.is_empty() {
        bail!("--local runs without faults; nemeses need the namespace cluster (drop --local, run as root)");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seed = args.seed.unwrap_or(now.as_nanos() as u64);
    let run_dir = args.run_dir.clone().unwrap_or_else(|| PathBuf::from(format!("jepsen-runs/{}", now.as_secs())));
    let config = RunConfig {
        workloads,
        time: Duration::from_secs(args.time),
        seed,
        clients: args.clients,
        keys: args.keys,
        op_timeout: Duration::from_millis(args.op_timeout_ms),
        nemeses: nemeses.iter().map(|k| format!("{k:?}").to_lowercase()).collect(),
        run_dir: run_dir.clone(),
        progress_every: Duration::from_secs(args.progress_secs.max(1)),
    };
    let bin = match &args.flotilla_bin {
        Some(bin) => bin.clone(),
        None => cluster::default_binary()?,
    };
    println!("flotilla-jepsen: seed {seed}, run folder {}", run_dir.display());
    if args.local {
        let cluster = LocalCluster::start(&bin, &run_dir.join("cluster"), args.nodes, &unsafe_flags).await?;
        let result = run::execute(&cluster, &mut NoFaults, &config).await;
        cluster.stop().await?;
        return result;
    }
    cluster::cleanup_stale()?;
    let mut options = ClusterOptions::new(run_dir.join("cluster"), bin);
    options.nodes = args.nodes;
    options.extra_server_args = unsafe_flags;
    let mut cluster = Cluster::start(options).await?;
    let mut schedule_options = ScheduleOptions::new(seed, nemeses, args.nodes, config.time);
    (schedule_options.fault, schedule_options.quiet) = (args.fault_seconds.clone(), args.quiet_seconds.clone());
    let schedule = Schedule::generate(&schedule_options)?;
    println!("flotilla-jepsen: nemesis schedule\n{schedule}");
    let endpoints = Endpoints(cluster.endpoints());
    let result = run::execute(&endpoints, &mut NemesisFaults { cluster: &mut cluster, schedule }, &config).await;
    cluster.teardown()?;
    result
}
