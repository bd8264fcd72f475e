//! The lease checker (pure part): keys live exactly as long as their lease.
//!
//! Evidence the history gives, per lease `L` with TTL `ttl` (from its grant):
//! - an `Ok` grant or keep-alive invoked at `t` proves `L` was alive at some point after `t`
//!   and, the server counting the TTL from there, alive until at least `t + ttl`. Leases do
//!   not come back, so `L` was alive from its grant until `alive_until(L)`, the largest such
//!   `t + ttl`;
//! - after the client abandons `L` (a [`Call::LeaseAbandon`] marker), the server can have
//!   refreshed it no later than the completion of the last keep-alive *attempt* (an
//!   indeterminate one may have landed), so `L` must be gone by that time plus `ttl` plus
//!   the election bound (a new leader extends every lease it inherits) plus a slack.
//!
//! Rules, checked on every `Ok` read of a key put with a lease:
//! - **vanished**: the read saw the key absent although its last write was an `Ok`
//!   [`Call::PutLeased`] on `L` that completed before the read began, nothing else wrote or
//!   deleted the key since that put began, `L` was not revoked before the read ended, and the
//!   read ended (plus slack) before `alive_until(L)`;
//! - **outlived**: the read began after the abandoned `L`'s deadline and returned a value
//!   that only puts on `L` ever wrote (workload values are unique).
//!
//! A read counts as checked when one of the rules applies to it, or when it saw a value put
//! on a lease that was not abandoned (consistent with the lease being alive); with no
//! checked read the verdict is `Unknown`.
//!
//! Times are the client's monotonic clock; the slack absorbs the server's timer granularity.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Validity, Verdict};
use crate::history::{Call, History, LeaseId, Op, Outcome, Ret, Value};

/// Settings of the lease checker.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long after a leader change an inherited lease may still live beyond its TTL.
    pub election_bound: Duration,
    /// Tolerance for timer granularity and scheduling on both sides.
    pub slack: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self { election_bound: Duration::from_secs(5), slack: Duration::from_millis(500) }
    }
}

/// Violations listed in the details; the count is always exact.
const MAX_LISTED: usize = 50;

/// One broken rule, with the read that shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "violation", rename_all = "snake_case")]
pub enum Violation {
    Vanished { lease: LeaseId, alive_until_ns: u64, read: Op },
    Outlived { lease: LeaseId, deadline_ns: u64, read: Op },
}

/// The details of a lease verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    pub leases: usize,
    pub reads_checked: usize,
    pub violation_count: usize,
    pub violations: Vec<Violation>,
}

/// What the history says about one lease.
#[derive(Debug, Default)]
struct LeaseFacts {
    ttl_ns: u64,
    alive_until_ns: u64,
    last_attempt_ns: u64,
    abandoned: bool,
    revoked_at_ns: Option<u64>,
}

