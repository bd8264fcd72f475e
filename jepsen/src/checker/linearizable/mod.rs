//! Linearizability, per key, by the WGL search of [`wgl`] against a [`model::Model`].
//!
//! Data flow: the history is split by key (keys are independent registers, so the whole is
//! linearizable iff every key is — P-compositionality); each key keeps the ops its model
//! accepts, minus `Fail` ops (they did not happen) and indeterminate read-only ops (they
//! change nothing); each key is searched under the step budget, all keys under one deadline.
//!
//! Verdict: `Invalid` when some key has no linearization, else `Unknown` when some key ran
//! out of budget (or there was no key at all), else `Valid`. For each invalid key the details carry a [`Window`]: the
//! longest linearizable prefix the search found (its tail and the state after it), the op
//! that could not be placed after it, and every op concurrent with that one — the smallest
//! slice of history a human needs to see the anomaly.

pub mod model;
pub mod wgl;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::model::{Model, Register, VersionedRegister};
use self::wgl::{Budget, Failure, Search};
use super::{Validity, Verdict};
use crate::history::{History, Op, Outcome};

/// Which sequential specification the registers follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegisterKind {
    /// Read/write/delete/CAS on values ([`Register`]).
    #[default]
    Value,
    /// The same with etcd mod_revisions and CAS on them ([`VersionedRegister`]).
    Versioned,
}

/// Settings of the linearizability checker.
#[derive(Debug, Clone)]
pub struct Config {
    pub model: RegisterKind,
    /// Search steps allowed per key before that key is `Unknown`.
    pub max_steps_per_key: u64,
    /// Wall-clock limit for the whole check; keys not finished by then are `Unknown`.
    pub time_limit: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        // Ten million steps is a few seconds for one key: far more than a sane per-key
        // history needs, small enough that a pathological one ends in an honest Unknown.
        Self { model: RegisterKind::Value, max_steps_per_key: 10_000_000, time_limit: Some(Duration::from_secs(300)) }
    }
}

/// Invalid keys whose windows are written out in full; the rest are only counted.
const MAX_WINDOWS: usize = 20;

/// Ops of the linearizable prefix shown before the stuck op.
const PREFIX_TAIL: usize = 8;

/// Concurrent ops listed in a window (indeterminate ops overlap everything after their
/// invoke, so a run with many timeouts could otherwise list thousands).
const MAX_CONCURRENT: usize = 64;

/// An op in a [`Window`], with whether the deepest linearization placed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowOp {
    #[serde(flatten)]
    pub op: Op,
    pub linearized: bool,
}

/// The minimal non-linearizable window of one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub key: String,
    /// Length of the longest linearizable prefix found.
    pub prefix_len: usize,
    /// Its last ops, in linearization order.
    pub prefix_tail: Vec<Op>,
    /// The model state after the prefix.
    pub state: serde_json::Value,
    /// The op that could not be linearized after the prefix.
    pub stuck: Op,
    /// How many ops overlap the stuck op's interval (indeterminate ones reach "never").
    pub concurrent_count: usize,
    /// The first [`MAX_CONCURRENT`] of them, in history order.
    pub concurrent: Vec<WindowOp>,
}

/// The details of a linearizability verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Details {
    pub keys: usize,
    pub ops: usize,
    pub invalid_keys: usize,
    /// Windows of the first [`MAX_WINDOWS`] invalid keys, in key order.
    pub windows: Vec<Window>,
    /// Keys whose search ran out of budget.
    pub unknown_keys: Vec<String>,
}

/// Checks every key of `history` with the model `config` names.
pub fn check(history: &History, config: &Config) -> Verdict {
    match config.model {
        RegisterKind::Value => check_with(&Register, history, config),
        RegisterKind::Versioned => check_with(&VersionedRegister, history, config),
    }
}

/// Checks every key of `history` against `model`.
pub fn check_with<M: Model>(model: &M, history: &History, config: &Config) -> Verdict {
    let deadline = config.time_limit.map(|limit| Instant::now() + limit);
    let budget = Budget { max_steps: config.max_steps_per_key, deadline };
    let by_key = partition(model, history);
    let mut details = Details {
        keys: by_key.len(),
        ops: by_key.values().map(Vec::len).sum(),
        invalid_keys: 0,
        windows: Vec::new(),
        unknown_keys: Vec::new(),
    };
    for (key, ops) in &by_key {
        match wgl::search(model, ops, budget) {
            Search::Linearizable => {}
            Search::Exceeded { .. } => details.unknown_keys.push(key.to_string()),
            Search::NotLinearizable(failure) => {
                details.invalid_keys += 1;
                if details.windows.len() < MAX_WINDOWS {
                    details.windows.push(window(key, ops, &failure));
                }
            }
        }
    }
    let valid = if details.invalid_keys > 0 {
        Validity::Invalid
    } else if !details.unknown_keys.is_empty() || details.keys == 0 {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    Verdict::new("linearizable", valid, details)
}

/// The ops each key's search must consider, by key.
fn partition<'h, M: Model>(model: &M, history: &'h History) -> BTreeMap<&'h str, Vec<&'h Op>> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        let relevant = model.accepts(&op.call)
            && match op.outcome {
                Outcome::Ok(_) => true,
                Outcome::Fail => false,
                Outcome::Info => !model.is_read_only(&op.call),
            };
        if relevant {
            by_key.entry(op.key.as_str()).or_default().push(op);
        }
    }
    by_key
}

fn window<S: Serialize>(key: &str, ops: &[&Op], failure: &Failure<S>) -> Window {
    let stuck = ops[failure.stuck];
    let mut linearized = vec![false; ops.len()];
    for &i in &failure.prefix {
        linearized[i] = true;
    }
    let ends = |op: &Op| if op.is_ok() { op.complete_ns } else { u64::MAX };
    let overlapping: Vec<usize> = (0..ops.len())
        .filter(|&i| i != failure.stuck && ops[i].invoke_ns <= ends(stuck) && stuck.invoke_ns <= ends(ops[i]))
        .collect();
    let concurrent = overlapping
        .iter()
        .take(MAX_CONCURRENT)
        .map(|&i| WindowOp { op: ops[i].clone(), linearized: linearized[i] })
        .collect();
    let tail_from = failure.prefix.len().saturating_sub(PREFIX_TAIL);
    Window {
        key: key.to_string(),
        prefix_len: failure.prefix.len(),
        prefix_tail: failure.prefix[tail_from..].iter().map(|&i| ops[i].clone()).collect(),
        state: serde_json::to_value(&failure.state).unwrap_or(serde_json::Value::Null),
        stuck: stuck.clone(),
        concurrent_count: overlapping.len(),
        concurrent,
    }
}
