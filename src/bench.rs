//! `flotilla bench`: a closed-loop load generator for any etcd v3 endpoint, so Flotilla's
//! store and a real etcd are measured with the same client and the same workload.
//!
//! Data flow: `run` opens `--conns` gRPC connections (connection i dials endpoint i mod n),
//! then for each op spawns `--clients` workers, worker j on connection j mod conns. Workers
//! claim request tickets from one shared counter until `--total` are claimed and issue them
//! back to back, timing each; the report merges and sorts every latency for exact
//! percentiles. Request errors are counted, never fatal; the first one is reported.
//!
//! Ops, each on one key drawn uniformly from `--key-space`:
//! - `put`: `Put(key, value)`.
//! - `range`: a get of the key, linearizable or serializable (`--consistency`).
//! - `txn`: the Kubernetes optimistic update (apiserver `GuaranteedUpdate`):
//!   `If(mod_revision(key) == cached) Then(Put(key, value)) Else(Get(key))`. The cache is shared
//!   by all clients, as the apiserver's watch cache is, and holds the newest mod revision seen
//!   per key (from the pre-population puts, a successful txn's header revision, or the failed
//!   txn's Get), so the Else branch runs only when another client won a race for the key.
//!   Either branch counts as one successful request.
//!
//! For `range` and `txn` the key space is first written once, untimed.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;

/// Most connections `--conns` defaults to: enough HTTP/2 connections that one connection's
/// stream limit or one client task never bounds the server, few enough to resemble a real
/// apiserver's pool.
const DEFAULT_MAX_CONNS: usize = 16;
/// Least number of clients writing the key space before a `range` or `txn` run; that phase
/// is untimed, and at one client it would take longer than the measurement itself.
const FILL_CLIENTS: usize = 32;
/// Dial bound per connection; an unreachable endpoint fails the run instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of `flotilla bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// etcd v3 endpoints, comma separated; connections are spread over them round-robin.
    #[arg(long, env = "FLOTILLA_BENCH_ENDPOINTS", value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    #[command(flatten)]
    pub tls: crate::etcd_tls::EtcdTlsArgs,
    /// Concurrent clients, each issuing its next request as soon as the last one returns.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// gRPC connections shared by the clients [default: min(clients, 16)].
    #[arg(long)]
    pub conns: Option<usize>,
    /// Operation to measure; `all` runs put, range and txn in sequence.
    #[arg(long, value_enum, default_value_t = Op::Put)]
    pub op: Op,
    /// Requests per op.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Key length in bytes (zero-padded decimal key index).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value length in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub key_space: u64,
    /// Range consistency: l = linearizable, s = serializable (member-local).
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
    /// Print one JSON object per op instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Abort the whole run (all ops) after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

/// `--op` values; `run` expands `All`, so workers never see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Put,
    Range,
    Txn,
    All,
}

/// `--consistency` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consistency {
    /// Linearizable: the member confirms it is current with the leader (ReadIndex) first.
    L,
    /// Serializable: served from the member's local state, possibly stale.
    S,
}

/// Result of one op run; one table row or JSON line.
#[derive(Debug, Clone, Serialize)]
struct Report {
    op: Op,
    clients: usize,
    conns: usize,
    /// Requests issued: `ok + errors`.
    total: u64,
    ok: u64,
    errors: u64,
    elapsed_s: f64,
    /// Successful requests per second.
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

/// Runs the benchmark described by `args` and prints one report per op to stdout.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let conns = validate(&args)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    let ops: &[Op] = match args.op {
        Op::All => &[Op::Put, Op::Range, Op::Txn],
        ref one => std::slice::from_ref(one),
    };
    let work = async {
        let conns = connect(&args.endpoints, &args.tls, conns).await?;
        if !args.json {
            println!("op     clients conns   total errors elapsed_s     req/s   p50_ms   p99_ms   max_ms");
        }
        for &op in ops {
            let report = run_op(&conns, &args, op).await?;
            print_report(&report, args.json)?;
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(result) => result,
        Err(_) => bail!("bench aborted: --timeout-secs {} exceeded", args.timeout_secs),
    }
}

/// Checks the flags and returns the number of connections to open.
fn validate(args: &BenchArgs) -> anyhow::Result<usize> {
    let conns = args.conns.unwrap_or(args.clients.min(DEFAULT_MAX_CONNS));
    if args.endpoints.is_empty() || args.total == 0 || conns == 0 || conns > args.clients {
        bail!("need an endpoint, --total > 0 and 1 <= --conns <= --clients");
    }
    let max_keys = 10u64.checked_pow(u32::try_from(args.key_size)?).unwrap_or(u64::MAX);
    if args.key_space == 0 || args.key_space > max_keys {
        bail!("--key-space must be in 1..={max_keys} to fit in --key-size bytes");
    }
    Ok(conns)
}

