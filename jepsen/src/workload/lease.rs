//! The lease workload: keys on leases that clients keep alive, revoke or abandon.
//!
//! Each client repeats: grant a lease with an ID it chooses ([`TTL`]), put one key on it,
//! then for a random one to three TTLs send a keep-alive and read the key every quarter
//! TTL; then it either revokes the lease or abandons it (a `LeaseAbandon` marker: no more
//! keep-alives). A key of an abandoned lease is read again once the lease checker's
//! deadline has passed (last keep-alive attempt + TTL + election bound + slack, plus
//! [`MARGIN`]), between leases and, for those left at cancellation, in the final phase.
//!
//! Invariants: reads are `Ret::Value` of the key (absent: `None`); a keep-alive the server
//! answers with TTL 0 is `Fail` (the lease is gone); a grant, put or revoke that timed out
//! is `Info`; the deadlines here use [`checker::lease::Config::default`], the same bounds
//! the checker applies.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use etcd_client::{LeaseGrantOptions, PutOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::client::{parse_value, Attempt, Process};
use super::{spawn_clients, Kind, Opts};
use crate::checker;
use crate::history::{Call, History, LeaseId, Outcome, Ret, Value};

/// Key prefix of this workload.
pub const PREFIX: &str = "jepsen/lease/";

/// Lease TTL: etcd counts in whole seconds; 2 s keeps a run's leases turning over.
const TTL: Duration = Duration::from_secs(2);

/// Extra wait beyond the checker's deadline before an abandoned key is read.
const MARGIN: Duration = Duration::from_millis(500);

/// Runs the lease clients until cancelled, then reads the keys of abandoned leases.
pub async fn run(endpoints: Vec<String>, opts: Opts, ctx: super::Ctx) -> History {
    spawn_clients(Kind::Lease, &endpoints, &opts, &ctx, client).await
}

/// An abandoned lease's key and when it may be read.
struct Abandoned {
    key: String,
    read_after: Instant,
}

async fn client(mut process: Process, opts: Opts) -> Vec<crate::history::Op> {
    let mut rng = StdRng::seed_from_u64(opts.seed ^ u64::from(process.id).wrapping_mul(0x4C45_4153));
    let mut abandoned = VecDeque::new();
    while !process.ctx().cancel.is_cancelled() {
        read_due(&mut process, &mut abandoned, Instant::now()).await;
        if let Some(entry) = one_lease(&mut process, &mut rng).await {
            abandoned.push_back(entry);
        }
    }
    let deadline = Instant::now() + opts.final_timeout;
    while let Some(next) = abandoned.front().map(|a| a.read_after) {
        if next > deadline {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        read_due(&mut process, &mut abandoned, Instant::now()).await;
    }
    process.take_ops()
}

/// Reads every abandoned key whose deadline passed.
async fn read_due(process: &mut Process, abandoned: &mut VecDeque<Abandoned>, now: Instant) {
    while abandoned.front().is_some_and(|a| a.read_after <= now) {
        let entry = abandoned.pop_front().expect("front exists");
        read(process, &entry.key).await;
    }
}

async fn read(process: &mut Process, key: &str) {
    let k = key.to_string();
    let (invoke, complete, attempt) = process.call(|mut c| async move { c.get(k, None).await }).await;
    let outcome = match attempt {
        Attempt::Done(resp) => {
            Outcome::Ok(Ret::Value(resp.kvs().first().map(|kv| parse_value(kv.value()).unwrap_or(Value::MIN))))
        }
        Attempt::Error(_) | Attempt::TimedOut => Outcome::Fail,
    };
    process.record(key, Call::Read, invoke, complete, outcome);
}

/// Grants, puts, keeps alive; returns the key to check later when the lease is abandoned.
async fn one_lease(process: &mut Process, rng: &mut StdRng) -> Option<Abandoned> {
    let lease: LeaseId = process.unique_value();
    let ttl_ms = u64::try_from(TTL.as_millis()).expect("TTL fits u64");
    let (invoke, complete, attempt) = process
        .call(|mut c| async move {
            c.lease_grant(TTL.as_secs() as i64, Some(LeaseGrantOptions::new().with_id(lease))).await
        })
        .await;
    let outcome = match attempt {
        Attempt::Done(_) => Outcome::Ok(Ret::Done),
        Attempt::Error(_) | Attempt::TimedOut => Outcome::Info,
    };
    let granted = outcome != Outcome::Info;
    process.record("", Call::LeaseGrant { lease, ttl_ms }, invoke, complete, outcome);
    if !granted {
        return None;
    }
    let key = format!("{PREFIX}l{lease}");
    let value = process.unique_value();
    let k = key.clone();
    let (invoke, complete, attempt) = process
        .call(|mut c| async move { c.put(k, value.to_string(), Some(PutOptions::new().with_lease(lease))).await })
        .await;
    let outcome = if matches!(attempt, Attempt::Done(_)) { Outcome::Ok(Ret::Done) } else { Outcome::Info };
    process.record(&key, Call::PutLeased { value, lease }, invoke, complete, outcome);
    let keep_until = Instant::now() + TTL * rng.gen_range(1..=3);
    while Instant::now() < keep_until && !process.ctx().cancel.is_cancelled() {
        tokio::time::sleep(TTL / 4).await;
        keep_alive(process, lease).await;
        read(process, &key).await;
    }
    if rng.gen_bool(0.5) {
        let (invoke, complete, attempt) = process.call(|mut c| async move { c.lease_revoke(lease).await }).await;
        let outcome = if matches!(attempt, Attempt::Done(_)) { Outcome::Ok(Ret::Done) } else { Outcome::Info };
        process.record("", Call::LeaseRevoke { lease }, invoke, complete, outcome);
        return None;
    }
    let now = process.ctx().clock.ns();
    process.record("", Call::LeaseAbandon { lease }, now, now, Outcome::Ok(Ret::Done));
    let bounds = checker::lease::Config::default();
    Some(Abandoned { key, read_after: Instant::now() + TTL + bounds.election_bound + bounds.slack + MARGIN })
}

/// One keep-alive round trip: `Ok` when the lease lives, `Fail` when the server says TTL 0.
async fn keep_alive(process: &mut Process, lease: LeaseId) {
    let (invoke, complete, attempt) = process
        .call(|mut c| async move {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            stream.message().await
        })
        .await;
    let outcome = match attempt {
        Attempt::Done(Some(resp)) if resp.ttl() > 0 => Outcome::Ok(Ret::Done),
        Attempt::Done(Some(_)) => Outcome::Fail,
        Attempt::Done(None) | Attempt::Error(_) | Attempt::TimedOut => Outcome::Info,
    };
    process.record("", Call::LeaseKeepAlive { lease }, invoke, complete, outcome);
}
