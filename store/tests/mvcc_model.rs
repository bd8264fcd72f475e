//! Model-based tests of the MVCC state machine.
//!
//! Every command is applied both to the real [`Mvcc`] (over RocksDB, exactly as the Raft state
//! machine drives it: apply into a batch, write the batch, `batch_written`, publish the events)
//! and to [`Model`] (`mvcc_model/model.rs`), a deliberately naive rendering of etcd's rules
//! (section 3 of the store reference). The model keeps every change of every key forever;
//! compaction only moves the line below which it refuses reads. The commands, reads and watch
//! starts come from the strategies in `mvcc_model/gen.rs`. Everything observable must agree:
//!
//! 1. Results: every command's `CommandResult` (headers, prev_kv, deleted counts, `succeeded`,
//!    range responses inside Txns, rejections) and the events `apply` returns.
//! 2. Reads: after each step, a random Range (random span, revision, limit, sort, keys_only,
//!    count_only, min/max mod/create filters) plus the whole key space at the latest revision;
//!    at the end, the whole key space at every revision from the compaction point on.
//! 3. History: `events_since(from, n)` for every `from` (see [`Model::history_from`] for what
//!    compaction leaves behind) and random `n`.
//! 4. Reopen: after the run the store is closed (RocksDB really shut), reopened from disk, and
//!    must show the same state; a few more commands then run against it.
//! 5. Watch: watchers from revision 1 (created before the first command), from a random
//!    revision mid-run and at the end, drained after every step, yield exactly the model's
//!    events for their range; a start below the compaction point yields `Compacted`.
//!
//! Where etcd leaves a choice open the model pins the store's choice: ties in a sorted Range
//! come out in key order (DESCEND is the exact reverse), and inner Txn response headers are not
//! compared (section 3.5: only the top-level header is authoritative).
//!
//! Deterministic tests at the end pin single rules, among them four the property test once
//! caught the store breaking (reads and nested compares inside a Txn, duplicate writes in
//! exclusive nested branches, VALUE sort without an order).

// A test crate's root resolves `mod x;` next to itself (`tests/x.rs`), hence the paths.
#[path = "mvcc_model/gen.rs"]
mod gen;
#[path = "mvcc_model/model.rs"]
mod model;

use std::path::Path;
use std::sync::{Arc, RwLock};

use flotilla_store::mvcc::key_range::KeyRange;
use flotilla_store::mvcc::{Mvcc, EVENT_DELETE};
use flotilla_store::pb::{
    PbCompare, PbDeleteRequest, PbEvent, PbKeyValue, PbPutRequest, PbRangeRequest, PbResponseOp, PbTargetUnion,
    PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use flotilla_store::types::Rejection;
use flotilla_store::watch::{Notice, WatchHub, WatchItem, Watcher};
use flotilla_store::{Command, CommandResult, StoreError};
use futures::FutureExt;
use proptest::prelude::*;
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, DB};

use gen::{case, Case, ReadSpec, Span, Step};
use model::{Model, BY_VALUE, EQUAL, GREATER, LESS, NOT_EQUAL, ON_CREATE, ON_VALUE, ON_VERSION};

// ---------------------------------------------------------------------------------------------
// The store under test, wired as the state machine wires it.

struct Store {
    mvcc: Arc<RwLock<Mvcc>>,
    hub: WatchHub,
}

impl Store {
    fn open(dir: &Path) -> Self {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = Mvcc::column_families().map(|cf| ColumnFamilyDescriptor::new(cf, Options::default()));
        let db = DB::open_cf_descriptors(&opts, dir, cfs).expect("open rocksdb");
        let mvcc = Arc::new(RwLock::new(Mvcc::open(Arc::new(db)).expect("open mvcc")));
        Self { hub: WatchHub::new(mvcc.clone()), mvcc }
    }

