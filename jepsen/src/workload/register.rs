//! The register workload: many clients read, write and compare-and-set many keys through
//! the etcd API; checked per key for linearizability with etcd's mod_revisions.
//!
//! Each op picks a random key of `opts.keys` and one of:
//! - read: a linearizable Range → `Ret::Versioned { value, revision }` (revision 0: absent);
//! - write: Put of a value unique to the run → `Ret::Revision(header revision)`;
//! - CAS: `Txn(mod_revision(key) == r).and_then(Put)`, `r` being the revision this client
//!   last saw for the key (0 if none) → `Ret::Revision` when it succeeded, `Fail` when the
//!   compare failed (nothing was written).
//!
//! Outcomes: a timeout or an error of a write or CAS is `Info` (it may have been applied);
//! a failed read is `Fail` (reads change nothing, so the checker drops it either way).

use std::collections::HashMap;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::client::{parse_value, revision, Attempt, Process};
use super::Opts;
use crate::history::{Call, Op, Outcome, Ret, Value};

/// Key prefix of this workload.
pub const PREFIX: &str = "jepsen/register/";

/// Runs `process` until cancelled; returns its ops.
pub async fn client(mut process: Process, opts: Opts) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(opts.seed ^ u64::from(process.id).wrapping_mul(0x9E37_79B9));
    let mut seen: HashMap<String, u64> = HashMap::new();
    while !process.ctx().cancel.is_cancelled() {
        let key = format!("{PREFIX}{}", rng.gen_range(0..opts.keys.max(1)));
        match rng.gen_range(0..3) {
            0 => read(&mut process, &key, &mut seen).await,
            1 => write(&mut process, &key, &mut seen).await,
            _ => cas(&mut process, &key, &mut seen).await,
        }
    }
    process.take_ops()
}

async fn read(process: &mut Process, key: &str, seen: &mut HashMap<String, u64>) {
    let k = key.to_string();
    let (invoke, complete, attempt) = process.call(|mut c| async move { c.get(k, None).await }).await;
    let outcome = match attempt {
        Attempt::Done(resp) => {
            let (value, rev) = match resp.kvs().first() {
                // A value this harness did not write still has to show up as a read value.
                Some(kv) => (Some(parse_value(kv.value()).unwrap_or(Value::MIN)), revision(kv.mod_revision())),
                None => (None, 0),
            };
            seen.insert(key.to_string(), rev);
            Outcome::Ok(Ret::Versioned { value, revision: rev })
        }
        Attempt::Error(_) | Attempt::TimedOut => Outcome::Fail,
    };
    process.record(key, Call::Read, invoke, complete, outcome);
}

async fn write(process: &mut Process, key: &str, seen: &mut HashMap<String, u64>) {
    let value = process.unique_value();
    let k = key.to_string();
    let (invoke, complete, attempt) =
        process.call(|mut c| async move { c.put(k, value.to_string(), None::<PutOptions>).await }).await;
    let outcome = match attempt {
        Attempt::Done(resp) => match resp.header() {
            Some(h) => {
                seen.insert(key.to_string(), revision(h.revision()));
                Outcome::Ok(Ret::Revision(revision(h.revision())))
            }
            None => Outcome::Ok(Ret::Done),
        },
        Attempt::Error(_) | Attempt::TimedOut => Outcome::Info,
    };
    process.record(key, Call::Write { value }, invoke, complete, outcome);
}

async fn cas(process: &mut Process, key: &str, seen: &mut HashMap<String, u64>) {
    let value = process.unique_value();
    let expected = seen.get(key).copied().unwrap_or(0);
    let k = key.to_string();
    let (invoke, complete, attempt) = process
        .call(|mut c| async move {
            let rev = i64::try_from(expected).unwrap_or(i64::MAX);
            let txn = Txn::new()
                .when([Compare::mod_revision(k.clone(), CompareOp::Equal, rev)])
                .and_then([TxnOp::put(k, value.to_string(), None)]);
            c.txn(txn).await
        })
        .await;
    let outcome = match attempt {
        Attempt::Done(resp) if resp.succeeded() => match resp.header() {
            Some(h) => {
                seen.insert(key.to_string(), revision(h.revision()));
                Outcome::Ok(Ret::Revision(revision(h.revision())))
            }
            None => Outcome::Ok(Ret::Done),
        },
        Attempt::Done(_) => Outcome::Fail,
        Attempt::Error(_) | Attempt::TimedOut => Outcome::Info,
    };
    process.record(key, Call::CasRevision { revision: expected, value }, invoke, complete, outcome);
}
