//! The set checker: unique adds, then one final read of the whole set.
//!
//! Per set (the op's key): the final read is the last `Ok` [`Call::ReadSet`] by completion
//! time. Against it:
//! - every `Ok` add must be present, else it is **lost**;
//! - no element may appear twice (**duplicated**);
//! - nothing may be present that no add ever attempted (**unexpected**), nor an add that
//!   definitely failed (**failed_present**);
//! - an indeterminate add may be present (**recovered**) or absent (**indeterminate_absent**),
//!   both fine.
//!
//! A set with adds but no successful final read is `Unknown`: nothing was checked; so is a
//! history without any set.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Validity, Verdict};
use crate::history::{Call, History, Op, Outcome, Ret, Value};

/// Elements listed per anomaly kind; the counts are always exact.
const MAX_LISTED: usize = 100;

/// What was found in one set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetReport {
    pub key: String,
    pub attempted: usize,
    pub acknowledged: usize,
    pub final_read: Option<usize>,
    pub lost_count: usize,
    pub lost: Vec<Value>,
    pub duplicated: Vec<Value>,
    pub unexpected: Vec<Value>,
    pub failed_present: Vec<Value>,
    pub recovered: usize,
    pub indeterminate_absent: usize,
}

impl SetReport {
    fn validity(&self) -> Validity {
        if self.final_read.is_none() {
            Validity::Unknown
        } else if self.lost_count > 0
            || !self.duplicated.is_empty()
            || !self.unexpected.is_empty()
            || !self.failed_present.is_empty()
        {
            Validity::Invalid
        } else {
            Validity::Valid
        }
    }
}

/// Checks every set of `history`.
pub fn check(history: &History) -> Verdict {
    let mut sets: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        if matches!(op.call, Call::Add { .. } | Call::ReadSet) {
            sets.entry(&op.key).or_default().push(op);
        }
    }
    let reports: Vec<SetReport> = sets.iter().map(|(key, ops)| check_one(key, ops)).collect();
    let valid =
        if reports.is_empty() { Validity::Unknown } else { Validity::all(reports.iter().map(SetReport::validity)) };
    Verdict::new("set", valid, reports)
}

fn check_one(key: &str, ops: &[&Op]) -> SetReport {
    let mut outcomes: BTreeMap<Value, &Outcome> = BTreeMap::new();
    for op in ops {
        if let Call::Add { element } = op.call {
            outcomes.insert(element, &op.outcome);
        }
    }
    let final_read = ops
        .iter()
        .filter_map(|op| match (&op.call, &op.outcome) {
            (Call::ReadSet, Outcome::Ok(Ret::Elements(elements))) => Some((op.complete_ns, elements)),
            _ => None,
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, elements)| elements);
    let mut report = SetReport {
        key: key.to_string(),
        attempted: outcomes.len(),
        acknowledged: outcomes.values().filter(|o| matches!(o, Outcome::Ok(_))).count(),
        final_read: final_read.map(Vec::len),
        ..SetReport::default()
    };
    let Some(elements) = final_read else {
        return report;
    };
    let mut present = BTreeSet::new();
    for &element in elements {
        if !present.insert(element) {
            report.duplicated.push(element);
            continue;
        }
        match outcomes.get(&element) {
            None => report.unexpected.push(element),
            Some(Outcome::Fail) => report.failed_present.push(element),
            Some(Outcome::Info) => report.recovered += 1,
            Some(Outcome::Ok(_)) => {}
        }
    }
    for (element, outcome) in &outcomes {
        match outcome {
            Outcome::Ok(_) if !present.contains(element) => {
                report.lost_count += 1;
                if report.lost.len() < MAX_LISTED {
                    report.lost.push(*element);
                }
            }
            Outcome::Info if !present.contains(element) => report.indeterminate_absent += 1,
            _ => {}
        }
    }
    report.duplicated.sort_unstable();
    report.duplicated.dedup();
    for list in [&mut report.duplicated, &mut report.unexpected, &mut report.failed_present] {
        list.truncate(MAX_LISTED);
    }
    report
}