    /// Drop every handle so RocksDB really closes (a reopen would fail on its lock otherwise).
    fn close(self) {
        drop(self.hub);
        let mvcc = Arc::try_unwrap(self.mvcc).ok().expect("no watcher outlives the store");
        drop(mvcc);
    }

    fn apply(&self, cmd: &Command) -> (CommandResult, Vec<PbEvent>) {
        let (result, events) = {
            let mut mvcc = self.mvcc.write().expect("lock");
            let mut batch = WriteBatch::default();
            let out = mvcc.apply(cmd, &mut batch).expect("apply fails only on storage errors");
            mvcc.db().write(batch).expect("write batch");
            mvcc.batch_written();
            out
        };
        if let Some(revision) = events.first().and_then(|e| e.kv.as_ref()).map(|kv| kv.mod_revision) {
            self.hub.publish(Notice::Events { revision, events: events.clone() });
        }
        (result, events)
    }

    fn read<T>(&self, f: impl FnOnce(&Mvcc) -> T) -> T {
        f(&self.mvcc.read().expect("lock"))
    }
}

// ---------------------------------------------------------------------------------------------
// Checking.

/// Inner headers are not authoritative (section 3.5); only the top-level one is compared.
fn without_inner_headers(result: CommandResult) -> CommandResult {
    fn strip(responses: &mut [PbResponseOp]) {
        for r in responses {
            match r.response.as_mut() {
                Some(PbTxnOpResponse::ResponseRange(x)) => x.header = None,
                Some(PbTxnOpResponse::ResponsePut(x)) => x.header = None,
                Some(PbTxnOpResponse::ResponseDeleteRange(x)) => x.header = None,
                Some(PbTxnOpResponse::ResponseTxn(t)) => {
                    t.header = None;
                    strip(&mut t.responses);
                }
                None => {}
            }
        }
    }
    match result {
        CommandResult::Txn(mut t) => {
            strip(&mut t.responses);
            CommandResult::Txn(t)
        }
        other => other,
    }
}

fn everything_at(revision: i64) -> PbRangeRequest {
    PbRangeRequest { key: vec![0], range_end: vec![0], revision, ..Default::default() }
}

/// One command on both sides, then the cheap per-step checks and the step's random read.
fn run_step(store: &Store, model: &mut Model, step: &Step, read: &ReadSpec) -> Result<(), TestCaseError> {
    let cmd = model.command(step);
    let (got, got_events) = store.apply(&cmd);
    let (want, want_events) = model.apply(&cmd);
    prop_assert_eq!(without_inner_headers(got), want, "result of {:?}", cmd);
    prop_assert_eq!(got_events, want_events, "events of {:?}", cmd);
    prop_assert_eq!(store.read(|m| m.current_revision()), model.rev);
    prop_assert_eq!(store.read(|m| m.compact_revision()), model.compact);
    prop_assert_eq!(store.read(|m| m.leases().clone()), model.leases.clone());
    let req = model.range_request(read);
    prop_assert_eq!(store.read(|m| m.range(&req)), model.range(&req).map_err(StoreError::from), "{:?}", req);
    let req = everything_at(0);
    prop_assert_eq!(store.read(|m| m.range(&req)), model.range(&req).map_err(StoreError::from));
    Ok(())
}

/// Everything the store can be asked about: all revisions, all of history, leases.
fn check_state(store: &Store, model: &Model, since_limit: usize) -> Result<(), TestCaseError> {
    let (rev, compact) = (model.rev, model.compact);
    prop_assert_eq!(store.read(|m| m.current_revision()), rev);
    prop_assert_eq!(store.read(|m| m.compact_revision()), compact);
    prop_assert_eq!(store.read(|m| m.leases().clone()), model.leases.clone());
    for at in 1..=rev + 1 {
        let req = everything_at(at);
        let want = model.range(&req).map_err(StoreError::from);
        prop_assert_eq!(store.read(|m| m.range(&req)), want, "at {}", at);
    }
    for from in 0..=rev + 1 {
        let got = store.read(|m| m.events_since(from, usize::MAX));
        if from < compact {
            prop_assert_eq!(got, Err(StoreError::Rejected(Rejection::Compacted { compact_revision: compact })));
            continue;
        }
        let want = model.history_from(from, compact);
        prop_assert_eq!(got, Ok(want.clone()), "events_since({})", from);
        let got = store.read(|m| m.events_since(from, since_limit));
        let want = Ok(want.into_iter().take(since_limit).collect());
        prop_assert_eq!(got, want, "events_since({}, {})", from, since_limit);
    }
    Ok(())
}

