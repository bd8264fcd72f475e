//! The workloads and the runner against a real 3-replica `flotilla up` cluster on loopback.
//!
//! Needs the server binary: `cargo build --bin flotilla` (or `$FLOTILLA_BIN`). Each test
//! starts its own cluster in its own temp folder (prefix `flotilla-jepsen-test-`), and
//! stops it and removes the folder even when an assertion fails.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use flotilla_jepsen::history::{Call, History, Op, Outcome, Ret};
use flotilla_jepsen::run::local::LocalCluster;
use flotilla_jepsen::run::{folder, Target};
use flotilla_jepsen::workload::{self, cancel_pair, Clock, Ctx, Kind, Opts, Stats};
use flotilla_jepsen::{check_all, Summary, Validity};

/// Load phase of each workload test.
const LOAD: Duration = Duration::from_secs(10);

/// The `flotilla` binary under test (next to the test executable, or `$FLOTILLA_BIN`).
fn flotilla_bin() -> PathBuf {
    flotilla_jepsen::cluster::default_binary().expect("the flotilla binary")
}

/// A temp folder removed on drop (also when the test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("flotilla-jepsen-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test folder");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `kind` for [`LOAD`] against a fresh cluster; returns its history.
async fn run_workload(kind: Kind) -> History {
    let tmp = TempDir::new(kind.name());
    let cluster = LocalCluster::start(&flotilla_bin(), &tmp.0.join("cluster"), 3, &[]).await.expect("cluster starts");
    let (handle, cancel) = cancel_pair();
    let ctx = Ctx { clock: Clock::start(), stats: Arc::new(Stats::default()), cancel };
    let opts = Opts { seed: 7, ..Opts::default() };
    let task = tokio::spawn(workload::run(kind, cluster.endpoints(), opts, ctx));
    tokio::time::sleep(LOAD).await;
    handle.cancel();
    let history = task.await.expect("workload runs");
    cluster.stop().await.expect("cluster stops");
    history.validate().expect("the history is well formed");
    history
}

fn count(history: &History, f: impl Fn(&Op) -> bool) -> usize {
    history.ops.iter().filter(|op| f(op)).count()
}