/// Opens `n` connections, connection i to endpoint i mod len, and waits until each answers.
async fn connect(endpoints: &[String], tls: &crate::etcd_tls::EtcdTlsArgs, n: usize) -> anyhow::Result<Vec<Client>> {
    let options = tls.apply(endpoints, ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT))?;
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let endpoint = &endpoints[i % endpoints.len()];
        let options = options.clone();
        let client =
            Client::connect([endpoint], Some(options)).await.with_context(|| format!("connecting to {endpoint}"))?;
        // Dial now, so connection setup is not billed to the first timed requests.
        client
            .kv_client()
            .get("flotilla-bench-warmup", None)
            .await
            .with_context(|| format!("first request to {endpoint}"))?;
        clients.push(client);
    }
    Ok(clients)
}

/// What the workers of one op run share.
struct Shared {
    op: Op,
    /// Next request ticket; a worker stops once it claims a ticket `>= total`.
    next: AtomicU64,
    total: u64,
    /// Keys by ticket number instead of at random (the untimed pre-population).
    sequential: bool,
    args: BenchArgs,
    value: Vec<u8>,
    /// Newest mod revision any worker has seen per key index (0 = none): the `txn` clients'
    /// shared cache, like the apiserver's watch cache, so a compare fails only on a real race.
    revs: Arc<[AtomicI64]>,
    first_error: OnceLock<String>,
}

impl Shared {
    fn new(args: &BenchArgs, op: Op, total: u64, sequential: bool, revs: &Arc<[AtomicI64]>) -> Self {
        Shared {
            op,
            next: AtomicU64::new(0),
            total,
            sequential,
            args: args.clone(),
            value: vec![b'v'; args.val_size],
            revs: revs.clone(),
            first_error: OnceLock::new(),
        }
    }

    fn key(&self, index: u64) -> Vec<u8> {
        format!("{index:0width$}", width = self.args.key_size).into_bytes()
    }

    fn saw(&self, index: u64, mod_revision: i64) {
        // Responses arrive out of order; revisions only grow, so keep the largest.
        self.revs[index as usize].fetch_max(mod_revision, Ordering::Relaxed);
    }
}

/// Runs `op` with `args.clients` workers; for `range` and `txn` the key space is first
/// written once, untimed, so gets find values and txns update existing keys.
async fn run_op(conns: &[Client], args: &BenchArgs, op: Op) -> anyhow::Result<Report> {
    let revs: Arc<[AtomicI64]> = (0..args.key_space).map(|_| AtomicI64::new(0)).collect();
    if op != Op::Put {
        let fill = Shared::new(args, Op::Put, args.key_space, true, &revs);
        let fill = drive(conns, fill, args.clients.max(FILL_CLIENTS)).await?;
        if let Some(e) = fill.first_error {
            eprintln!("warning: {} of {} pre-population puts failed; first: {e}", fill.errors, fill.total);
        }
    }
    let measured = Shared::new(args, op, args.total, false, &revs);
    drive(conns, measured, args.clients).await
}

/// Runs `clients` workers, worker j on connection j mod len, until `shared.total` requests.
async fn drive(conns: &[Client], shared: Shared, clients: usize) -> anyhow::Result<Report> {
    let (op, total) = (shared.op, shared.total);
    let shared = Arc::new(shared);
    let per_worker = usize::try_from(total)? / clients + 1;
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for j in 0..clients {
        let worker = Worker {
            kv: conns[j % conns.len()].kv_client(),
            // Seeded by index: the same flags replay the same key sequence.
            rng: StdRng::seed_from_u64(j as u64),
        };
        workers.spawn(worker.run(shared.clone(), per_worker));
    }
    let mut latencies = Vec::with_capacity(usize::try_from(total)?);
    let mut errors = 0;
    while let Some(done) = workers.join_next().await {
        let (mut lat, errs) = done.context("bench worker panicked")?;
        latencies.append(&mut lat);
        errors += errs;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    assert_eq!(ok + errors, total, "each ticket below total is issued once");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(Report {
        op,
        clients,
        conns: conns.len(),
        total,
        ok,
        errors,
        elapsed_s: elapsed.as_secs_f64(),
        throughput: ok as f64 / elapsed.as_secs_f64(),
        p50_ms: ms(percentile(&latencies, 500)),
        p99_ms: ms(percentile(&latencies, 990)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
        first_error: shared.first_error.get().cloned(),
    })
}

/// Nearest-rank percentile of `sorted`, `per_mille` in 0..=1000 (integer, so exact).
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * per_mille).div_ceil(1000).max(1);
    sorted[rank - 1]
}

/// One closed-loop client.
struct Worker {
    kv: KvClient,
    rng: StdRng,
}

impl Worker {
    /// Issues requests until the tickets run out; returns successful latencies and errors.
    async fn run(mut self, shared: Arc<Shared>, capacity: usize) -> (Vec<Duration>, u64) {
        let mut latencies = Vec::with_capacity(capacity);
        let mut errors = 0;
        loop {
            let ticket = shared.next.fetch_add(1, Ordering::Relaxed);
            if ticket >= shared.total {
                return (latencies, errors);
            }
            let index = if shared.sequential { ticket } else { self.rng.gen_range(0..shared.args.key_space) };
            let start = Instant::now();
            match self.issue(&shared, index).await {
                Ok(()) => latencies.push(start.elapsed()),
                Err(e) => {
                    errors += 1;
                    let _ = shared.first_error.set(e.to_string());
                }
            }
        }
    }