/// A watcher and what it has yielded so far.
struct Watch {
    watcher: Watcher,
    span: Span,
    /// The revision it starts from (a requested 0 resolved to current + 1).
    start: i64,
    /// The compaction point when it first read history (right after creation).
    compact: i64,
    items: Vec<WatchItem>,
    finished: bool,
}

/// More items than any run can produce: a watcher that keeps yielding is broken.
const MAX_WATCH_ITEMS: usize = 10_000;

impl Watch {
    fn start(store: &Store, model: &Model, span: Span, start: i64) -> Self {
        let watcher = store.hub.watch(span.key_range(), start);
        let start = if start > 0 { start } else { model.rev + 1 };
        let mut w = Self { watcher, span, start, compact: model.compact, items: Vec::new(), finished: false };
        w.drain();
        w
    }

    /// Take whatever is ready now; everything published so far is ready at once (apply and
    /// publish are synchronous here), so no waiting is needed.
    fn drain(&mut self) {
        while !self.finished {
            let Some(Some(item)) = self.watcher.next().now_or_never() else { return };
            assert!(self.items.len() < MAX_WATCH_ITEMS, "watcher {:?} never runs dry", self.span);
            // A compacted watcher is done (it would repeat `Compacted` forever).
            self.finished = matches!(item, WatchItem::Compacted { .. });
            self.items.push(item);
        }
    }

    fn check(&self, model: &Model) -> Result<(), TestCaseError> {
        let want: Vec<WatchItem> = if self.start < self.compact {
            vec![WatchItem::Compacted { compact_revision: self.compact }]
        } else {
            let range = self.span.key_range();
            model
                .history_from(self.start, self.compact)
                .into_iter()
                .filter_map(|(revision, events)| {
                    let events: Vec<PbEvent> = events
                        .into_iter()
                        .filter(|e| range.contains(&e.kv.as_ref().expect("events carry a kv").key))
                        .collect();
                    (!events.is_empty()).then_some(WatchItem::Events { revision, events })
                })
                .collect()
        };
        prop_assert_eq!(&self.items, &want, "watch {:?} from {}", self.span, self.start);
        Ok(())
    }
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let mut watches = vec![Watch::start(&store, &model, case.watch_from_start, 1)];
    for (i, (step, read)) in case.steps.iter().enumerate() {
        if i == case.watch_mid_run.0 {
            let (span, pick) = (case.watch_mid_run.1, case.watch_mid_run.2);
            watches.push(Watch::start(&store, &model, span, model.watch_pick(pick)));
        }
        run_step(&store, &mut model, step, read)?;
        watches.iter_mut().for_each(Watch::drain);
    }
    let (span, pick) = case.watch_at_end;
    watches.push(Watch::start(&store, &model, span, model.watch_pick(pick)));
    for w in &watches {
        w.check(&model)?;
    }
    check_state(&store, &model, case.since_limit)?;

