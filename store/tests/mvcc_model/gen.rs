//! Generated operations: abstract specs, made concrete against the model's state when they run
//! so that revisions land near the interesting ones.

use flotilla_store::mvcc::key_range::KeyRange;
use flotilla_store::pb::{
    PbCompare, PbDeleteRequest, PbPutRequest, PbRangeRequest, PbTargetUnion, PbTxnOpRequest, PbTxnRequest,
    PbTxnRequestOp,
};
use flotilla_store::Command;
use proptest::prelude::*;

use super::model::{Model, NOSPACE, ON_CREATE, ON_MOD, ON_VALUE, ON_VERSION};

/// Small alphabet with prefix relations ("b" covers "ba", "bb"); all ASCII, so a prefix's
/// range end is its last byte plus one.
const KEYS: [&[u8]; 6] = [b"a", b"b", b"ba", b"bb", b"c", b"d"];
/// Includes the empty value, which a VALUE compare must tell apart from a missing key.
const VALUES: [&[u8]; 4] = [b"", b"x", b"y", b"z"];
/// Lease IDs in play; puts name ungranted ones too.
const LEASE_IDS: std::ops::RangeInclusive<i64> = 1..=3;

#[derive(Clone, Copy, Debug)]
pub enum Span {
    Key(usize),
    Prefix(usize),
    Between(usize, usize),
    From(usize),
    All,
}

impl Span {
    fn bounds(self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Span::Key(i) => (KEYS[i].to_vec(), Vec::new()),
            Span::Prefix(i) => {
                let mut end = KEYS[i].to_vec();
                *end.last_mut().expect("keys are not empty") += 1;
                (KEYS[i].to_vec(), end)
            }
            Span::Between(i, j) => (KEYS[i].to_vec(), KEYS[j].to_vec()),
            Span::From(i) => (KEYS[i].to_vec(), vec![0]),
            Span::All => (vec![0], vec![0]),
        }
    }

    pub fn key_range(self) -> KeyRange {
        let (key, end) = self.bounds();
        KeyRange::new(&key, &end)
    }
}

/// A revision choice: `.0` picks the kind (latest, historical, invalid...), `.1` the number.
#[derive(Clone, Copy, Debug)]
pub struct Pick(u8, u16);

#[derive(Clone, Debug)]
pub struct ReadSpec {
    span: Span,
    rev: Pick,
    limit: i64,
    sort_order: i32,
    sort_target: i32,
    keys_only: bool,
    count_only: bool,
    /// min_mod, max_mod, min_create, max_create.
    filters: [Option<u16>; 4],
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ignore {
    No,
    Value,
    Lease,
}

#[derive(Clone, Debug)]
pub struct PutSpec {
    key: usize,
    value: usize,
    lease: i64,
    prev_kv: bool,
    ignore: Ignore,
}

#[derive(Clone, Debug)]
pub struct DelSpec {
    span: Span,
    prev_kv: bool,
}

#[derive(Clone, Debug)]
struct CmpSpec {
    span: Span,
    target: i32,
    result: i32,
    operand: u16,
}

#[derive(Clone, Debug)]
pub struct TxnSpec {
    compare: Vec<CmpSpec>,
    success: Vec<OpSpec>,
    failure: Vec<OpSpec>,
}

#[derive(Clone, Debug)]
enum OpSpec {
    Range(ReadSpec),
    Put(PutSpec),
    Delete(DelSpec),
    Txn(Box<TxnSpec>),
}

#[derive(Clone, Debug)]
pub enum Step {
    Put(PutSpec),
    Delete(DelSpec),
    Txn(TxnSpec),
    Compact(Pick),
    Grant {
        id: i64,
        ttl: i64,
    },
    Revoke {
        id: i64,
    },
    /// Raise or clear a member's NOSPACE alarm.
    Alarm {
        activate: bool,
        member: u64,
    },
}

impl Model {
    pub fn command(&self, step: &Step) -> Command {
        match step {
            Step::Put(p) => Command::Put(self.put_request(p)),
            Step::Delete(d) => Command::DeleteRange(delete_request(d)),
            Step::Txn(t) => Command::Txn(self.txn_request(t)),
            Step::Compact(p) => Command::Compact { revision: self.compact_pick(*p) },
            Step::Grant { id, ttl } => Command::LeaseGrant { id: *id, ttl: *ttl },
            Step::Revoke { id } => Command::LeaseRevoke { id: *id },
            Step::Alarm { activate, member } => Command::Alarm { activate: *activate, member: *member, alarm: NOSPACE },
        }
    }

    /// Mostly latest or historical at/after the compaction point; sometimes compacted or future.
    fn read_pick(&self, p: Pick) -> i64 {
        let lo = self.compact.max(1);
        let n = i64::from(p.1);
        match p.0 % 10 {
            0..=3 => 0,
            4..=8 => lo + n % (self.rev - lo + 1),
            _ if self.compact > 1 && n % 2 == 0 => 1 + n % (self.compact - 1),
            _ => self.rev + 1,
        }
    }

