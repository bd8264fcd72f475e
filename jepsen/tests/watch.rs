//! The watch checker on hand-made watcher histories.

mod common;

use common::op;
use flotilla_jepsen::checker::watch::{self, Details, Violation};
use flotilla_jepsen::history::{Call, EventKind, History, Op, Outcome, Ret};
use flotilla_jepsen::Validity;

fn start(watcher: u32, at: u64, from_revision: u64) -> Op {
    op(watcher, "/p/", Call::WatchStart { from_revision }, at, at, Outcome::Ok(Ret::Done))
}

fn put(watcher: u32, at: u64, revision: u64, key: &str, value: i64) -> Op {
    let call = Call::WatchEvent { revision, kind: EventKind::Put, value: Some(value) };
    op(watcher, key, call, at, at, Outcome::Ok(Ret::Done))
}

fn acked(revision: u64, key: &str, value: i64) -> Op {
    op(50, key, Call::Write { value }, 0, 1, Outcome::Ok(Ret::Revision(revision)))
}

fn run(ops: Vec<Op>) -> (Validity, Details) {
    let verdict = watch::check(&History::new(ops));
    (verdict.valid, serde_json::from_value(verdict.details).expect("watch details parse"))
}

fn first(d: &Details, watcher: u32) -> Option<Violation> {
    d.watchers.iter().find(|w| w.watcher == watcher).and_then(|w| w.first_violation.clone())
}

/// Two watchers that both see revisions 2, 3, 4 of the writes.
fn agreeing() -> Vec<Op> {
    vec![
        acked(2, "/p/a", 10),
        acked(3, "/p/b", 11),
        acked(4, "/p/a", 12),
        start(1, 0, 1),
        put(1, 10, 2, "/p/a", 10),
        put(1, 11, 3, "/p/b", 11),
        put(1, 12, 4, "/p/a", 12),
        start(2, 0, 1),
        put(2, 10, 2, "/p/a", 10),
        put(2, 11, 3, "/p/b", 11),
        put(2, 12, 4, "/p/a", 12),
    ]
}

#[test]
fn watchers_that_see_everything_once_are_valid() {
    let (valid, d) = run(agreeing());
    assert_eq!(valid, Validity::Valid);
    assert_eq!(d.watchers.len(), 2);
    assert_eq!(d.watchers[0].events, 3);
}

#[test]
fn a_resumed_watch_that_loses_nothing_is_valid() {
    let mut ops = agreeing();
    ops.retain(|o| o.process != 2);
    ops.extend([start(2, 0, 1), put(2, 10, 2, "/p/a", 10), start(2, 20, 3), put(2, 21, 3, "/p/b", 11)]);
    ops.push(put(2, 22, 4, "/p/a", 12));
    let (valid, d) = run(ops);
    assert_eq!(valid, Validity::Valid, "{d:?}");
    assert_eq!(d.watchers[1].streams, 2);
}

#[test]
fn a_gap_is_reported_as_missed() {
    let mut ops = agreeing();
    ops.retain(|o| !(o.process == 2 && o.invoke_ns == 11));
    let (valid, d) = run(ops);
    assert_eq!(valid, Validity::Invalid);
    assert_eq!(first(&d, 2), Some(Violation::Missed { revision: 3, key: "/p/b".into() }));
    assert_eq!(first(&d, 1), None);
}

#[test]
fn a_resume_past_the_last_revision_seen_is_reported() {
    let ops = vec![start(1, 0, 1), put(1, 1, 2, "/p/a", 1), start(1, 5, 6), put(1, 6, 6, "/p/a", 2)];
    let (valid, d) = run(ops);
    assert_eq!(valid, Validity::Invalid);
    assert_eq!(first(&d, 1), Some(Violation::ResumeSkipped { after: 2, from_revision: 6 }));
}

#[test]
fn duplicates_and_reordering_are_reported() {
    let dup = vec![start(1, 0, 1), put(1, 1, 2, "/p/a", 1), start(1, 2, 2), put(1, 3, 2, "/p/a", 1)];
    let (valid, d) = run(dup);
    assert_eq!(valid, Validity::Invalid);
    assert_eq!(first(&d, 1), Some(Violation::Duplicate { revision: 2, key: "/p/a".into() }));

    let reordered = vec![start(1, 0, 1), put(1, 1, 3, "/p/a", 1), put(1, 2, 2, "/p/b", 1)];
    let (_, d) = run(reordered);
    assert_eq!(first(&d, 1), Some(Violation::OutOfOrder { revision: 2, key: "/p/b".into(), after: 3 }));
}

#[test]
fn a_value_different_from_the_acknowledged_write_is_reported() {
    let mut ops = agreeing();
    ops[6] = put(1, 12, 4, "/p/a", 99);
    let (valid, d) = run(ops);
    assert_eq!(valid, Validity::Invalid);
    assert!(matches!(first(&d, 1), Some(Violation::WrongEvent { revision: 4, .. })), "{d:?}");
}

#[test]
fn a_revision_another_watcher_saw_counts_even_without_a_write() {
    let ops = vec![
        start(1, 0, 1),
        put(1, 1, 2, "/p/a", 1),
        put(1, 2, 3, "/p/b", 2),
        start(2, 0, 1),
        put(2, 1, 2, "/p/a", 1),
        put(2, 3, 4, "/p/a", 3),
    ];
    let (_, d) = run(ops);
    assert_eq!(first(&d, 2), Some(Violation::Missed { revision: 3, key: "/p/b".into() }));
    assert_eq!(first(&d, 1), None, "watcher 1 stopped at 3 and never had 4 in range");
}

#[test]
fn the_final_state_read_must_match_what_watchers_saw() {
    let mut ops = agreeing();
    let read = Ret::Versioned { value: Some(13), revision: 4 };
    ops.push(op(60, "/p/a", Call::Read, 100, 110, Outcome::Ok(read)));
    let (valid, d) = run(ops);
    assert_eq!(valid, Validity::Invalid);
    assert_eq!(d.conflicts, vec![(4, "/p/a".to_string())]);
}

#[test]
fn no_watchers_is_unknown() {
    assert_eq!(run(vec![acked(2, "/p/a", 1)]).0, Validity::Unknown);
}
