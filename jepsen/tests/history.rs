//! The history file form, its invariants, and `check_all`.

mod common;

use common::*;
use flotilla_jepsen::checker::linearizable;
use flotilla_jepsen::history::{Call, EventKind, History, Outcome, Ret};
use flotilla_jepsen::{check_all, Checker, HistoryError, Validity};

fn every_kind() -> History {
    history(vec![
        read(0, 0, 5, None),
        write(0, 10, 20, 1),
        info(cas(1, 15, 30, Some(1), 2, true)),
        cas(2, 31, 40, Some(9), 3, false),
        op(3, "s", Call::ReadSet, 50, 60, Outcome::Ok(Ret::Elements(vec![1, 2]))),
        op(
            4,
            "/p/a",
            Call::WatchEvent { revision: 5, kind: EventKind::Delete, value: None },
            70,
            70,
            Outcome::Ok(Ret::Done),
        ),
        op(5, "x", Call::CasRevision { revision: 5, value: 4 }, 80, 90, Outcome::Ok(Ret::Revision(6))),
        op(5, "x", Call::Read, 91, 95, Outcome::Ok(Ret::Versioned { value: Some(4), revision: 6 })),
    ])
}

#[test]
fn json_lines_round_trip() {
    let h = every_kind();
    let mut file = Vec::new();
    h.write_jsonl(&mut file).expect("writing to memory");
    let text = String::from_utf8(file.clone()).expect("JSON is UTF-8");
    assert_eq!(text.lines().count(), h.ops.len());
    assert!(text.lines().next().is_some_and(|l| l.contains(r#""f":"read""#)), "{text}");
    assert_eq!(History::read_jsonl(&file[..]).expect("reading back"), h);
}

#[test]
fn a_bad_line_is_reported_with_its_number() {
    let input = "\n{\"process\":0,\"key\":\"x\",\"call\":{\"f\":\"read\"},\"invoke_ns\":0,\"complete_ns\":1,\"outcome\":\"info\"}\nnot json\n";
    match History::read_jsonl(input.as_bytes()) {
        Err(HistoryError::Parse { line, .. }) => assert_eq!(line, 3),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn validate_rejects_inverted_times_and_overlapping_ops_of_one_process() {
    assert!(every_kind().validate().is_ok());
    let inverted = history(vec![write(0, 20, 10, 1)]);
    assert!(matches!(inverted.validate(), Err(HistoryError::CompletesBeforeInvoke { index: 0 })));
    let overlapping = history(vec![write(0, 0, 10, 1), read(0, 5, 15, None)]);
    assert!(matches!(overlapping.validate(), Err(HistoryError::ProcessOverlap { process: 0, .. })));
}

#[test]
fn check_all_is_valid_only_when_every_checker_is() {
    let good = history(vec![write(0, 0, 10, 1), read(1, 20, 30, Some(1))]);
    let lin = Checker::Linearizable(linearizable::Config::default());
    let summary = check_all(&good, std::slice::from_ref(&lin));
    assert_eq!(summary.valid, Validity::Valid);

    // The set checker has nothing to check: Unknown, so the whole is not Valid.
    let summary = check_all(&good, &[lin.clone(), Checker::Set]);
    assert_eq!(summary.verdicts.len(), 2);
    assert_eq!(summary.valid, Validity::Unknown);

    let mut bad = good.clone();
    bad.ops.push(read(2, 40, 50, None));
    let summary = check_all(&bad, &[lin, Checker::Set]);
    assert_eq!(summary.valid, Validity::Invalid);
    assert_eq!(summary.verdicts[0].checker, "linearizable");
}