    /// Mostly valid; sometimes at/below the compaction point, or in the future.
    fn compact_pick(&self, p: Pick) -> i64 {
        let n = i64::from(p.1);
        match p.0 % 8 {
            0 => self.compact - n % (self.compact + 1),
            1 => self.rev + 1 + n % 3,
            2 => self.rev,
            _ if self.rev > self.compact => self.compact + 1 + n % (self.rev - self.compact),
            _ => self.rev,
        }
    }

    /// A watch start: 0 (future only), below the compaction point, at it, after it, or
    /// beyond the current revision.
    pub fn watch_pick(&self, p: Pick) -> i64 {
        let lo = self.compact.max(1);
        let n = i64::from(p.1);
        match p.0 % 7 {
            0 => 0,
            1 if self.compact > 1 => 1 + n % (self.compact - 1),
            2 => lo,
            3 => self.rev + 1 + n % 3,
            _ => lo + n % (self.rev - lo + 2),
        }
    }

    pub fn range_request(&self, s: &ReadSpec) -> PbRangeRequest {
        let (key, range_end) = s.span.bounds();
        let filter = |f: Option<u16>| f.map_or(0, |n| 1 + i64::from(n) % (self.rev + 1));
        PbRangeRequest {
            key,
            range_end,
            limit: s.limit,
            revision: self.read_pick(s.rev),
            sort_order: s.sort_order,
            sort_target: s.sort_target,
            serializable: false,
            keys_only: s.keys_only,
            count_only: s.count_only,
            min_mod_revision: filter(s.filters[0]),
            max_mod_revision: filter(s.filters[1]),
            min_create_revision: filter(s.filters[2]),
            max_create_revision: filter(s.filters[3]),
        }
    }

    /// etcd's API refuses a lease with ignore_lease and a value with ignore_value; leases are
    /// also left out with ignore_value so that no request is refused for two reasons at once
    /// (etcd orders those checks differently at top level and inside a Txn).
    fn put_request(&self, p: &PutSpec) -> PbPutRequest {
        PbPutRequest {
            key: KEYS[p.key].to_vec(),
            value: if p.ignore == Ignore::Value { Vec::new() } else { VALUES[p.value].to_vec() },
            lease: if p.ignore == Ignore::No { p.lease } else { 0 },
            prev_kv: p.prev_kv,
            ignore_value: p.ignore == Ignore::Value,
            ignore_lease: p.ignore == Ignore::Lease,
        }
    }

    fn compare(&self, c: &CmpSpec) -> PbCompare {
        let (key, range_end) = c.span.bounds();
        let n = i64::from(c.operand);
        // Half the time aim at the first key's actual metadata so EQUAL can hold.
        let actual = self.kvs_at(&key, &range_end, self.rev).into_iter().next().filter(|_| n % 2 == 0);
        let union = match (c.target, actual) {
            (ON_VERSION, Some(kv)) => PbTargetUnion::Version(kv.version),
            (ON_VERSION, None) => PbTargetUnion::Version(n % 4),
            (ON_CREATE, Some(kv)) => PbTargetUnion::CreateRevision(kv.create_revision),
            (ON_CREATE, None) => PbTargetUnion::CreateRevision(n % (self.rev + 2)),
            (ON_MOD, Some(kv)) => PbTargetUnion::ModRevision(kv.mod_revision),
            (ON_MOD, None) => PbTargetUnion::ModRevision(n % (self.rev + 2)),
            (ON_VALUE, _) => PbTargetUnion::Value(VALUES[c.operand as usize % VALUES.len()].to_vec()),
            (_, Some(kv)) => PbTargetUnion::Lease(kv.lease),
            (_, None) => PbTargetUnion::Lease(n % 4),
        };
        PbCompare { result: c.result, target: c.target, key, range_end, target_union: Some(union) }
    }

