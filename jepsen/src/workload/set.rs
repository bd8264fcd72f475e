//! The set workload: unique inserts, then one final read of the whole set.
//!
//! Each client puts keys `PREFIX e<element>` with the element as value (`Call::Add`, the
//! op's key is the set's name, [`PREFIX`]). After cancellation (the runner has healed the
//! faults by then) one extra process reads the prefix linearizably, retrying until it
//! succeeds or `opts.final_timeout` passes, and records `Call::ReadSet` with the elements.
//!
//! Invariants: every element is added at most once; an add that timed out or errored is
//! `Info` (it may be present or not); without a successful final read the set checker says
//! `Unknown`, never `Valid`.

use std::time::Instant;

use etcd_client::{GetOptions, PutOptions};

use super::client::{merge, parse_value, Attempt, Process};
use super::{spawn_clients, Kind, Opts};
use crate::history::{Call, History, Op, Outcome, Ret, Value};

/// Key prefix of this workload, and the set's name in the history.
pub const PREFIX: &str = "jepsen/set/";

/// Least time one final read may take (it returns every element at once).
const FINAL_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
        let (invoke, complete, attempt) =
            process.call(|mut c| async move { c.get(PREFIX, Some(GetOptions::new().with_prefix())).await }).await;
        let done = matches!(attempt, Attempt::Done(_));
        let outcome = match attempt {
            Attempt::Done(resp) => {
                let elements = resp.kvs().iter().map(|kv| parse_value(kv.value()).unwrap_or(Value::MIN)).collect();
                Outcome::Ok(Ret::Elements(elements))
            }
            Attempt::Error(_) | Attempt::TimedOut => Outcome::Fail,
        };
        process.record(PREFIX, Call::ReadSet, invoke, complete, outcome);
        if done || Instant::now() >= deadline {
            return process.take_ops();
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