    async fn issue(&mut self, shared: &Shared, index: u64) -> Result<(), etcd_client::Error> {
        let key = shared.key(index);
        match shared.op {
            Op::Put => {
                let resp = self.kv.put(key, shared.value.clone(), None).await?;
                shared.saw(index, resp.header().map_or(0, |h| h.revision()));
            }
            Op::Range => {
                let options = match shared.args.consistency {
                    Consistency::L => None,
                    Consistency::S => Some(GetOptions::new().with_serializable()),
                };
                self.kv.get(key, options).await?;
            }
            Op::Txn => {
                let seen = shared.revs[index as usize].load(Ordering::Relaxed);
                let txn = Txn::new()
                    .when([Compare::mod_revision(key.clone(), CompareOp::Equal, seen)])
                    .and_then([TxnOp::put(key.clone(), shared.value.clone(), None)])
                    .or_else([TxnOp::get(key, None)]);
                let resp = self.kv.txn(txn).await?;
                let now = if resp.succeeded() {
                    resp.header().map_or(0, |h| h.revision())
                } else {
                    match resp.op_responses().first() {
                        Some(TxnOpResponse::Get(get)) => get.kvs().first().map_or(0, |kv| kv.mod_revision()),
                        _ => 0,
                    }
                };
                shared.saw(index, now);
            }
            Op::All => unreachable!("run expands --op all into its ops"),
        }
        Ok(())
    }
}

fn print_report(r: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    let op = format!("{:?}", r.op).to_lowercase();
    let (c, n, t, e) = (r.clients, r.conns, r.total, r.errors);
    let (s, tp, p50, p99, max) = (r.elapsed_s, r.throughput, r.p50_ms, r.p99_ms, r.max_ms);
    println!("{op:<6} {c:>7} {n:>5} {t:>7} {e:>6} {s:>9.2} {tp:>9.0} {p50:>8.2} {p99:>8.2} {max:>8.2}");
    if let Some(err) = &r.first_error {
        eprintln!("{op}: first error: {err}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn args(flags: &str) -> BenchArgs {
        let argv = std::iter::once("bench").chain(flags.split_whitespace());
        Cli::try_parse_from(argv).expect("test flags parse").bench
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let sorted: Vec<_> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 500), Duration::from_millis(100));
        assert_eq!(percentile(&sorted, 990), Duration::from_millis(198));
        assert_eq!(percentile(&sorted[..1], 990), Duration::from_millis(1));
        assert_eq!(percentile(&[], 500), Duration::ZERO);
    }

    #[test]
    fn conns_default_and_key_space_bound() {
        assert_eq!(validate(&args("")).unwrap(), 16);
        assert_eq!(validate(&args("--clients 4")).unwrap(), 4);
        assert_eq!(validate(&args("--clients 128")).unwrap(), 16);
        assert!(validate(&args("--clients 4 --conns 5")).is_err());
        assert!(validate(&args("--key-size 2 --key-space 101")).is_err());
    }

    /// A running etcd, killed on drop (before its data directory is removed).
    struct Etcd {
        child: Child,
        _dir: tempfile::TempDir,
    }

    impl Drop for Etcd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        listener.local_addr().expect("bound socket has an address").port()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bench_reports_every_request_against_real_etcd() {
        if Command::new("etcd").arg("--version").output().is_err() {
            println!("skipping: etcd not on PATH");
            return;
        }
        let dir = tempfile::tempdir().expect("create temp dir");
        let url = format!("http://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let flags = format!(
            "--listen-client-urls {url} --advertise-client-urls {url} --listen-peer-urls {peer} \
             --initial-advertise-peer-urls {peer} --initial-cluster default={peer}"
        );
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(dir.path())
            .args(flags.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd");
        let _etcd = Etcd { child, _dir: dir };

        let args = args(&format!("--endpoints {url} --clients 4 --total 300 --key-space 50"));
        let deadline = Instant::now() + Duration::from_secs(20);
        let conns = loop {
            match connect(&args.endpoints, &args.tls, 2).await {
                Ok(conns) => break conns,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("etcd did not come up: {e:#}"),
            }
        };
        for op in [Op::Put, Op::Range, Op::Txn] {
            let report = run_op(&conns, &args, op).await.expect("bench runs");
            assert_eq!(report.errors, 0, "{op:?}: {:?}", report.first_error);
            assert_eq!(report.ok, 300, "{op:?}");
            assert!(report.throughput > 0.0, "{op:?}");
            assert!(report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
        }
        // The untimed pre-population wrote the whole key space, and nothing outside it.
        let count_all = GetOptions::new().with_all_keys().with_count_only();
        let resp = conns[0].kv_client().get("", Some(count_all)).await;
        assert_eq!(resp.expect("count keys").count(), 50);
    }
}