    drop(watches);
    store.close();
    let store = Store::open(dir.path());
    check_state(&store, &model, case.since_limit)?;
    for (step, read) in &case.tail {
        run_step(&store, &mut model, step, read)?;
    }
    check_state(&store, &model, case.since_limit)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        // This test owns no regression file; a failure prints its minimal case instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mvcc_agrees_with_model(case in case()) {
        run_case(&case)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic cases.

fn kv_put(key: &str, value: &str) -> PbPutRequest {
    PbPutRequest { key: key.into(), value: value.into(), ..Default::default() }
}

fn op(request: PbTxnOpRequest) -> PbTxnRequestOp {
    PbTxnRequestOp { request: Some(request) }
}

fn op_put(key: &str, value: &str, lease: i64) -> PbTxnRequestOp {
    op(PbTxnOpRequest::RequestPut(PbPutRequest { lease, ..kv_put(key, value) }))
}

fn op_get(key: &str) -> PbTxnRequestOp {
    op(PbTxnOpRequest::RequestRange(PbRangeRequest { key: key.into(), ..Default::default() }))
}

fn op_txn(t: PbTxnRequest) -> PbTxnRequestOp {
    op(PbTxnOpRequest::RequestTxn(t))
}

fn cmp(key: &str, target: i32, result: i32, operand: PbTargetUnion) -> PbCompare {
    PbCompare { result, target, key: key.into(), range_end: Vec::new(), target_union: Some(operand) }
}

fn txn(compare: Vec<PbCompare>, success: Vec<PbTxnRequestOp>, failure: Vec<PbTxnRequestOp>) -> Command {
    Command::Txn(PbTxnRequest { compare, success, failure })
}

fn txn_response(result: CommandResult) -> PbTxnResponse {
    match result {
        CommandResult::Txn(t) => t,
        other => panic!("expected a Txn response, got {other:?}"),
    }
}

fn get(store: &Store, key: &str) -> Option<PbKeyValue> {
    let req = PbRangeRequest { key: key.into(), ..Default::default() };
    store.read(|m| m.range(&req)).expect("range").kvs.into_iter().next()
}

/// Both sides on the same commands, for the deterministic cases.
fn both(store: &Store, model: &mut Model, cmd: &Command) -> CommandResult {
    let (got, got_events) = store.apply(cmd);
    let (want, want_events) = model.apply(cmd);
    assert_eq!(without_inner_headers(got.clone()), want, "result of {cmd:?}");
    assert_eq!(got_events, want_events, "events of {cmd:?}");
    got
}

/// Observed: a duplicate write is an `Ok` apply whose result is `Rejected(DuplicateKey)` (the
/// same check also runs before proposing); nothing changes. Exclusive top-level branches may
/// each write the key.
#[test]
fn txn_writing_a_key_twice_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    both(&store, &mut model, &Command::Put(kv_put("a", "0")));
    let dup = txn(vec![], vec![op_put("a", "1", 0), op_put("a", "2", 0)], vec![]);
    let mut batch = WriteBatch::default();
    let out = store.mvcc.write().expect("lock").apply(&dup, &mut batch);
    assert_eq!(out, Ok((CommandResult::Rejected(Rejection::DuplicateKey), Vec::new())));
    assert!(batch.is_empty(), "a refused Txn stages nothing");
    both(&store, &mut model, &dup);
    let del = op(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest {
        key: "a".into(),
        range_end: "b".into(),
        prev_kv: false,
    }));
    let put_in_deleted_range = txn(vec![], vec![del, op_put("a", "3", 0)], vec![]);
    let refused = CommandResult::Rejected(Rejection::DuplicateKey);
    assert_eq!(both(&store, &mut model, &put_in_deleted_range), refused);
    let inner = PbTxnRequest { success: vec![op_put("a", "5", 0)], ..Default::default() };
    let nested = txn(vec![], vec![op_put("a", "4", 0), op_txn(inner)], vec![]);
    assert_eq!(both(&store, &mut model, &nested), refused);
    let exclusive = txn(vec![], vec![op_put("a", "6", 0)], vec![op_put("a", "7", 0)]);
    assert!(txn_response(both(&store, &mut model, &exclusive)).succeeded);
    assert_eq!(store.read(|m| m.current_revision()), 3);
    assert_eq!(get(&store, "a").map(|kv| kv.value), Some(b"6".to_vec()));
}

