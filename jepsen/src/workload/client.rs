//! One workload process: its connection to the cluster and the ops it records.
//!
//! A [`Process`] talks to one endpoint at a time (the one it was assigned first) and moves
//! to the next after an error or a timeout, so a client stuck behind a partition finds a
//! live replica. Every call goes through [`Process::call`], which takes the invoke time,
//! bounds the call by the per-op timeout, and takes the completion time.
//!
//! Invariants: a process runs one op at a time and records it once, after its outcome is
//! known, with `invoke_ns <= complete_ns`; a call that timed out or failed in transport is
//! never recorded as `Fail` by a writer (it may have happened): callers map
//! [`Attempt::TimedOut`] and [`Attempt::Error`] of mutations to `Info`.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use super::context::Ctx;
use crate::history::{Call, Op, Outcome, Value};

/// How long establishing a connection may take (connects are lazy; this bounds the first).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// What came of one bounded call.
#[derive(Debug)]
pub enum Attempt<T> {
    Done(T),
    Error(etcd_client::Error),
    TimedOut,
}

/// One client of a workload (Jepsen's process).
pub struct Process {
    pub id: u32,
    endpoints: Vec<String>,
    next: usize,
    client: Option<Client>,
    op_timeout: Duration,
    ctx: Ctx,
    ops: Vec<Op>,
    counter: i64,
}

impl Process {
    pub fn new(id: u32, endpoints: Vec<String>, op_timeout: Duration, ctx: Ctx) -> Self {
        assert!(!endpoints.is_empty(), "a process needs at least one endpoint");
        let next = id as usize % endpoints.len();
        Self { id, endpoints, next, client: None, op_timeout, ctx, ops: Vec::new(), counter: 0 }
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// A value no other process of the run writes: the process id in the high half.
    pub fn unique_value(&mut self) -> Value {
        self.counter += 1;
        (i64::from(self.id) << 32) | self.counter
    }

    /// The client for the current endpoint, connecting if needed.
    pub async fn client(&mut self) -> Result<Client, etcd_client::Error> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT).with_timeout(self.op_timeout);
        let endpoint = self.endpoints[self.next].clone();
        let client = Client::connect([endpoint], Some(options)).await?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Forgets the connection and moves to the next endpoint.
    pub fn rotate(&mut self) {
        self.client = None;
        self.next = (self.next + 1) % self.endpoints.len();
    }

    /// Runs `f` on the client within the op timeout; returns `(invoke_ns, complete_ns, attempt)`.
    /// Errors and timeouts move the process to another endpoint.
    pub async fn call<T, F, Fut>(&mut self, f: F) -> (u64, u64, Attempt<T>)
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let invoke = self.ctx.clock.ns();
        let attempt = match self.client().await {
            Err(e) => Attempt::Error(e),
            Ok(client) => match tokio::time::timeout(self.op_timeout, f(client)).await {
                Ok(Ok(value)) => Attempt::Done(value),
                Ok(Err(e)) => Attempt::Error(e),
                Err(_) => Attempt::TimedOut,
            },
        };
        if !matches!(attempt, Attempt::Done(_)) {
            self.rotate();
        }
        (invoke, self.ctx.clock.ns(), attempt)
    }

    /// Records a finished op and counts it for the progress line.
    pub fn record(&mut self, key: &str, call: Call, invoke_ns: u64, complete_ns: u64, outcome: Outcome) {
        self.ctx.stats.count(&outcome);
        self.ops.push(Op { process: self.id, key: key.to_string(), call, invoke_ns, complete_ns, outcome });
    }

    /// The ops recorded so far, leaving the process empty.
    pub fn take_ops(&mut self) -> Vec<Op> {
        std::mem::take(&mut self.ops)
    }
}

/// Parses a stored value (workloads write decimal text); anything else is a foreign value.
pub fn parse_value(bytes: &[u8]) -> Option<Value> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Revisions are `i64` on the wire and never negative.
pub fn revision(rev: i64) -> u64 {
    u64::try_from(rev).unwrap_or(0)
}

/// Sorts ops by invoke time (then process) into one history.
pub fn merge(parts: Vec<Vec<Op>>) -> crate::history::History {
    let mut ops: Vec<Op> = parts.into_iter().flatten().collect();
    ops.sort_by_key(|op| (op.invoke_ns, op.process));
    crate::history::History::new(ops)
}
