//! `flotilla bench-api`: measures the Kubernetes API of a running `flotilla up` cluster over
//! real HTTP.
//!
//! Measurements (`--measure`, all by default, run in this order):
//! - `get`, `list`, `create`, `update`: closed-loop latency and throughput of configmap calls
//!   under `--clients` concurrent clients for `--duration` each ([`ops`]).
//! - `watch`: `--watchers` watches on one namespace while a writer changes pods at
//!   `--write-rate` per second for `--duration`; delay from write acknowledgement to event
//!   read, and whether every watcher saw every event ([`fanout`]).
//! - `memory`: each replica's VmRSS before and after creating `--pods` realistic pods
//!   ([`memory`]); runs last, so the pods do not weigh on the other figures.
//!
//! Clients are spread over every replica's `api_url` (client i to replica i mod n), as a
//! load balancer in front of the API servers would; `--replica NAME` sends everything to
//! one. All objects go to fresh namespaces `bench-api-<run id>-*`, so runs can repeat on one
//! cluster. Output: one JSON line per measurement as it finishes, then a table of all.

pub(crate) mod client;
mod fanout;
mod memory;
mod objects;
pub(crate) mod ops;
pub(crate) mod procfs;
pub(crate) mod stats;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use serde::Serialize;

use crate::up::ClusterFile;
use ops::{Fixture, Op, OpReport};
use procfs::CpuMeter;

/// The p99 the issue sets for mutating calls on this machine.
const MUTATING_P99_GOAL_MS: f64 = 100.0;

#[derive(Args, Debug)]
pub struct BenchApiArgs {
    /// The `cluster.json` written by `flotilla up`.
    #[arg(long)]
    cluster_file: PathBuf,
    /// Concurrent clients for get, list, create, update and the memory phase's pod creates,
    /// each with its own HTTP/1.1 connection.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// How long each of get, list, create and update runs, and how long the watch writer writes
    /// (e.g. 20s, 500ms, 2m).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Send every request to this replica (e.g. r1) instead of spreading over all replicas.
    #[arg(long)]
    replica: Option<String>,
    /// What to measure, comma separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "get,list,create,update,watch,memory")]
    measure: Vec<Measure>,
    /// Configmaps in the namespace that `list` lists (and `get` reads from).
    #[arg(long, default_value_t = 1000)]
    list_size: usize,
    /// Concurrent watchers of the watch fan-out.
    #[arg(long, default_value_t = 500)]
    watchers: usize,
    /// Pod writes per second during the watch fan-out.
    #[arg(long, default_value_t = 100)]
    write_rate: u32,
    /// Realistic (~2 KiB) pods the memory measurement creates.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Measure {
    Get,
    List,
    Create,
    Update,
    Watch,
    Memory,
}

/// Parses `20s`, `500ms`, `2m`, `8760h`, `30d` or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("{s:?}: expected a duration like 20s, 500ms or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)")),
    };
    if secs <= 0.0 || !secs.is_finite() {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Everything measured, for the final table.
#[derive(Default)]
struct Results {
    ops: Vec<OpReport>,
    watch: Option<fanout::FanoutReport>,
    memory: Vec<memory::MemoryReport>,
}

fn emit(report: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(report)?);
    Ok(())
}

pub async fn run(args: BenchApiArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.list_size == 0 || args.watchers == 0 || args.write_rate == 0 || args.pods == 0 {
        bail!("--clients, --list-size, --watchers, --write-rate and --pods must be positive");
    }
    let cluster = ClusterFile::read_plaintext(&args.cluster_file)?;
    let replicas = match &args.replica {
        Some(name) => cluster.replicas.iter().filter(|r| &r.name == name).cloned().collect(),
        None => cluster.replicas.clone(),
    };
    if replicas.is_empty() || replicas.iter().any(|r| r.api_url.is_empty()) {
        bail!("no replica with an api_url to target in {}", args.cluster_file.display());
    }
    let rss_start = memory::snapshot(&cluster.replicas)?;
    let pids: Vec<u32> = cluster.replicas.iter().map(|r| r.pid).collect();
    let run_id =
        format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() % 0x100_0000);
    let ns = |what: &str| format!("bench-api-{run_id}-{what}");
    let fx = Arc::new(Fixture {
        urls: replicas.iter().map(|r| r.api_url.clone()).collect(),
        target: args.replica.clone().unwrap_or_else(|| "all".into()),
        clients: args.clients,
        list_ns: ns("list"),
        list_size: args.list_size,
        create_ns: ns("create"),
        update_ns: ns("update"),
    });
    for what in ["list", "create", "update", "watch", "pods"] {
        ops::create_namespace(&fx.urls[0], &ns(what)).await?;
    }
    let mut results = Results::default();
    let wants = |m: Measure| args.measure.contains(&m);
    if wants(Measure::Get) || wants(Measure::List) {
        eprintln!("bench-api: creating {} configmaps in {}", args.list_size, fx.list_ns);
        fx.fill_list().await?;
        let (items, bytes) = fx.list_once().await?;
        eprintln!("bench-api: one list of {} returns {items} items, {bytes} bytes", fx.list_ns);
        if items != args.list_size {
            bail!("a list of {} returned {items} items, expected {}", fx.list_ns, args.list_size);
        }
    }
    for (m, op) in [
        (Measure::Get, Op::Get),
        (Measure::List, Op::List),
        (Measure::Create, Op::Create),
        (Measure::Update, Op::Update),
    ] {
        if wants(m) {
            eprintln!("bench-api: {} for {:?} with {} clients", op.name(), args.duration, args.clients);
            let meter = CpuMeter::start(pids.clone())?;
            let mut report = ops::run_op(&fx, op, args.duration).await?;
            report.cpu = meter.stop()?;
            emit(&report)?;
            results.ops.push(report);
        }
    }
    if wants(Measure::Watch) {
        eprintln!("bench-api: {} watchers, {} pod writes/s for {:?}", args.watchers, args.write_rate, args.duration);
        let cfg = fanout::FanoutConfig {
            urls: fx.urls.clone(),
            target: fx.target.clone(),
            ns: ns("watch"),
            watchers: args.watchers,
            rate: args.write_rate,
            duration: args.duration,
        };
        let meter = CpuMeter::start(pids.clone())?;
        let mut report = fanout::run(cfg).await?;
        report.cpu = meter.stop()?;
        emit(&report)?;
        results.watch = Some(report);
    }
    if wants(Measure::Memory) {
        eprintln!("bench-api: creating {} pods for the memory figure", args.pods);
        let meter = CpuMeter::start(pids.clone())?;
        let (mut creates, reports) = memory::run(&fx, &cluster.replicas, &rss_start, &ns("pods"), args.pods).await?;
        creates.cpu = meter.stop()?;
        emit(&creates)?;
        results.ops.push(creates);
        for r in &reports {
            emit(r)?;
        }
        results.memory = reports;
    }
    print_tables(&results);
    Ok(())
}