/// Checks every read of a leased key in `history`.
pub fn check(history: &History, config: &Config) -> Verdict {
    let leases = lease_facts(history);
    let mut writers: BTreeMap<Value, Vec<Option<LeaseId>>> = BTreeMap::new();
    let mut writes_by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history.ops.iter().filter(|op| !matches!(op.outcome, Outcome::Fail)) {
        if let Some(value) = written_value(op) {
            writers.entry(value).or_default().push(leased(op));
        }
        if is_write(&op.call) {
            writes_by_key.entry(&op.key).or_default().push(op);
        }
    }
    let slack = nanos(config.slack);
    let mut details = Details { leases: leases.len(), reads_checked: 0, violation_count: 0, violations: Vec::new() };
    for read in history.ops.iter().filter(|op| matches!(op.call, Call::Read) && op.is_ok()) {
        let writes = writes_by_key.get(read.key.as_str()).map_or(&[][..], Vec::as_slice);
        let found = match read_value(read) {
            None => vanished(read, writes, &leases, slack),
            Some(value) => outlived(read, value, &writers, &leases, nanos(config.election_bound) + slack),
        };
        details.reads_checked += usize::from(found.is_some());
        if let Some(Some(violation)) = found {
            details.violation_count += 1;
            if details.violations.len() < MAX_LISTED {
                details.violations.push(violation);
            }
        }
    }
    let valid = if details.violation_count > 0 {
        Validity::Invalid
    } else if details.reads_checked == 0 {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    Verdict::new("lease", valid, details)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn lease_facts(history: &History) -> BTreeMap<LeaseId, LeaseFacts> {
    let mut leases: BTreeMap<LeaseId, LeaseFacts> = BTreeMap::new();
    for op in &history.ops {
        if let Call::LeaseGrant { lease, ttl_ms } = op.call {
            leases.entry(lease).or_default().ttl_ns = ttl_ms.saturating_mul(1_000_000);
        }
    }
    for op in &history.ops {
        let (lease, refreshes) = match op.call {
            Call::LeaseGrant { lease, .. } | Call::LeaseKeepAlive { lease } => (lease, true),
            Call::LeaseRevoke { lease } | Call::LeaseAbandon { lease } => (lease, false),
            _ => continue,
        };
        let Some(facts) = leases.get_mut(&lease) else { continue };
        match (&op.call, &op.outcome) {
            (_, Outcome::Ok(_)) if refreshes => {
                facts.alive_until_ns = facts.alive_until_ns.max(op.invoke_ns.saturating_add(facts.ttl_ns));
            }
            (Call::LeaseRevoke { .. }, Outcome::Ok(_) | Outcome::Info) => {
                facts.revoked_at_ns = Some(facts.revoked_at_ns.map_or(op.invoke_ns, |t| t.min(op.invoke_ns)));
            }
            (Call::LeaseAbandon { .. }, _) => facts.abandoned = true,
            _ => {}
        }
        if refreshes {
            facts.last_attempt_ns = facts.last_attempt_ns.max(op.complete_ns);
        }
    }
    leases
}

fn is_write(call: &Call) -> bool {
    matches!(
        call,
        Call::Write { .. } | Call::Delete | Call::Cas { .. } | Call::CasRevision { .. } | Call::PutLeased { .. }
    )
}

fn written_value(op: &Op) -> Option<Value> {
    match op.call {
        Call::Write { value } | Call::Cas { new: value, .. } | Call::CasRevision { value, .. } => Some(value),
        Call::PutLeased { value, .. } => Some(value),
        _ => None,
    }
}

fn leased(op: &Op) -> Option<LeaseId> {
    match op.call {
        Call::PutLeased { lease, .. } => Some(lease),
        _ => None,
    }
}

/// The value a read saw, `None` when the key was absent.
fn read_value(read: &Op) -> Option<Value> {
    match read.ret() {
        Some(Ret::Value(value) | Ret::Versioned { value, .. }) => *value,
        _ => None,
    }
}

/// `None` when the rule does not apply to this read, `Some(None)` when it held.
fn vanished(
    read: &Op,
    writes: &[&Op],
    leases: &BTreeMap<LeaseId, LeaseFacts>,
    slack: u64,
) -> Option<Option<Violation>> {
    let put = writes.iter().filter(|w| w.is_ok() && w.complete_ns <= read.invoke_ns).max_by_key(|w| w.complete_ns)?;
    let lease = leased(put)?;
    let facts = leases.get(&lease)?;
    // An indeterminate write may land at any time after its invoke.
    let disturbed = writes.iter().any(|w| {
        !std::ptr::eq(*w, *put) && w.invoke_ns <= read.complete_ns && (!w.is_ok() || w.complete_ns >= put.invoke_ns)
    });
    if disturbed || facts.revoked_at_ns.is_some_and(|t| t <= read.complete_ns) {
        return None;
    }
    let alive = read.complete_ns.saturating_add(slack) < facts.alive_until_ns;
    Some(alive.then(|| Violation::Vanished { lease, alive_until_ns: facts.alive_until_ns, read: read.clone() }))
}

/// `None` when the rule does not apply to this read, `Some(None)` when it held.
fn outlived(
    read: &Op,
    value: Value,
    writers: &BTreeMap<Value, Vec<Option<LeaseId>>>,
    leases: &BTreeMap<LeaseId, LeaseFacts>,
    margin: u64,
) -> Option<Option<Violation>> {
    let sources = writers.get(&value)?;
    let lease = (*sources.first()?)?;
    if sources.iter().any(|s| *s != Some(lease)) {
        return None;
    }
    let facts = leases.get(&lease)?;
    if !facts.abandoned {
        // Present while its lease may be alive: consistent, and counted as checked.
        return Some(None);
    }
    let deadline_ns = facts.last_attempt_ns.saturating_add(facts.ttl_ns).saturating_add(margin);
    Some((read.invoke_ns > deadline_ns).then(|| Violation::Outlived { lease, deadline_ns, read: read.clone() }))
}
