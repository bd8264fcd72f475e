//! The set checker on hand-made histories.

mod common;

use common::op;
use flotilla_jepsen::checker::set::{self, SetReport};
use flotilla_jepsen::history::{Call, History, Op, Outcome, Ret};
use flotilla_jepsen::Validity;

fn add(element: i64, outcome: Outcome) -> Op {
    op(element as u32, "s", Call::Add { element }, 0, 10, outcome)
}

fn ok_add(element: i64) -> Op {
    add(element, Outcome::Ok(Ret::Done))
}

fn final_read(at: u64, elements: Vec<i64>) -> Op {
    op(99, "s", Call::ReadSet, at, at + 5, Outcome::Ok(Ret::Elements(elements)))
}

fn report(ops: Vec<Op>) -> (Validity, SetReport) {
    let verdict = set::check(&History::new(ops));
    let mut reports: Vec<SetReport> = serde_json::from_value(verdict.details).expect("set details parse");
    (verdict.valid, reports.remove(0))
}

#[test]
fn every_acknowledged_add_present_is_valid() {
    let (valid, r) = report(vec![ok_add(1), ok_add(2), final_read(100, vec![2, 1])]);
    assert_eq!(valid, Validity::Valid);
    assert_eq!((r.attempted, r.acknowledged, r.final_read), (2, 2, Some(2)));
}

#[test]
fn a_missing_acknowledged_add_is_lost() {
    let (valid, r) = report(vec![ok_add(1), ok_add(2), ok_add(3), final_read(100, vec![1])]);
    assert_eq!(valid, Validity::Invalid);
    assert_eq!(r.lost, vec![2, 3]);
    assert_eq!(r.lost_count, 2);
}

#[test]
fn duplicates_and_unexpected_elements_are_invalid() {
    let (valid, r) = report(vec![ok_add(1), final_read(100, vec![1, 1, 7])]);
    assert_eq!(valid, Validity::Invalid);
    assert_eq!(r.duplicated, vec![1]);
    assert_eq!(r.unexpected, vec![7]);
}

#[test]
fn indeterminate_adds_may_be_present_or_absent() {
    let (valid, r) = report(vec![ok_add(1), add(2, Outcome::Info), add(3, Outcome::Info), final_read(100, vec![1, 2])]);
    assert_eq!(valid, Validity::Valid);
    assert_eq!((r.recovered, r.indeterminate_absent), (1, 1));
}

#[test]
fn a_failed_add_must_not_be_present() {
    let (valid, r) = report(vec![add(4, Outcome::Fail), final_read(100, vec![4])]);
    assert_eq!(valid, Validity::Invalid);
    assert_eq!(r.failed_present, vec![4]);
}

#[test]
fn the_last_read_is_the_final_one() {
    // An early read missing a later add is fine; the final read decides.
    let (valid, _) = report(vec![final_read(0, vec![]), ok_add(1), final_read(100, vec![1])]);
    assert_eq!(valid, Validity::Valid);
    let (valid, _) = report(vec![final_read(200, vec![]), ok_add(1), final_read(100, vec![1])]);
    assert_eq!(valid, Validity::Invalid);
}

#[test]
fn without_a_final_read_the_verdict_is_unknown() {
    let (valid, r) = report(vec![ok_add(1)]);
    assert_eq!(valid, Validity::Unknown);
    assert_eq!(r.final_read, None);
}
