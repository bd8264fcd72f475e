//! Hand-made histories with known answers, including Jepsen's and Porcupine's classics.

mod common;

use std::time::Duration;

use common::*;
use flotilla_jepsen::checker::linearizable::{self, Config, Details, RegisterKind};
use flotilla_jepsen::history::{Call, History, Outcome, Ret};
use flotilla_jepsen::{Validity, Verdict};

fn check(h: &History) -> Verdict {
    linearizable::check(h, &Config::default())
}

fn details(v: &Verdict) -> Details {
    serde_json::from_value(v.details.clone()).expect("linearizable details parse")
}

#[test]
fn sequential_write_then_read_is_valid() {
    let h = history(vec![read(0, 0, 5, None), write(0, 10, 20, 1), read(1, 30, 40, Some(1))]);
    assert_eq!(check(&h).valid, Validity::Valid);
}

#[test]
fn stale_read_after_a_completed_write_is_invalid_with_its_window() {
    let h = history(vec![write(0, 0, 10, 1), write(1, 20, 30, 2), read(2, 40, 50, Some(1))]);
    let verdict = check(&h);
    assert_eq!(verdict.valid, Validity::Invalid);
    let d = details(&verdict);
    assert_eq!(d.invalid_keys, 1);
    let w = &d.windows[0];
    assert_eq!(w.key, "x");
    assert_eq!(w.prefix_len, 2);
    assert_eq!(w.stuck, read(2, 40, 50, Some(1)));
    assert_eq!(w.state, serde_json::json!(2));
    assert!(w.concurrent.is_empty(), "nothing overlaps the stale read: {:?}", w.concurrent);
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    for seen in [1, 2] {
        let h = history(vec![write(0, 0, 10, 1), write(1, 0, 10, 2), read(2, 20, 30, Some(seen))]);
        assert_eq!(check(&h).valid, Validity::Valid, "read of {seen}");
    }
    // But not both orders at once.
    let h = history(vec![write(0, 0, 10, 1), write(1, 0, 10, 2), read(2, 20, 30, Some(1)), read(3, 40, 50, Some(2))]);
    assert_eq!(check(&h).valid, Validity::Invalid);
}

#[test]
fn a_read_concurrent_with_a_write_may_see_old_or_new() {
    for seen in [None, Some(1)] {
        let h = history(vec![write(0, 0, 100, 1), read(1, 10, 20, seen)]);
        assert_eq!(check(&h).valid, Validity::Valid, "read of {seen:?}");
    }
}

#[test]
fn lost_update_via_cas_is_invalid_and_names_the_concurrent_ops() {
    // Both CAS 0→1 and 0→2 succeed concurrently, then a read sees 2: one update was lost.
    let h = history(vec![
        write(0, 0, 10, 0),
        cas(1, 20, 40, Some(0), 1, true),
        cas(2, 25, 45, Some(0), 2, true),
        read(3, 50, 60, Some(2)),
    ]);
    let verdict = check(&h);
    assert_eq!(verdict.valid, Validity::Invalid);
    let w = &details(&verdict).windows[0];
    assert_eq!(w.prefix_len, 2, "write 0 and one CAS linearize");
    assert!(matches!(w.stuck.call, Call::Cas { .. }));
    assert_eq!(w.concurrent.len(), 1, "the other CAS overlaps the stuck one");
    assert!(matches!(w.concurrent[0].op.call, Call::Cas { .. }));
    assert!(w.concurrent[0].linearized);
}

#[test]
fn a_failed_cas_did_not_happen() {
    let h = history(vec![write(0, 0, 10, 0), cas(1, 20, 30, Some(5), 1, false), read(2, 40, 50, Some(0))]);
    assert_eq!(check(&h).valid, Validity::Valid);
    let h = history(vec![write(0, 0, 10, 0), cas(1, 20, 30, Some(0), 1, false), read(2, 40, 50, Some(1))]);
    assert_eq!(check(&h).valid, Validity::Invalid);
}

#[test]
fn an_indeterminate_write_that_shows_up_later_is_valid() {
    let h = history(vec![
        info(write(0, 0, 5, 1)),
        read(1, 10, 20, None),
        read(1, 100, 110, Some(1)),
        read(2, 200, 210, Some(1)),
    ]);
    assert_eq!(check(&h).valid, Validity::Valid);
}

#[test]
fn an_indeterminate_write_may_never_happen() {
    let h = history(vec![info(write(0, 0, 5, 1)), read(1, 10, 20, None), read(1, 1000, 1010, None)]);
    assert_eq!(check(&h).valid, Validity::Valid);
}

#[test]
fn an_indeterminate_write_cannot_unhappen() {
    let h = history(vec![info(write(0, 0, 5, 1)), read(1, 10, 20, Some(1)), read(1, 30, 40, None)]);
    assert_eq!(check(&h).valid, Validity::Invalid);
}

#[test]
fn an_indeterminate_write_cannot_take_effect_before_its_invoke() {
    let h = history(vec![read(1, 0, 10, Some(1)), info(write(0, 20, 30, 1))]);
    assert_eq!(check(&h).valid, Validity::Invalid);
}

