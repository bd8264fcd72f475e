//! The watch workload: one writer, several watchers on its prefix that reconnect and resume.
//!
//! - The writer puts unique values on `opts.keys` keys under [`PREFIX`] until cancelled,
//!   recording `Call::Write` with the revision each put created.
//! - Each watcher opens a prefix watch from a revision (recorded as `Call::WatchStart`, the
//!   op's key is the prefix) and records every event as `Call::WatchEvent` on the event's
//!   key. After an error, a cancel/compaction notice or [`IDLE`] without a message it moves
//!   to another endpoint and resumes from the last revision it saw + 1.
//! - Final phase, after cancellation: a versioned read of every key (the final state the
//!   events must match), then the watchers run until each has seen the highest revision any
//!   ack or read reported, or `opts.final_timeout` passes.
//!
//! Invariants: every watcher starts at the revision after the one the workload read before
//! any write, so every write of the run lies in its range; a stream's start is recorded
//! before any of its events; event times never go back within a watcher.

use std::time::{Duration, Instant};

use etcd_client::{EventType, PutOptions, WatchOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch as signal;

use super::client::{merge, parse_value, revision, Attempt, Process};
use super::{Ctx, Kind, Opts};
use crate::history::{Call, EventKind, History, Op, Outcome, Ret, Value};

/// Key prefix of this workload.
pub const PREFIX: &str = "jepsen/watch/";

/// Watchers per run: enough to see them disagree, few enough to keep histories small.
const WATCHERS: u32 = 3;

/// A stream silent this long is presumed stuck behind a fault and reopened elsewhere.
const IDLE: Duration = Duration::from_secs(2);

/// Pause after a failed watch call before the next attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Runs the writer and the watchers, then the final phase.
pub async fn run(endpoints: Vec<String>, opts: Opts, ctx: Ctx) -> History {
    let base = Kind::Watch.process_base();
    let mut writer = Process::new(base, endpoints.clone(), opts.op_timeout, ctx.clone());
    let start = start_revision(&mut writer, &opts).await;
    // The highest revision watchers must reach before they stop (`None` while writing).
    let (target_tx, target_rx) = signal::channel(None::<u64>);
    let mut watchers = Vec::new();
    for i in 1..=WATCHERS {
        let process = Process::new(base + i, endpoints.clone(), opts.op_timeout, ctx.clone());
        watchers.push(tokio::spawn(watcher(process, start, target_rx.clone(), opts.final_timeout)));
    }
    let (mut writes, highest) = write_until_cancelled(writer, &opts).await;
    let reader = Process::new(base + WATCHERS + 1, endpoints, opts.op_timeout, ctx);
    let (reads, read_highest) = final_reads(reader, &opts).await;
    target_tx.send_replace(Some(highest.max(read_highest)));
    writes.extend(reads);
    let mut parts = vec![writes];
    for task in watchers {
        parts.push(task.await.expect("watcher task panicked"));
    }
    merge(parts)
}

/// The store's revision before the writer starts, + 1 (1 if it cannot be read in time).
async fn start_revision(process: &mut Process, opts: &Opts) -> u64 {
    let deadline = Instant::now() + opts.final_timeout;
    while Instant::now() < deadline {
        let (_, _, attempt) = process.call(|mut c| async move { c.get(PREFIX, None).await }).await;
        if let Attempt::Done(resp) = attempt {
            return resp.header().map_or(0, |h| revision(h.revision())) + 1;
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    1
}

/// Writes until cancelled; returns the ops and the highest revision acknowledged.
async fn write_until_cancelled(mut process: Process, opts: &Opts) -> (Vec<Op>, u64) {
    let mut rng = StdRng::seed_from_u64(opts.seed ^ 0x5741_5443);
    let mut highest = 0;
    while !process.ctx().cancel.is_cancelled() {
        let key = format!("{PREFIX}k{}", rng.gen_range(0..opts.keys.max(1)));
        let value = process.unique_value();
        let k = key.clone();
        let (invoke, complete, attempt) =
            process.call(|mut c| async move { c.put(k, value.to_string(), None::<PutOptions>).await }).await;
        let outcome = match attempt {
            Attempt::Done(resp) => {
                let rev = resp.header().map_or(0, |h| revision(h.revision()));
                highest = highest.max(rev);
                Outcome::Ok(Ret::Revision(rev))
            }
            Attempt::Error(_) | Attempt::TimedOut => Outcome::Info,
        };
        process.record(&key, Call::Write { value }, invoke, complete, outcome);
    }
    (process.take_ops(), highest)
}

/// A versioned read of every key; returns the ops and the highest mod_revision read.
async fn final_reads(mut process: Process, opts: &Opts) -> (Vec<Op>, u64) {
    let deadline = Instant::now() + opts.final_timeout;
    let mut highest = 0;
    for i in 0..opts.keys.max(1) {
        let key = format!("{PREFIX}k{i}");
        loop {
            let k = key.clone();
            let (invoke, complete, attempt) = process.call(|mut c| async move { c.get(k, None).await }).await;
            let Attempt::Done(resp) = attempt else {
                process.record(&key, Call::Read, invoke, complete, Outcome::Fail);
                if Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            let (value, rev) = match resp.kvs().first() {
                Some(kv) => (Some(parse_value(kv.value()).unwrap_or(Value::MIN)), revision(kv.mod_revision())),
                None => (None, 0),
            };
            highest = highest.max(rev);
            process.record(&key, Call::Read, invoke, complete, Outcome::Ok(Ret::Versioned { value, revision: rev }));
            break;
        }
    }
    (process.take_ops(), highest)
}

/// One watcher: (re)opens its stream until it reached the target or the final timeout.
async fn watcher(
    mut process: Process,
    start: u64,
    target: signal::Receiver<Option<u64>>,
    final_timeout: Duration,
) -> Vec<Op> {
    let mut last_seen: Option<u64> = None;
    let mut final_deadline: Option<Instant> = None;
    loop {
        if let Some(t) = *target.borrow() {
            let deadline = *final_deadline.get_or_insert_with(|| Instant::now() + final_timeout);
            if last_seen.is_some_and(|s| s >= t) || t < start || Instant::now() >= deadline {
                return process.take_ops();
            }
        }
        let from = last_seen.map_or(start, |s| s + 1);
        let opts = WatchOptions::new().with_prefix().with_start_revision(i64::try_from(from).unwrap_or(i64::MAX));
        let (invoke, complete, attempt) = process.call(|mut c| async move { c.watch(PREFIX, Some(opts)).await }).await;
        let Attempt::Done(mut stream) = attempt else {
            process.record(PREFIX, Call::WatchStart { from_revision: from }, invoke, complete, Outcome::Info);
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        process.record(PREFIX, Call::WatchStart { from_revision: from }, invoke, complete, Outcome::Ok(Ret::Done));
        loop {
            let resp = match tokio::time::timeout(IDLE, stream.message()).await {
                Ok(Ok(Some(resp))) if !resp.canceled() && resp.compact_revision() == 0 => resp,
                _ => break,
            };
            let at = process.ctx().clock.ns();
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                let rev = revision(kv.mod_revision());
                let (kind, value) = match event.event_type() {
                    EventType::Put => (EventKind::Put, Some(parse_value(kv.value()).unwrap_or(Value::MIN))),
                    EventType::Delete => (EventKind::Delete, None),
                };
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                process.record(&key, Call::WatchEvent { revision: rev, kind, value }, at, at, Outcome::Ok(Ret::Done));
                last_seen = Some(last_seen.map_or(rev, |s| s.max(rev)));
            }
            if target.borrow().is_some_and(|t| last_seen.is_some_and(|s| s >= t)) {
                break;
            }
        }
        process.rotate();
    }
}
