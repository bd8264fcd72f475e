//! The history of a run: every operation a client attempted, when, and what came of it.
//!
//! One [`Op`] is one client call, written once when its outcome is known, so a history is
//! a list of completed records rather than Jepsen's separate invoke/complete events. Times
//! are monotonic nanoseconds since the run started, taken by the client around the call.
//!
//! Invariants a well-formed history keeps (checked by [`History::validate`]):
//! - `invoke_ns <= complete_ns` for every op;
//! - a process runs one op at a time: the ops of one `process` do not overlap in time.
//!
//! Outcomes follow Jepsen: [`Outcome::Ok`] happened, with its result; [`Outcome::Fail`]
//! definitely did not happen (for a compare-and-set, the compare failed, so nothing was
//! written); [`Outcome::Info`] is indeterminate (timeout, lost connection): it may or may not
//! have happened, and for linearizability its completion is "never", whatever
//! `complete_ns` says (that field then only records when the client gave up).
//!
//! Values are `i64`: workloads write unique integers (as decimal text in the store), which
//! keeps models hashable and histories small. The file form is JSON lines, one op a line,
//! so a run folder's `history.jsonl` can be checked again offline.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::error::HistoryError;

/// A value stored under a key (workloads write unique integers).
pub type Value = i64;

/// A lease ID, chosen by the client when it grants the lease.
pub type LeaseId = i64;

/// What the client asked for. `key` lives on [`Op`]; these are the arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Call {
    /// Read the key: `Ret::Value` (or `Ret::Versioned` with its mod_revision).
    Read,
    /// Put `value`: `Ret::Done`, or `Ret::Revision` with the revision it created.
    Write { value: Value },
    /// Delete the key.
    Delete,
    /// Put `new` if the current value is `expected` (`None`: the key is absent).
    Cas { expected: Option<Value>, new: Value },
    /// Put `value` if the key's mod_revision is `revision` (0: absent), as etcd's Txn does.
    CasRevision { revision: u64, value: Value },
    /// Add a unique element to the set named by the key.
    Add { element: Value },
    /// Read the whole set: `Ret::Elements`.
    ReadSet,
    /// Grant a lease with this ID and TTL.
    LeaseGrant { lease: LeaseId, ttl_ms: u64 },
    /// Refresh a lease. `Fail` means the server said the lease is gone.
    LeaseKeepAlive { lease: LeaseId },
    /// Revoke a lease (its keys are deleted).
    LeaseRevoke { lease: LeaseId },
    /// The client stops refreshing this lease from now on (a marker, always `Ok`).
    LeaseAbandon { lease: LeaseId },
    /// Put `value` attached to `lease`.
    PutLeased { value: Value, lease: LeaseId },
    /// A watcher (the op's process) opened or reopened its stream from `from_revision`.
    WatchStart { from_revision: u64 },
    /// A watcher received one event (invoke = complete = when it arrived).
    WatchEvent { revision: u64, kind: EventKind, value: Option<Value> },
    /// A workload's own observation, as JSON its checker reads (e.g. the pods the
    /// control-plane workload listed); empty when the observation failed.
    Observe { data: String },
}

/// Kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Put,
    Delete,
}

/// What an `Ok` op returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ret {
    /// Nothing worth keeping.
    Done,
    /// A read's value, `None` when the key was absent.
    Value(Option<Value>),
    /// A read's value with the key's mod_revision (0 when absent).
    Versioned { value: Option<Value>, revision: u64 },
    /// The revision a write created.
    Revision(u64),
    /// A set read's elements, in the order the store returned them.
    Elements(Vec<Value>),
}

/// How an op ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened and returned this.
    Ok(Ret),
    /// It definitely did not happen.
    Fail,
    /// Unknown: it may or may not have happened, at any time after its invoke.
    Info,
}

/// One client call and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Op {
    /// The client (Jepsen's process) that made the call; one op at a time per process.
    pub process: u32,
    /// The key (register, set name, lease key); empty when the call has none.
    #[serde(default)]
    pub key: String,
    pub call: Call,
    /// Nanoseconds since the run started, just before the call was sent.
    pub invoke_ns: u64,
    /// Nanoseconds since the run started, when the outcome was known (or the client gave up).
    pub complete_ns: u64,
    pub outcome: Outcome,
}

impl Op {
    /// True when the op happened and returned.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }

    /// The op's result when it is `Ok`.
    pub fn ret(&self) -> Option<&Ret> {
        match &self.outcome {
            Outcome::Ok(ret) => Some(ret),
            Outcome::Fail | Outcome::Info => None,
        }
    }
}

/// A whole run's operations, in the order they were recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn new(ops: Vec<Op>) -> Self {
        Self { ops }
    }

    /// Checks the invariants in the module doc; the first broken one is the error.
    pub fn validate(&self) -> Result<(), HistoryError> {
        for (index, op) in self.ops.iter().enumerate() {
            if op.invoke_ns > op.complete_ns {
                return Err(HistoryError::CompletesBeforeInvoke { index });
            }
        }
        let mut by_process: Vec<(u32, u64, u64, usize)> =
            self.ops.iter().enumerate().map(|(i, op)| (op.process, op.invoke_ns, op.complete_ns, i)).collect();
        by_process.sort_unstable();
        for pair in by_process.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            // Strict: two ops of one process may touch (one completes as the next is sent).
            if a.0 == b.0 && b.1 < a.2 {
                return Err(HistoryError::ProcessOverlap { process: a.0, first: a.3, second: b.3 });
            }
        }
        Ok(())
    }

    /// Writes one JSON object per op per line.
    pub fn write_jsonl(&self, mut out: impl Write) -> Result<(), HistoryError> {
        for op in &self.ops {
            serde_json::to_writer(&mut out, op).map_err(|source| HistoryError::Encode { source })?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Reads JSON lines written by [`History::write_jsonl`]; blank lines are skipped.
    pub fn read_jsonl(input: impl BufRead) -> Result<Self, HistoryError> {
        let mut ops = Vec::new();
        for (index, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let op = serde_json::from_str(&line).map_err(|source| HistoryError::Parse { line: index + 1, source })?;
            ops.push(op);
        }
        Ok(Self { ops })
    }
}