    fn txn_request(&self, t: &TxnSpec) -> PbTxnRequest {
        let ops = |ops: &[OpSpec]| -> Vec<PbTxnRequestOp> {
            ops.iter()
                .map(|op| {
                    let request = match op {
                        OpSpec::Range(r) => PbTxnOpRequest::RequestRange(self.range_request(r)),
                        OpSpec::Put(p) => PbTxnOpRequest::RequestPut(self.put_request(p)),
                        OpSpec::Delete(d) => PbTxnOpRequest::RequestDeleteRange(delete_request(d)),
                        OpSpec::Txn(t) => PbTxnOpRequest::RequestTxn(self.txn_request(t)),
                    };
                    PbTxnRequestOp { request: Some(request) }
                })
                .collect()
        };
        PbTxnRequest {
            compare: t.compare.iter().map(|c| self.compare(c)).collect(),
            success: ops(&t.success),
            failure: ops(&t.failure),
        }
    }
}

fn delete_request(d: &DelSpec) -> PbDeleteRequest {
    let (key, range_end) = d.span.bounds();
    PbDeleteRequest { key, range_end, prev_kv: d.prev_kv }
}

fn span() -> impl Strategy<Value = Span> {
    let k = 0..KEYS.len();
    prop_oneof![
        4 => k.clone().prop_map(Span::Key),
        2 => k.clone().prop_map(Span::Prefix),
        2 => (k.clone(), k.clone()).prop_map(|(a, b)| Span::Between(a, b)),
        1 => k.prop_map(Span::From),
        1 => Just(Span::All),
    ]
}

fn pick() -> impl Strategy<Value = Pick> {
    (any::<u8>(), any::<u16>()).prop_map(|(kind, n)| Pick(kind, n))
}

fn read_spec() -> impl Strategy<Value = ReadSpec> {
    let filters = prop::array::uniform4(prop::option::weighted(0.15, any::<u16>()));
    let shape = (0i64..4, 0i32..3, 0i32..5, any::<bool>(), prop::bool::weighted(0.15));
    (span(), pick(), shape, filters).prop_map(
        |(span, rev, (limit, sort_order, sort_target, keys_only, count_only), filters)| ReadSpec {
            span,
            rev,
            limit,
            sort_order,
            sort_target,
            keys_only,
            count_only,
            filters,
        },
    )
}

fn put_spec() -> impl Strategy<Value = PutSpec> {
    let lease = prop_oneof![6 => Just(0i64), 1 => LEASE_IDS];
    let ignore = prop_oneof![14 => Just(Ignore::No), 1 => Just(Ignore::Value), 1 => Just(Ignore::Lease)];
    (0..KEYS.len(), 0..VALUES.len(), lease, any::<bool>(), ignore)
        .prop_map(|(key, value, lease, prev_kv, ignore)| PutSpec { key, value, lease, prev_kv, ignore })
}

fn del_spec() -> impl Strategy<Value = DelSpec> {
    (span(), any::<bool>()).prop_map(|(span, prev_kv)| DelSpec { span, prev_kv })
}

fn cmp_spec() -> impl Strategy<Value = CmpSpec> {
    let span = prop_oneof![3 => (0..KEYS.len()).prop_map(Span::Key), 1 => span()];
    (span, 0i32..5, 0i32..4, any::<u16>()).prop_map(|(span, target, result, operand)| CmpSpec {
        span,
        target,
        result,
        operand,
    })
}

/// A Txn whose ops nest further Txns at most `depth` levels down.
fn txn_spec(depth: u32) -> BoxedStrategy<TxnSpec> {
    let leaf = prop_oneof![
        2 => read_spec().prop_map(OpSpec::Range),
        3 => put_spec().prop_map(OpSpec::Put),
        1 => del_spec().prop_map(OpSpec::Delete),
    ];
    let op = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![5 => leaf, 2 => txn_spec(depth - 1).prop_map(|t| OpSpec::Txn(Box::new(t)))].boxed()
    };
    let ops = |n| prop::collection::vec(op.clone(), 0..n);
    (prop::collection::vec(cmp_spec(), 0..3), ops(4), ops(3))
        .prop_map(|(compare, success, failure)| TxnSpec { compare, success, failure })
        .boxed()
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => put_spec().prop_map(Step::Put),
        3 => del_spec().prop_map(Step::Delete),
        6 => txn_spec(2).prop_map(Step::Txn),
        2 => pick().prop_map(Step::Compact),
        2 => (LEASE_IDS, 1i64..100).prop_map(|(id, ttl)| Step::Grant { id, ttl }),
        1 => LEASE_IDS.prop_map(|id| Step::Revoke { id }),
        // Cleared more often than raised, so runs spend most steps with writes allowed.
        1 => (prop::bool::weighted(0.4), 1u64..3).prop_map(|(activate, member)| Step::Alarm { activate, member }),
    ]
}

#[derive(Clone, Debug)]
pub struct Case {
    /// Each step runs a command, then a checked read.
    pub steps: Vec<(Step, ReadSpec)>,
    /// Commands run after the reopen.
    pub tail: Vec<(Step, ReadSpec)>,
    pub watch_from_start: Span,
    /// Created before step `.0` (if the run gets that far).
    pub watch_mid_run: (usize, Span, Pick),
    pub watch_at_end: (Span, Pick),
    /// `max_revisions` for the bounded `events_since` checks.
    pub since_limit: usize,
}

pub fn case() -> impl Strategy<Value = Case> {
    let steps = prop::collection::vec((step(), read_spec()), 1..60);
    let tail = prop::collection::vec((step(), read_spec()), 0..6);
    // Half the runs never compact, so history and watches stay complete from revision 1.
    (any::<bool>(), steps, tail, span(), (0usize..60, span(), pick()), (span(), pick()), 1usize..4).prop_map(
        |(compacting, mut steps, tail, watch_from_start, watch_mid_run, watch_at_end, since_limit)| {
            if !compacting {
                steps.retain(|(s, _)| !matches!(s, Step::Compact(_)));
            }
            Case { steps, tail, watch_from_start, watch_mid_run, watch_at_end, since_limit }
        },
    )
}