#[test]
fn value_compare_on_a_missing_key_is_false() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let value = |result| cmp("a", ON_VALUE, result, PbTargetUnion::Value(Vec::new()));
    for result in [EQUAL, NOT_EQUAL, GREATER, LESS] {
        let t = txn_response(both(&store, &mut model, &txn(vec![value(result)], vec![], vec![])));
        assert!(!t.succeeded, "VALUE compare {result} on a missing key");
    }
    // Other targets see a missing key as all zeros.
    let absent = cmp("a", ON_CREATE, EQUAL, PbTargetUnion::CreateRevision(0));
    assert!(txn_response(both(&store, &mut model, &txn(vec![absent.clone()], vec![], vec![]))).succeeded);
    let zero_version = cmp("a", ON_VERSION, EQUAL, PbTargetUnion::Version(0));
    assert!(txn_response(both(&store, &mut model, &txn(vec![zero_version], vec![], vec![]))).succeeded);
    // An existing key with an empty value is not a missing key.
    both(&store, &mut model, &Command::Put(kv_put("a", "")));
    assert!(txn_response(both(&store, &mut model, &txn(vec![value(EQUAL)], vec![], vec![]))).succeeded);
    assert!(!txn_response(both(&store, &mut model, &txn(vec![absent], vec![], vec![]))).succeeded);
    // Read-only Txns never bump the revision.
    assert_eq!(store.read(|m| m.current_revision()), 2);
}

#[test]
fn ignore_value_needs_an_existing_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let keep = |key: &str| PbPutRequest { key: key.into(), ignore_value: true, ..Default::default() };
    let refused = CommandResult::Rejected(Rejection::KeyNotFound);
    assert_eq!(both(&store, &mut model, &Command::Put(keep("a"))), refused);
    let keep_lease = PbPutRequest { ignore_lease: true, ..kv_put("a", "v") };
    assert_eq!(both(&store, &mut model, &Command::Put(keep_lease)), refused);
    // Inside a Txn it refuses the whole Txn, earlier ops included.
    let t = txn(vec![], vec![op_put("b", "1", 0), op(PbTxnOpRequest::RequestPut(keep("a")))], vec![]);
    assert_eq!(both(&store, &mut model, &t), refused);
    assert_eq!(get(&store, "b"), None);
    // On a live key the old value stays and the version moves on.
    both(&store, &mut model, &Command::Put(kv_put("a", "old")));
    both(&store, &mut model, &Command::Put(keep("a")));
    let kv = get(&store, "a").expect("a exists");
    assert_eq!((kv.value, kv.version, kv.mod_revision), (b"old".to_vec(), 2, 3));
}

#[test]
fn unknown_lease_refuses_the_whole_txn_and_revoke_deletes_in_one_revision() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let t = txn(vec![], vec![op_put("a", "1", 0), op_put("b", "1", 7)], vec![]);
    assert_eq!(both(&store, &mut model, &t), CommandResult::Rejected(Rejection::LeaseNotFound));
    assert_eq!(store.read(|m| m.current_revision()), 1);
    both(&store, &mut model, &Command::LeaseGrant { id: 7, ttl: 10 });
    both(&store, &mut model, &t);
    both(&store, &mut model, &Command::Put(PbPutRequest { lease: 7, ..kv_put("c", "1") }));
    let (_, events) = store.apply(&Command::LeaseRevoke { id: 7 });
    model.apply(&Command::LeaseRevoke { id: 7 });
    let deleted: Vec<(i32, Vec<u8>, i64)> = events
        .iter()
        .map(|e| e.kv.as_ref().map(|kv| (e.r#type, kv.key.clone(), kv.mod_revision)).expect("kv"))
        .collect();
    assert_eq!(deleted, vec![(EVENT_DELETE, b"b".to_vec(), 4), (EVENT_DELETE, b"c".to_vec(), 4)]);
    assert!(store.read(|m| m.leases().is_empty()));
    assert_eq!(get(&store, "a").map(|kv| kv.mod_revision), Some(2));
}

#[test]
fn watch_below_the_compaction_point_yields_compacted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    for v in ["1", "2", "3"] {
        store.apply(&Command::Put(kv_put("a", v)));
    }
    assert_eq!(store.apply(&Command::Compact { revision: 3 }).0, CommandResult::Compact { revision: 4 });
    let range = KeyRange::new(b"a", b"");
    let mut below = store.hub.watch(range.clone(), 2);
    assert_eq!(below.next().now_or_never(), Some(Some(WatchItem::Compacted { compact_revision: 3 })));
    // From the compaction point itself: what survived, with the replaced version gone.
    let mut at = store.hub.watch(range, 3);
    let Some(Some(WatchItem::Events { revision: 3, events })) = at.next().now_or_never() else {
        panic!("expected the surviving put at revision 3");
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].prev_kv, None);
    assert_eq!(events[0].kv.as_ref().map(|kv| kv.value.clone()), Some(b"2".to_vec()));
}

