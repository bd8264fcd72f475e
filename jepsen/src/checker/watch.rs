//! The watch checker: every watcher sees every revision of its range exactly once, in
//! order, with the right values, across reconnects.
//!
//! Inputs, all from the history: a watcher is a process with [`Call::WatchStart`] ops (the
//! op's key is the watched prefix) each followed by the [`Call::WatchEvent`]s it received
//! (the event's key on the op). The **reference** maps `(revision, key)` to what happened
//! there, from acknowledged writes that report their revision, from reads that report a
//! mod_revision (the final state, among others), and from every watcher's events.
//!
//! Rules, per watcher, walking its ops in time order:
//! - events never go back in revision and never repeat a `(revision, key)`;
//! - events of a stream are at or after the revision it started from;
//! - a reconnect resumes right after the last revision seen (or earlier, never later);
//! - each event equals the reference's entry for its `(revision, key)`;
//! - every reference entry under the prefix whose revision lies in a stream's range (from
//!   its start to its last event) was seen by that stream or an earlier one (**missed**).
//!
//! The verdict lists per watcher the first violation (lowest revision) and how many there
//! were. Writes reporting two different things at one `(revision, key)` are conflicts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Validity, Verdict};
use crate::history::{Call, EventKind, History, Op, Outcome, Ret, Value};

/// What happened at one `(revision, key)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub value: Option<Value>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "violation", rename_all = "snake_case")]
pub enum Violation {
    Duplicate { revision: u64, key: String },
    OutOfOrder { revision: u64, key: String, after: u64 },
    BeforeStart { revision: u64, key: String, from_revision: u64 },
    WrongEvent { revision: u64, key: String, expected: Event, got: Event },
    Missed { revision: u64, key: String },
    ResumeSkipped { after: u64, from_revision: u64 },
}

impl Violation {
    fn revision(&self) -> u64 {
        match self {
            Violation::Duplicate { revision, .. }
            | Violation::OutOfOrder { revision, .. }
            | Violation::BeforeStart { revision, .. }
            | Violation::WrongEvent { revision, .. }
            | Violation::Missed { revision, .. } => *revision,
            Violation::ResumeSkipped { after, .. } => after + 1,
        }
    }
}

/// What was found for one watcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatcherReport {
    pub watcher: u32,
    pub streams: usize,
    pub events: usize,
    pub violations: usize,
    pub first_violation: Option<Violation>,
}

/// The details of a watch verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    pub reference_entries: usize,
    /// `(revision, key)` pairs that acknowledged writes or reads disagree on.
    pub conflicts: Vec<(u64, String)>,
    pub watchers: Vec<WatcherReport>,
}

type Reference = BTreeMap<(u64, String), Event>;

/// Checks every watcher of `history`.
pub fn check(history: &History) -> Verdict {
    let (mut reference, conflicts) = acknowledged(history);
    let mut watchers: BTreeMap<u32, Vec<&Op>> = BTreeMap::new();
    for op in history.ops.iter().filter(|op| op.is_ok()) {
        if matches!(op.call, Call::WatchStart { .. } | Call::WatchEvent { .. }) {
            watchers.entry(op.process).or_default().push(op);
        }
    }
    for ops in watchers.values_mut() {
        ops.sort_by_key(|op| op.invoke_ns);
        for op in ops.iter() {
            if let Some((revision, event)) = event_of(op) {
                reference.entry((revision, op.key.clone())).or_insert(event);
            }
        }
    }
    let reports: Vec<WatcherReport> = watchers.iter().map(|(&w, ops)| check_watcher(w, ops, &reference)).collect();
    let valid = if !conflicts.is_empty() || reports.iter().any(|r| r.violations > 0) {
        Validity::Invalid
    } else if reports.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    Verdict::new("watch", valid, Details { reference_entries: reference.len(), conflicts, watchers: reports })
}