#[test]
fn a_failed_write_did_not_happen() {
    let mut failed = write(0, 0, 10, 1);
    failed.outcome = Outcome::Fail;
    let h = history(vec![failed, read(1, 20, 30, Some(1))]);
    assert_eq!(check(&h).valid, Validity::Invalid);
}

#[test]
fn keys_are_checked_independently() {
    let h = history(vec![
        with_key(write(0, 0, 10, 1), "a"),
        with_key(read(1, 20, 30, Some(1)), "a"),
        with_key(write(0, 40, 50, 1), "b"),
        with_key(read(1, 60, 70, Some(7)), "b"),
    ]);
    let verdict = check(&h);
    assert_eq!(verdict.valid, Validity::Invalid);
    let d = details(&verdict);
    assert_eq!((d.keys, d.invalid_keys), (2, 1));
    assert_eq!(d.windows[0].key, "b");
}

fn versioned(h: &History) -> Validity {
    linearizable::check(h, &Config { model: RegisterKind::Versioned, ..Config::default() }).valid
}

fn vread(process: u32, invoke: u64, complete: u64, value: Option<i64>, revision: u64) -> flotilla_jepsen::Op {
    op(process, "x", Call::Read, invoke, complete, Outcome::Ok(Ret::Versioned { value, revision }))
}

fn vwrite(process: u32, invoke: u64, complete: u64, value: i64, revision: u64) -> flotilla_jepsen::Op {
    op(process, "x", Call::Write { value }, invoke, complete, Outcome::Ok(Ret::Revision(revision)))
}

fn rcas(process: u32, invoke: u64, complete: u64, expect: u64, value: i64, revision: u64) -> flotilla_jepsen::Op {
    let call = Call::CasRevision { revision: expect, value };
    op(process, "x", call, invoke, complete, Outcome::Ok(Ret::Revision(revision)))
}

#[test]
fn versioned_register_follows_mod_revisions() {
    let good = history(vec![
        vread(0, 0, 5, None, 0),
        vwrite(0, 10, 20, 1, 5),
        vread(1, 30, 40, Some(1), 5),
        rcas(1, 50, 60, 5, 2, 7),
        vread(2, 70, 80, Some(2), 7),
    ]);
    assert_eq!(versioned(&good), Validity::Valid);

    // A CAS on a revision that was already overwritten cannot succeed.
    let mut stale = good.clone();
    stale.ops.push(rcas(3, 90, 100, 5, 3, 9));
    assert_eq!(versioned(&stale), Validity::Invalid);

    // A read must report the revision of the write it sees.
    let wrong_rev = history(vec![vwrite(0, 10, 20, 1, 5), vread(1, 30, 40, Some(1), 6)]);
    assert_eq!(versioned(&wrong_rev), Validity::Invalid);

    // Revisions of one key only grow.
    let backwards = history(vec![vwrite(0, 10, 20, 1, 5), vwrite(0, 30, 40, 2, 4)]);
    assert_eq!(versioned(&backwards), Validity::Invalid);
}

#[test]
fn versioned_register_pins_the_revision_of_an_indeterminate_write() {
    let h = history(vec![
        vwrite(0, 0, 10, 1, 5),
        info(vwrite(1, 20, 30, 2, 0)),
        vread(2, 40, 50, Some(2), 9),
        rcas(2, 60, 70, 9, 3, 12),
        vread(2, 80, 90, Some(3), 12),
    ]);
    assert_eq!(versioned(&h), Validity::Valid);
    let mut regressed = h.clone();
    regressed.ops[2] = vread(2, 40, 50, Some(2), 4);
    assert_eq!(versioned(&regressed), Validity::Invalid);
}

/// Many fully concurrent writes, then a read of a value nobody wrote: refuting it means
/// trying every order of the writes the cache cannot merge.
fn pathological(writers: u32) -> History {
    let mut ops: Vec<_> = (0..writers).map(|p| write(p, 0, 1000, i64::from(p))).collect();
    ops.extend((0..writers).map(|p| read(writers + p, 0, 1000, Some(i64::from(p)))));
    ops.push(read(2 * writers, 2000, 2010, Some(-1)));
    history(ops)
}

#[test]
fn a_small_budget_on_a_pathological_history_is_unknown() {
    let h = pathological(14);
    let tight = Config { max_steps_per_key: 10_000, time_limit: None, ..Config::default() };
    let verdict = linearizable::check(&h, &tight);
    assert_eq!(verdict.valid, Validity::Unknown);
    assert_eq!(details(&verdict).unknown_keys, vec!["x".to_string()]);

    let no_time = Config { time_limit: Some(Duration::ZERO), ..Config::default() };
    assert_eq!(linearizable::check(&h, &no_time).valid, Validity::Unknown);
}

#[test]
fn the_same_shape_small_enough_is_decided() {
    assert_eq!(check(&pathological(6)).valid, Validity::Invalid);
}
