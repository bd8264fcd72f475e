//! The run folder: what a run leaves on disk, and the checking step that turns a history
//! into verdicts (also used to check a saved folder again, `flotilla-jepsen check`).
//!
//! Files: `run.json` (the [`RunConfig`]), `history.jsonl` (one op a line),
//! `timeline.jsonl` (one [`FaultInterval`] a line; empty without faults), `verdicts.json`
//! (the [`Summary`]), and `report.html` ([`super::report`]).
//!
//! Invariants: each workload is checked only on its own ops ([`Kind::owns`]) by its own
//! checkers, and verdicts are named `<workload>/<checker>`; a history that breaks the
//! history invariants is itself an `Invalid` verdict (`history/well_formed`); the exit code
//! is 0 only when the summary is `Valid` — `Unknown` is not valid.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use super::{FaultInterval, RunConfig};
use crate::checker::{check_all, Summary, Validity, Verdict};
use crate::history::History;
use crate::workload::Kind;

/// Checks each workload's part of `history` with its checkers.
pub fn check(history: &History, workloads: &[Kind]) -> Summary {
    let mut verdicts = Vec::new();
    if let Err(e) = history.validate() {
        verdicts.push(Verdict::new("history/well_formed", Validity::Invalid, e.to_string()));
    }
    for &kind in workloads {
        let part = History::new(history.ops.iter().filter(|op| kind.owns(op)).cloned().collect());
        for mut verdict in check_all(&part, &kind.checkers()).verdicts {
            verdict.checker = format!("{}/{}", kind.name(), verdict.checker);
            verdicts.push(verdict);
        }
    }
    Summary { valid: Validity::all(verdicts.iter().map(|v| v.valid)), verdicts }
}

/// The process exit code for `summary` and the line that explains it.
pub fn exit_code(summary: &Summary) -> (i32, String) {
    let names = |want: Validity| {
        summary.verdicts.iter().filter(|v| v.valid == want).map(|v| v.checker.as_str()).collect::<Vec<_>>().join(", ")
    };
    match summary.valid {
        Validity::Valid => (0, format!("valid: all {} checks passed", summary.verdicts.len())),
        Validity::Invalid => (1, format!("INVALID: {} found an anomaly (see verdicts.json)", names(Validity::Invalid))),
        Validity::Unknown => (
            1,
            format!("UNKNOWN: {} could not decide; an undecided run is not a passing run", names(Validity::Unknown)),
        ),
    }
}

pub fn write_config(dir: &Path, config: &RunConfig) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(config)?;
    std::fs::write(dir.join("run.json"), json).context("writing run.json")
}

pub fn read_config(dir: &Path) -> anyhow::Result<RunConfig> {
    let raw = std::fs::read(dir.join("run.json")).with_context(|| format!("reading {}/run.json", dir.display()))?;
    serde_json::from_slice(&raw).context("parsing run.json")
}

/// Writes `history.jsonl`, `timeline.jsonl` and `verdicts.json`.
pub fn write_results(
    dir: &Path,
    history: &History,
    timeline: &[FaultInterval],
    summary: &Summary,
) -> anyhow::Result<()> {
    let mut out = BufWriter::new(File::create(dir.join("history.jsonl")).context("creating history.jsonl")?);
    history.write_jsonl(&mut out).context("writing history.jsonl")?;
    out.flush()?;
    let mut out = BufWriter::new(File::create(dir.join("timeline.jsonl")).context("creating timeline.jsonl")?);
    for interval in timeline {
        serde_json::to_writer(&mut out, interval)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    write_verdicts(dir, summary)
}

pub fn write_verdicts(dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    std::fs::write(dir.join("verdicts.json"), serde_json::to_vec_pretty(summary)?).context("writing verdicts.json")
}

pub fn read_history(dir: &Path) -> anyhow::Result<History> {
    let file = File::open(dir.join("history.jsonl")).context("opening history.jsonl")?;
    History::read_jsonl(BufReader::new(file)).context("reading history.jsonl")
}

pub fn read_timeline(dir: &Path) -> anyhow::Result<Vec<FaultInterval>> {
    let raw = std::fs::read_to_string(dir.join("timeline.jsonl")).context("reading timeline.jsonl")?;
    let lines = raw.lines().filter(|l| !l.trim().is_empty());
    lines.map(|l| serde_json::from_str(l).context("parsing timeline.jsonl")).collect()
}

/// Checks a saved run folder again; rewrites `verdicts.json` and `report.html`.
pub fn recheck(dir: &Path) -> anyhow::Result<Summary> {
    let config = read_config(dir)?;
    let history = read_history(dir)?;
    let timeline = read_timeline(dir)?;
    let summary = check(&history, &config.workloads);
    write_verdicts(dir, &summary)?;
    super::report::write(dir, &history, &timeline, &summary)?;
    Ok(summary)
}