/// The reference entries acknowledged writes and versioned reads establish, and conflicts.
fn acknowledged(history: &History) -> (Reference, Vec<(u64, String)>) {
    let mut reference = Reference::new();
    let mut conflicts = Vec::new();
    for op in &history.ops {
        let entry = match (&op.call, &op.outcome) {
            (
                Call::Write { value }
                | Call::Cas { new: value, .. }
                | Call::CasRevision { value, .. }
                | Call::PutLeased { value, .. },
                Outcome::Ok(Ret::Revision(rev)),
            ) => (*rev, Event { kind: EventKind::Put, value: Some(*value) }),
            (Call::Delete, Outcome::Ok(Ret::Revision(rev))) => (*rev, Event { kind: EventKind::Delete, value: None }),
            (Call::Read, Outcome::Ok(Ret::Versioned { value: Some(value), revision })) if *revision > 0 => {
                (*revision, Event { kind: EventKind::Put, value: Some(*value) })
            }
            _ => continue,
        };
        let key = (entry.0, op.key.clone());
        match reference.get(&key) {
            Some(known) if *known != entry.1 => conflicts.push(key),
            Some(_) => {}
            None => {
                reference.insert(key, entry.1);
            }
        }
    }
    (reference, conflicts)
}

fn event_of(op: &Op) -> Option<(u64, Event)> {
    match op.call {
        Call::WatchEvent { revision, kind, value } => Some((revision, Event { kind, value })),
        _ => None,
    }
}

/// One watcher's walk; see the module doc for the rules.
fn check_watcher(watcher: u32, ops: &[&Op], reference: &Reference) -> WatcherReport {
    let mut violations = Vec::new();
    let mut seen: BTreeSet<(u64, &str)> = BTreeSet::new();
    let mut last: Option<u64> = None;
    // The current stream: (prefix, from_revision, last revision it delivered).
    let mut stream: Option<(&str, u64, Option<u64>)> = None;
    let mut streams = 0;
    for op in ops {
        if let Call::WatchStart { from_revision } = op.call {
            if let Some(after) = last.filter(|&l| from_revision > l + 1) {
                violations.push(Violation::ResumeSkipped { after, from_revision });
            }
            missed_in_stream(stream, &seen, reference, &mut violations);
            stream = Some((op.key.as_str(), from_revision, None));
            streams += 1;
            continue;
        }
        let Some((revision, got)) = event_of(op) else { continue };
        let key = op.key.clone();
        if let Some((_, from_revision, _)) = stream.filter(|s| revision < s.1) {
            violations.push(Violation::BeforeStart { revision, key: key.clone(), from_revision });
        }
        if let Some(after) = last.filter(|&l| revision < l) {
            violations.push(Violation::OutOfOrder { revision, key: key.clone(), after });
        }
        if !seen.insert((revision, op.key.as_str())) {
            violations.push(Violation::Duplicate { revision, key: key.clone() });
        }
        if let Some(&expected) = reference.get(&(revision, key.clone())).filter(|e| **e != got) {
            violations.push(Violation::WrongEvent { revision, key, expected, got });
        }
        last = Some(last.map_or(revision, |l| l.max(revision)));
        if let Some(s) = stream.as_mut() {
            s.2 = Some(s.2.map_or(revision, |l| l.max(revision)));
        }
    }
    missed_in_stream(stream, &seen, reference, &mut violations);
    let events = ops.iter().filter(|op| matches!(op.call, Call::WatchEvent { .. })).count();
    let count = violations.len();
    let first_violation = violations.into_iter().enumerate().min_by_key(|(i, v)| (v.revision(), *i)).map(|(_, v)| v);
    WatcherReport { watcher, streams, events, violations: count, first_violation }
}

/// Adds a `Missed` for each reference entry under the stream's prefix, within its range,
/// that the watcher never saw.
fn missed_in_stream(
    stream: Option<(&str, u64, Option<u64>)>,
    seen: &BTreeSet<(u64, &str)>,
    reference: &Reference,
    violations: &mut Vec<Violation>,
) {
    let Some((prefix, from, Some(to))) = stream else { return };
    if from > to {
        return;
    }
    for ((revision, key), _) in reference.range((from, String::new())..(to + 1, String::new())) {
        if key.starts_with(prefix) && !seen.contains(&(*revision, key.as_str())) {
            violations.push(Violation::Missed { revision: *revision, key: key.clone() });
        }
    }
}
