//! The CI preset of the harness, end to end through the `flotilla-jepsen` binary: real
//! `flotilla server` processes in network namespaces (root), seeded partitions, kills and
//! pauses, the register, set and watch workloads, and the checkers.
//!
//! - A healthy cluster passes (exit 0) with faults actually injected.
//! - The self-check: servers started with `--unsafe-local-reads` (linearizable reads served
//!   from local state, no read-index) are caught (exit 1, the register checker Invalid).
//!   A checker that never fails proves nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `flotilla` binary under test (next to the test executable, or `$FLOTILLA_BIN`).
fn flotilla_bin() -> PathBuf {
    flotilla_jepsen::cluster::default_binary().expect("the flotilla binary")
}

/// Run the binary with `args` in a fresh run folder; its exit code and the folder.
fn run(name: &str, args: &[&str]) -> (Option<i32>, tempfile::TempDir) {
    let dir = tempfile::Builder::new().prefix(&format!("flotilla-jepsen-{name}-")).tempdir().expect("tempdir");
    let status = Command::new(env!("CARGO_BIN_EXE_flotilla-jepsen"))
        .arg("run")
        .args(args)
        .arg("--run-dir")
        .arg(dir.path().join("run"))
        .env("FLOTILLA_BIN", flotilla_bin())
        .status()
        .expect("flotilla-jepsen runs");
    (status.code(), dir)
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join("run").join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_ci_preset_passes_with_faults_injected() {
    let args = [
        "--time",
        "40",
        "--workload",
        "register,set,watch",
        "--nemesis",
        "partition,kill,pause",
        "--fault-seconds",
        "3-6",
        "--quiet-seconds",
        "2-4",
        "--seed",
        "1",
    ];
    let (code, dir) = run("preset", &args);
    let verdicts = read(dir.path(), "verdicts.json");
    assert_eq!(code, Some(0), "every checker valid: {verdicts}");
    let timeline = read(dir.path(), "timeline.jsonl");
    assert!(timeline.lines().count() >= 4, "faults were injected and healed:\n{timeline}");
    assert!(read(dir.path(), "report.html").contains("<svg"), "the report has its charts");
}

#[test]
fn unsafe_local_reads_are_caught() {
    let args = ["--time", "30", "--workload", "register", "--nemesis", "partition", "--seed", "11"];
    let (code, dir) = run("selfcheck", &[&args[..], &["--unsafe-local-reads"]].concat());
    let verdicts = read(dir.path(), "verdicts.json");
    assert_eq!(code, Some(1), "stale reads must be found: {verdicts}");
    assert!(verdicts.contains("\"invalid\""), "{verdicts}");
}
