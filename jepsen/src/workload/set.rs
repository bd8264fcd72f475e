//! The set workload: unique inserts, then one final read of the whole set.
//!
//! Each client puts keys `PREFIX e<element>` with the element as value (`Call::Add`, the
//! op's key is the set's name, [`PREFIX`]). After cancellation (the runner has healed the
//! faults by then) one extra process reads the prefix linearizably, retrying until it
//! succeeds or `opts.final_timeout` passes, and records `Call::ReadSet` with the elements.
//! The read is paged ([`PAGE`] keys per request, a response must stay under gRPC's 4 MiB):
//! the first page is a linearizable read at revision R, every later page reads at R, so the
//! pages together are the set as of one revision.
//!
//! Invariants: every element is added at most once; an add that timed out or errored is
//! `Info` (it may be present or not); without a successful final read the set checker says
//! `Unknown`, never `Valid`.

use std::time::Instant;

use etcd_client::{Client, GetOptions, PutOptions};

use super::client::{merge, parse_value, Attempt, Process};
use super::{spawn_clients, Kind, Opts};
use crate::history::{Call, History, Op, Outcome, Ret, Value};

/// Key prefix of this workload, and the set's name in the history.
pub const PREFIX: &str = "jepsen/set/";

/// Least time one final read may take (it returns every element, page by page).
const FINAL_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Keys per page of the final read.
const PAGE: i64 = 10_000;

/// Pause between failed final reads.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs the adders until cancelled, then the final read.
pub async fn run(endpoints: Vec<String>, opts: Opts, ctx: super::Ctx) -> History {
    let adds = spawn_clients(Kind::Set, &endpoints, &opts, &ctx, adder).await;
    // A read of the whole set is bigger than one op: give it more time than a put.
    let timeout = opts.op_timeout.max(FINAL_READ_TIMEOUT);
    let reader = Process::new(Kind::Set.process_base() + opts.clients, endpoints, timeout, ctx);
    let final_read = final_read(reader, &opts).await;
    merge(vec![adds.ops, final_read])
}

async fn adder(mut process: Process, _opts: Opts) -> Vec<Op> {
    while !process.ctx().cancel.is_cancelled() {
        let element = process.unique_value();
        let key = format!("{PREFIX}e{element}");
        let (invoke, complete, attempt) =
            process.call(|mut c| async move { c.put(key, element.to_string(), None::<PutOptions>).await }).await;
        let outcome = match attempt {
            Attempt::Done(_) => Outcome::Ok(Ret::Done),
            Attempt::Error(_) | Attempt::TimedOut => Outcome::Info,
        };
        process.record(PREFIX, Call::Add { element }, invoke, complete, outcome);
    }
    process.take_ops()
}

/// Reads the whole set, retrying within `opts.final_timeout`; every attempt is recorded.
pub async fn final_read(mut process: Process, opts: &Opts) -> Vec<Op> {
    let deadline = Instant::now() + opts.final_timeout;
    loop {
        let (invoke, complete, attempt) = process.call(|c| read_all(c, PAGE)).await;
        let done = matches!(attempt, Attempt::Done(_));
        let outcome = match attempt {
            Attempt::Done(elements) => Outcome::Ok(Ret::Elements(elements)),
            Attempt::Error(_) | Attempt::TimedOut => Outcome::Fail,
        };
        process.record(PREFIX, Call::ReadSet, invoke, complete, outcome);
        if done || Instant::now() >= deadline {
            return process.take_ops();
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Every element under [`PREFIX`] as of one revision, `page` keys per request (see the
/// module doc).
pub async fn read_all(mut c: Client, page: i64) -> Result<Vec<Value>, etcd_client::Error> {
    let mut end = PREFIX.as_bytes().to_vec();
    *end.last_mut().expect("the prefix is not empty") += 1;
    let (mut from, mut revision, mut elements) = (PREFIX.as_bytes().to_vec(), 0, Vec::new());
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(page);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let resp = c.get(from.clone(), Some(options)).await?;
        if revision == 0 {
            revision = resp.header().map_or(0, |h| h.revision());
        }
        elements.extend(resp.kvs().iter().map(|kv| parse_value(kv.value()).unwrap_or(Value::MIN)));
        match resp.kvs().last() {
            Some(last) if resp.more() => from = [last.key(), b"\0"].concat(),
            _ => return Ok(elements),
        }
    }
}
