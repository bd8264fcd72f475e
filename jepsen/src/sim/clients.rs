//! The simulation's clients: the register and set workloads, calling [`StoreNode`]s directly
//! (what the etcd service does for a gRPC client), recorded as a [`History`] on the virtual
//! clock.
//!
//! Each op goes to a replica drawn from the seed; one that is down is skipped (a refused
//! connection sends nothing). Outcomes follow the real workloads: a failed or timed-out read
//! is `Fail` (reads change nothing), a failed or timed-out write or CAS is `Info`, a CAS
//! whose compare failed is `Fail`; a set add is `Info` unless acknowledged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flotilla_store::pb::{
    PbCompare, PbCompareTarget, PbPutRequest, PbRangeRequest, PbTargetUnion, PbTxnOpRequest, PbTxnRequest,
    PbTxnRequestOp,
};
use flotilla_store::StoreNode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::history::{Call, Op, Outcome, Ret, Value};
use crate::workload::client::{parse_value, revision};

/// Key prefix of the registers, and the set's key prefix and history key.
const REGISTER: &str = "sim/r/";
const SET: &str = "sim/set/";
pub const SET_KEY: &str = "set";

/// etcd's `Compare.result` EQUAL.
const EQUAL: i32 = 0;

/// The replicas the clients may call, as the simulation keeps them up to date.
pub type Nodes = Arc<Mutex<Vec<Option<Arc<StoreNode>>>>>;

/// What one client does.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub keys: u32,
    pub op_timeout: Duration,
    /// Pause between two ops of a client, drawn uniformly.
    pub think: std::ops::Range<Duration>,
}

/// A client process: its ops, its view of the registers, its random choices.
pub struct Client {
    pub process: u32,
    rng: StdRng,
    start: Instant,
    nodes: Nodes,
    opts: ClientOptions,
    seen: BTreeMap<String, u64>,
    next_value: Value,
    pub ops: Vec<Op>,
}