// ---------------------------------------------------------------------------------------------
// Regressions: rules the property test once caught the store breaking.

/// etcd: a Range inside a Txn at revision 0 reads the latest state, the Txn's own earlier
/// writes included.
#[test]
fn range_in_txn_sees_earlier_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let t = txn_response(store.apply(&txn(vec![], vec![op_put("a", "1", 0), op_get("a")], vec![])).0);
    let Some(PbTxnOpResponse::ResponseRange(r)) = &t.responses[1].response else { panic!("range response") };
    assert_eq!(r.count, 1, "etcd: reads in a Txn see its earlier writes");
}

/// etcd (`txn.go`): every compare on the executed path, nested ones included, is evaluated once,
/// against the state before the Txn, and that path is checked before any op runs. Here `b` is
/// missing before the Txn, so the nested Txn takes its (empty) failure branch even though the
/// outer put of `b` makes its compare hold by the time it runs; the success branch, a put on an
/// unknown lease, must neither run nor refuse the Txn.
#[test]
fn nested_compares_use_the_state_before_the_txn() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let nested = PbTxnRequest {
        compare: vec![cmp("b", ON_VERSION, GREATER, PbTargetUnion::Version(0))],
        success: vec![op_put("c", "1", 77)],
        failure: vec![],
    };
    let t = both(&store, &mut model, &txn(vec![], vec![op_put("b", "1", 0), op_txn(nested)], vec![]));
    assert!(txn_response(t).succeeded);
}

/// etcd (`checkIntervals`): the duplicate-key check follows execution paths, and the success
/// and failure branches of a nested Txn are mutually exclusive ("either then/else are mutually
/// exclusive"), so both may write the same key.
#[test]
fn exclusive_nested_branches_may_write_the_same_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    let mut model = Model::new();
    let nested =
        PbTxnRequest { compare: vec![], success: vec![op_put("d", "1", 0)], failure: vec![op_put("d", "2", 0)] };
    let t = both(&store, &mut model, &txn(vec![], vec![op_txn(nested)], vec![]));
    assert!(txn_response(t).succeeded);
}

/// etcd: a Range with sort order NONE and a sort target other than KEY sorts ascending by that
/// target; VALUE is no exception.
#[test]
fn value_target_without_order_sorts_ascending() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path());
    store.apply(&Command::Put(kv_put("a", "z")));
    store.apply(&Command::Put(kv_put("b", "y")));
    let req = PbRangeRequest { sort_target: BY_VALUE, ..everything_at(0) };
    let kvs = store.read(|m| m.range(&req)).expect("range").kvs;
    let values: Vec<Vec<u8>> = kvs.into_iter().map(|kv| kv.value).collect();
    assert_eq!(values, vec![b"y".to_vec(), b"z".to_vec()]);
}
