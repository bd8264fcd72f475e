//! The lease checker on hand-made histories (times in ms for readability).

mod common;

use std::time::Duration;

use common::op;
use flotilla_jepsen::checker::lease::{self, Config, Details, Violation};
use flotilla_jepsen::history::{Call, History, Op, Outcome, Ret};
use flotilla_jepsen::Validity;

const MS: u64 = 1_000_000;
const TTL_MS: u64 = 1_000;

fn at(p: u32, key: &str, call: Call, from_ms: u64, to_ms: u64, outcome: Outcome) -> Op {
    op(p, key, call, from_ms * MS, to_ms * MS, outcome)
}

fn ok(p: u32, key: &str, call: Call, from_ms: u64, to_ms: u64) -> Op {
    at(p, key, call, from_ms, to_ms, Outcome::Ok(Ret::Done))
}

fn read(from_ms: u64, value: Option<i64>) -> Op {
    at(9, "k", Call::Read, from_ms, from_ms + 5, Outcome::Ok(Ret::Value(value)))
}

/// Lease 7 granted at 0, key "k" put on it at 10.
fn base() -> Vec<Op> {
    vec![
        ok(1, "", Call::LeaseGrant { lease: 7, ttl_ms: TTL_MS }, 0, 5),
        ok(1, "k", Call::PutLeased { value: 42, lease: 7 }, 10, 15),
    ]
}

fn keepalive(from_ms: u64) -> Op {
    ok(1, "", Call::LeaseKeepAlive { lease: 7 }, from_ms, from_ms + 5)
}

fn run(ops: Vec<Op>) -> (Validity, Details) {
    let config = Config { election_bound: Duration::from_millis(2_000), slack: Duration::from_millis(100) };
    let verdict = lease::check(&History::new(ops), &config);
    (verdict.valid, serde_json::from_value(verdict.details).expect("lease details parse"))
}

#[test]
fn a_key_kept_alive_and_present_is_valid() {
    let mut ops = base();
    ops.extend([keepalive(500), read(600, Some(42)), keepalive(1_000), read(1_800, Some(42))]);
    let (valid, d) = run(ops);
    assert_eq!(valid, Validity::Valid);
    assert_eq!(d.reads_checked, 2);
}

#[test]
fn a_key_gone_while_its_lease_was_kept_alive_is_invalid() {
    let mut ops = base();
    ops.extend([keepalive(500), keepalive(1_000), read(1_200, None)]);
    let (valid, d) = run(ops);
    assert_eq!(valid, Validity::Invalid);
    assert!(
        matches!(d.violations[0], Violation::Vanished { lease: 7, alive_until_ns, .. } if alive_until_ns == 2_000 * MS)
    );
}

#[test]
fn a_later_successful_keepalive_proves_the_lease_was_alive() {
    let mut ops = base();
    ops.extend([read(300, None), keepalive(1_500)]);
    assert_eq!(run(ops).0, Validity::Invalid);
}

#[test]
fn a_key_gone_after_keepalives_stopped_is_valid() {
    let mut ops = base();
    ops.extend([keepalive(500), read(3_000, None)]);
    assert_eq!(run(ops).0, Validity::Valid);
}

#[test]
fn revocation_or_a_concurrent_delete_explains_a_missing_key() {
    let mut revoked = base();
    revoked.extend([keepalive(500), ok(1, "", Call::LeaseRevoke { lease: 7 }, 600, 610), read(700, None)]);
    revoked.push(read(550, Some(42)));
    assert_eq!(run(revoked).0, Validity::Valid);

    let mut deleted = base();
    deleted.extend([keepalive(500), at(2, "k", Call::Delete, 600, 650, Outcome::Info), read(700, None)]);
    deleted.push(read(550, Some(42)));
    assert_eq!(run(deleted).0, Validity::Valid);
}

#[test]
fn a_key_of_an_abandoned_lease_must_be_gone_after_ttl_and_election_bound() {
    let abandon = ok(1, "", Call::LeaseAbandon { lease: 7 }, 600, 600);
    // Last keep-alive attempt ends at 505: deadline 505 + 1000 + 2000 + 100 = 3605 ms.
    let mut early = base();
    early.extend([keepalive(500), abandon.clone(), read(3_500, Some(42))]);
    assert_eq!(run(early).0, Validity::Valid);

    let mut late = base();
    late.extend([keepalive(500), abandon, read(3_700, Some(42))]);
    let (valid, d) = run(late);
    assert_eq!(valid, Validity::Invalid);
    assert!(matches!(d.violations[0], Violation::Outlived { lease: 7, deadline_ns, .. } if deadline_ns == 3_605 * MS));
}

#[test]
fn an_indeterminate_keepalive_moves_the_abandon_deadline() {
    let mut ops = base();
    ops.extend([
        at(1, "", Call::LeaseKeepAlive { lease: 7 }, 500, 2_000, Outcome::Info),
        ok(1, "", Call::LeaseAbandon { lease: 7 }, 2_000, 2_000),
        read(3_700, Some(42)),
    ]);
    assert_eq!(run(ops).0, Validity::Valid);
}

#[test]
fn no_reads_of_leased_keys_is_unknown() {
    assert_eq!(run(base()).0, Validity::Unknown);
}