fn print_tables(r: &Results) {
    if !r.ops.is_empty() {
        println!();
        println!(
            "{:<12} {:>6} {:>7} {:>9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}",
            "measure",
            "target",
            "clients",
            "requests",
            "errors",
            "req/s",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "srv_cores",
            "bench_cores"
        );
        for o in &r.ops {
            let l = &o.latency;
            println!(
                "{:<12} {:>6} {:>7} {:>9} {:>7} {:>9.1} {:>8.2} {:>8.2} {:>8.1} {:>10.2} {:>10.2}",
                o.measure,
                o.target,
                o.clients,
                o.requests,
                o.errors,
                o.throughput,
                l.p50_ms,
                l.p99_ms,
                l.max_ms,
                o.cpu.server_cores,
                o.cpu.bench_cores
            );
        }
        for o in r.ops.iter().filter(|o| o.measure == "create" || o.measure == "update") {
            let verdict = if o.errors == 0 && o.latency.p99_ms <= MUTATING_P99_GOAL_MS { "met" } else { "not met" };
            println!(
                "goal p99 <= {MUTATING_P99_GOAL_MS} ms for {}: {verdict} (p99 {:.2} ms, {} errors)",
                o.measure, o.latency.p99_ms, o.errors
            );
        }
    }
    if let Some(w) = &r.watch {
        println!();
        println!(
            "watch: {} watchers ({} started), {} writes at {:.1}/s ({} errors, write p99 {:.2} ms); \
             cores busy: servers {:.2}, bench {:.2}",
            w.watchers,
            w.watchers_started,
            w.writes,
            w.write_rate_achieved,
            w.write_errors,
            w.write_p99_ms,
            w.cpu.server_cores,
            w.cpu.bench_cores
        );
        let d = &w.delay;
        println!(
            "  delay from ack p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({} events read before the ack)",
            d.p50_ms, d.p99_ms, d.max_ms, w.read_before_ack
        );
        println!(
            "  delay from send p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            w.send_p50_ms, w.send_p99_ms, w.send_max_ms
        );
        println!(
            "  events {}/{} received, {} missing, {} duplicate, {} out of order, {} unexpected lines",
            w.events_received,
            w.events_expected,
            w.missing_events,
            w.duplicate_events,
            w.out_of_order_events,
            w.unexpected_lines
        );
        println!(
            "  every watcher saw every event: {} ({} of {} complete)",
            w.every_watcher_saw_every_event, w.watchers_complete, w.watchers
        );
    }
    if !r.memory.is_empty() {
        println!();
        println!(
            "{:<8} {:>8} {:>7} {:>14} {:>15} {:>14} {:>12}",
            "replica", "pid", "pods", "rss_start_MiB", "rss_before_MiB", "rss_after_MiB", "bytes/pod"
        );
        for m in &r.memory {
            let mib = |k: u64| k as f64 / 1024.0;
            println!(
                "{:<8} {:>8} {:>7} {:>14.1} {:>15.1} {:>14.1} {:>12}",
                m.replica,
                m.pid,
                m.pods,
                mib(m.rss_start_kib),
                mib(m.rss_before_kib),
                mib(m.rss_after_kib),
                m.bytes_per_pod
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration("5h"), Ok(Duration::from_secs(5 * 3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("s").is_err());
    }
}