impl Client {
    pub fn new(process: u32, seed: u64, start: Instant, nodes: Nodes, opts: ClientOptions) -> Self {
        let rng = StdRng::seed_from_u64(seed ^ (u64::from(process) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let next_value = Value::from(process) * 1_000_000_000;
        Self { process, rng, start, nodes, opts, seen: BTreeMap::new(), next_value, ops: Vec::new() }
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// A replica that is up, drawn from the seed.
    fn pick(&mut self) -> Option<Arc<StoreNode>> {
        let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let up: Vec<Arc<StoreNode>> = nodes.into_iter().flatten().collect();
        (!up.is_empty()).then(|| up[self.rng.gen_range(0..up.len())].clone())
    }

    fn unique(&mut self) -> Value {
        self.next_value += 1;
        self.next_value
    }

    /// Ops until `until` (virtual time), then stop.
    pub async fn run(mut self, until: Instant) -> Self {
        while Instant::now() < until {
            let think = self.rng.gen_range(self.opts.think.clone());
            tokio::time::sleep(think).await;
            let Some(node) = self.pick() else { continue };
            match self.rng.gen_range(0..4) {
                0 => self.read(&node).await,
                1 => self.write(&node).await,
                2 => self.cas(&node).await,
                _ => self.add(&node).await,
            }
        }
        self
    }

    fn record(&mut self, key: &str, call: Call, invoke_ns: u64, outcome: Outcome) {
        let complete_ns = self.now_ns();
        self.ops.push(Op { process: self.process, key: key.to_string(), call, invoke_ns, complete_ns, outcome });
    }

    fn register(&mut self) -> String {
        format!("{REGISTER}{}", self.rng.gen_range(0..self.opts.keys.max(1)))
    }

    async fn read(&mut self, node: &StoreNode) {
        let key = self.register();
        let invoke = self.now_ns();
        let req = PbRangeRequest { key: key.clone().into_bytes(), ..Default::default() };
        let outcome = match tokio::time::timeout(self.opts.op_timeout, node.range(req)).await {
            Ok(Ok(resp)) => {
                let (value, rev) = match resp.kvs.first() {
                    Some(kv) => (Some(parse_value(&kv.value).unwrap_or(Value::MIN)), revision(kv.mod_revision)),
                    None => (None, 0),
                };
                self.seen.insert(key.clone(), rev);
                Outcome::Ok(Ret::Versioned { value, revision: rev })
            }
            Ok(Err(_)) | Err(_) => Outcome::Fail,
        };
        self.record(&key, Call::Read, invoke, outcome);
    }

    async fn write(&mut self, node: &StoreNode) {
        let (key, value) = (self.register(), self.unique());
        let invoke = self.now_ns();
        let req =
            PbPutRequest { key: key.clone().into_bytes(), value: value.to_string().into_bytes(), ..Default::default() };
        let outcome = match tokio::time::timeout(self.opts.op_timeout, node.put(req)).await {
            Ok(Ok(resp)) => {
                let rev = revision(resp.header.map_or(0, |h| h.revision));
                self.seen.insert(key.clone(), rev);
                Outcome::Ok(Ret::Revision(rev))
            }
            Ok(Err(_)) | Err(_) => Outcome::Info,
        };
        self.record(&key, Call::Write { value }, invoke, outcome);
    }

    async fn cas(&mut self, node: &StoreNode) {
        let (key, value) = (self.register(), self.unique());
        let expected = self.seen.get(&key).copied().unwrap_or(0);
        let invoke = self.now_ns();
        let compare = PbCompare {
            result: EQUAL,
            target: PbCompareTarget::Mod as i32,
            key: key.clone().into_bytes(),
            range_end: Vec::new(),
            target_union: Some(PbTargetUnion::ModRevision(i64::try_from(expected).unwrap_or(i64::MAX))),
        };
        let put =
            PbPutRequest { key: key.clone().into_bytes(), value: value.to_string().into_bytes(), ..Default::default() };
        let req = PbTxnRequest {
            compare: vec![compare],
            success: vec![PbTxnRequestOp { request: Some(PbTxnOpRequest::RequestPut(put)) }],
            failure: vec![],
        };
        let outcome = match tokio::time::timeout(self.opts.op_timeout, node.txn(req)).await {
            Ok(Ok(resp)) if resp.succeeded => {
                let rev = revision(resp.header.map_or(0, |h| h.revision));
                self.seen.insert(key.clone(), rev);
                Outcome::Ok(Ret::Revision(rev))
            }
            Ok(Ok(_)) => Outcome::Fail,
            Ok(Err(_)) | Err(_) => Outcome::Info,
        };
        self.record(&key, Call::CasRevision { revision: expected, value }, invoke, outcome);
    }

    async fn add(&mut self, node: &StoreNode) {
        let element = self.unique();
        let invoke = self.now_ns();
        let req = PbPutRequest {
            key: format!("{SET}{element}").into_bytes(),
            value: element.to_string().into_bytes(),
            ..Default::default()
        };
        let outcome = match tokio::time::timeout(self.opts.op_timeout, node.put(req)).await {
            Ok(Ok(_)) => Outcome::Ok(Ret::Done),
            Ok(Err(_)) | Err(_) => Outcome::Info,
        };
        self.record(SET_KEY, Call::Add { element }, invoke, outcome);
    }

    /// The final read of the whole set (linearizable), retried on any replica until `until`.
    pub async fn read_set(&mut self, until: Instant) -> bool {
        while Instant::now() < until {
            let Some(node) = self.pick() else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let invoke = self.now_ns();
            let req = PbRangeRequest {
                key: SET.as_bytes().to_vec(),
                range_end: prefix_end(SET.as_bytes()),
                ..Default::default()
            };
            match tokio::time::timeout(self.opts.op_timeout, node.range(req)).await {
                Ok(Ok(resp)) => {
                    let elements = resp.kvs.iter().map(|kv| parse_value(&kv.value).unwrap_or(Value::MIN)).collect();
                    self.record(SET_KEY, Call::ReadSet, invoke, Outcome::Ok(Ret::Elements(elements)));
                    return true;
                }
                Ok(Err(_)) | Err(_) => self.record(SET_KEY, Call::ReadSet, invoke, Outcome::Fail),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// The end of the range of keys starting with `prefix` (its last byte incremented).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}