fn assert_valid(history: &History, kind: Kind) -> Summary {
    let summary = check_all(history, &kind.checkers());
    assert_eq!(summary.valid, Validity::Valid, "{:#?}", summary.verdicts);
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_history_is_linearizable_and_nontrivial() {
    let history = run_workload(Kind::Register).await;
    assert_valid(&history, Kind::Register);
    assert!(count(&history, Op::is_ok) >= 300, "too few ok ops: {}", count(&history, Op::is_ok));
    let cas = |op: &Op| matches!(op.call, Call::CasRevision { .. });
    assert!(count(&history, |op| cas(op) && op.is_ok()) > 0, "no CAS succeeded");
    assert!(count(&history, |op| cas(op) && op.outcome == Outcome::Fail) > 0, "no CAS failed");
    let reads_present =
        |op: &Op| matches!(op.ret(), Some(Ret::Versioned { value: Some(_), revision }) if *revision > 0);
    assert!(count(&history, reads_present) > 0, "no read saw a written value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_keeps_every_acknowledged_add() {
    let history = run_workload(Kind::Set).await;
    let summary = assert_valid(&history, Kind::Set);
    let report = &summary.verdicts[0].details[0];
    assert!(report["acknowledged"].as_u64().expect("count") >= 300, "{report}");
    assert_eq!(report["final_read"], report["acknowledged"], "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watchers_see_every_write_once_in_order() {
    let history = run_workload(Kind::Watch).await;
    let summary = assert_valid(&history, Kind::Watch);
    let writes = count(&history, |op| matches!(op.call, Call::Write { .. }) && op.is_ok());
    assert!(writes >= 100, "too few writes: {writes}");
    let watchers = summary.verdicts[0].details["watchers"].as_array().expect("watchers").clone();
    assert_eq!(watchers.len(), 3);
    for w in watchers {
        // Every acknowledged write is one event for every watcher (final catch-up included).
        assert!(w["events"].as_u64().expect("events") >= writes as u64, "{w}");
    }
}

/// A read inserted after a later write completed, returning the earlier write's value.
fn inject_stale_read(history: &mut History) {
    let writes: Vec<&Op> =
        history.ops.iter().filter(|op| matches!(op.ret(), Some(Ret::Revision(_))) && Kind::Register.owns(op)).collect();
    let (first, second) = writes
        .iter()
        .flat_map(|a| writes.iter().map(move |b| (*a, *b)))
        .find(|(a, b)| a.key == b.key && a.complete_ns < b.invoke_ns && matches!(a.call, Call::Write { .. }))
        .expect("two sequential writes on one key");
    let (Call::Write { value }, Some(Ret::Revision(revision))) = (&first.call, first.ret()) else { unreachable!() };
    let stale = Op {
        process: Kind::Register.process_base() + 500,
        key: first.key.clone(),
        call: Call::Read,
        invoke_ns: second.complete_ns + 1,
        complete_ns: second.complete_ns + 2,
        outcome: Outcome::Ok(Ret::Versioned { value: Some(*value), revision: *revision }),
    };
    history.ops.push(stale);
}

#[test]
fn the_binary_passes_a_valid_run_and_fails_a_doctored_one() {
    let tmp = TempDir::new("binary");
    let run_dir = tmp.0.join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_flotilla-jepsen"))
        .args(["run", "--local", "--nodes", "3", "--time", "5", "--workload", "register", "--seed", "3", "--run-dir"])
        .arg(&run_dir)
        .env("FLOTILLA_BIN", flotilla_bin())
        .status()
        .expect("flotilla-jepsen runs");
    assert_eq!(status.code(), Some(0), "a fault-free run is valid");
    let summary: Summary =
        serde_json::from_slice(&std::fs::read(run_dir.join("verdicts.json")).expect("verdicts.json")).expect("parses");
    assert_eq!(summary.valid, Validity::Valid);
    assert!(folder::read_timeline(&run_dir).expect("timeline.jsonl parses").is_empty());
    let report = std::fs::read_to_string(run_dir.join("report.html")).expect("report.html");
    assert!(report.contains("<svg") && report.contains("register/linearizable"), "report lacks charts or verdicts");
    let mut history = folder::read_history(&run_dir).expect("history.jsonl parses");
    assert!(count(&history, Op::is_ok) >= 100);

    inject_stale_read(&mut history);
    let summary = folder::check(&history, &[Kind::Register]);
    assert_eq!(summary.valid, Validity::Invalid, "{:#?}", summary.verdicts);
    assert_eq!(folder::exit_code(&summary).0, 1);
    let mut out = std::fs::File::create(run_dir.join("history.jsonl")).expect("rewriting history.jsonl");
    history.write_jsonl(&mut out).expect("writing the doctored history");
    let status = Command::new(env!("CARGO_BIN_EXE_flotilla-jepsen"))
        .args(["check", "--run-dir"])
        .arg(&run_dir)
        .status()
        .expect("flotilla-jepsen check runs");
    assert_eq!(status.code(), Some(1), "a stale read makes the run invalid");
    let report = std::fs::read_to_string(run_dir.join("report.html")).expect("report.html");
    assert!(report.contains("stuck"), "the report shows the non-linearizable window");
}

#[test]
fn unknown_verdicts_and_unavailable_nemeses_do_not_pass() {
    let summary = folder::check(&History::default(), &[Kind::Set]);
    assert_eq!(summary.valid, Validity::Unknown);
    let (code, message) = folder::exit_code(&summary);
    assert_eq!(code, 1);
    assert!(message.contains("UNKNOWN") && message.contains("set/set"), "{message}");
    let status = Command::new(env!("CARGO_BIN_EXE_flotilla-jepsen"))
        .args(["run", "--local", "--time", "1", "--nemesis", "partition", "--run-dir"])
        .arg(TempDir::new("nemesis").0.join("run"))
        .status()
        .expect("flotilla-jepsen runs");
    assert_eq!(status.code(), Some(2), "a nemesis the target cannot inject is an error, not a pass");
    let status = Command::new(env!("CARGO_BIN_EXE_flotilla-jepsen"))
        .args(["run", "--local", "--time", "1", "--unsafe-local-reads", "--run-dir"])
        .arg(TempDir::new("unsafe").0.join("run"))
        .env("FLOTILLA_BIN", flotilla_bin())
        .status()
        .expect("flotilla-jepsen runs");
    assert_eq!(status.code(), Some(2), "an unsafe mode the servers cannot be given is an error, not a pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leased_keys_live_while_kept_alive_and_go_after_abandon() {
    let history = run_workload(Kind::Lease).await;
    let summary = assert_valid(&history, Kind::Lease);
    assert!(summary.verdicts[0].details["reads_checked"].as_u64().expect("count") >= 20, "{:#?}", summary.verdicts);
    let abandoned: Vec<i64> = history
        .ops
        .iter()
        .filter_map(|op| match op.call {
            Call::LeaseAbandon { lease } => Some(lease),
            _ => None,
        })
        .collect();
    assert!(!abandoned.is_empty(), "no lease was abandoned");
    // Each abandoned lease's key was read once more after its deadline, and was gone.
    for lease in abandoned {
        let key = format!("{}l{lease}", Kind::Lease.prefix());
        let last = history.ops.iter().rev().find(|op| op.key == key && matches!(op.call, Call::Read));
        assert_eq!(last.and_then(Op::ret), Some(&Ret::Value(None)), "key {key} of abandoned lease {lease}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_final_set_read_pages_through_every_element() {
    let tmp = TempDir::new("paging");
    let cluster = LocalCluster::start(&flotilla_bin(), &tmp.0.join("cluster"), 3, &[]).await.expect("cluster starts");
    let mut client = etcd_client::Client::connect(cluster.endpoints(), None).await.expect("connects");
    for element in 0..25i64 {
        let key = format!("{}e{element}", workload::set::PREFIX);
        client.put(key, element.to_string(), None).await.expect("put");
    }
    client.put("jepsen/set0", "outside the prefix", None).await.expect("put");
    for page in [7, 25, 1000] {
        let mut got = workload::set::read_all(client.clone(), page).await.expect("read");
        got.sort_unstable();
        assert_eq!(got, (0..25).collect::<Vec<i64>>(), "page size {page}");
    }
    cluster.stop().await.expect("cluster stops");
}
