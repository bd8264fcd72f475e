//! Many independent requests (creates, deletes, renewals) issued as fast as the API takes
//! them by `clients` closed-loop connections, client i on replica i mod n.
//!
//! Requests are numbered 0..count and handed out in order from one shared counter, so the
//! earliest numbers go first; with a `pace` request i is not sent before `start + pace·i`
//! (an open-loop schedule, for lease renewals spread over a period); with a `stop` token no
//! request is sent once it fires, and what was done so far is reported. Every request's outcome
//! is tallied with `bench_api`'s recorder (exact percentiles, errors counted, never retried)
//! and each success's acknowledgement time is kept for the bind timeline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::{Method, StatusCode};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bench_api::client::Conn;
use crate::bench_api::ops::{OpReport, Recorder};

/// One request of a batch.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub want: StatusCode,
}

/// How a batch runs.
pub struct Plan {
    /// Name of the measurement in the report (`create-nodes`, ...).
    pub measure: &'static str,
    pub clients: usize,
    pub count: usize,
    /// Minimum spacing of sends (request i not before `start + pace·i`); `None`: closed loop.
    pub pace: Option<Duration>,
    /// Stop sending when this fires.
    pub stop: Option<CancellationToken>,
}

/// What a batch did.
pub struct Done {
    pub report: OpReport,
    /// When the batch started (just before the first send).
    pub started: Instant,
    /// Acknowledgement times of the successful requests, in no particular order.
    pub acks: Vec<Instant>,
}

/// Runs `plan.count` requests built by `make(i)` against `urls`.
pub async fn run<F>(urls: &[String], plan: Plan, make: F) -> anyhow::Result<Done>
where
    F: Fn(usize) -> Req + Send + Sync + 'static,
{
    let clients = plan.clients.clamp(1, plan.count.max(1));
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        conns.push(Conn::connect(&urls[i % urls.len()]).await?);
    }
    let (next, make) = (Arc::new(AtomicUsize::new(0)), Arc::new(make));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for mut conn in conns {
        let (next, make, count, pace) = (next.clone(), make.clone(), plan.count, plan.pace);
        let stop = plan.stop.clone().unwrap_or_default();
        tasks.spawn(async move {
            let (mut rec, mut acks) = (Recorder::default(), Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || stop.is_cancelled() {
                    return (rec, acks);
                }
                if let Some(p) = pace {
                    tokio::select! {
                        _ = stop.cancelled() => return (rec, acks),
                        _ = tokio::time::sleep_until((started + p * i as u32).into()) => {}
                    }
                }
                let req = make(i);
                let t = Instant::now();
                let result = conn.call(req.method, &req.path, req.body.as_ref(), req.want).await;
                if result.is_ok() {
                    acks.push(Instant::now());
                }
                rec.record(t, result.map(drop));
            }
        });
    }
    let (mut parts, mut acks) = (Vec::new(), Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (rec, a) = r.context("a bench client panicked")?;
        parts.push(rec);
        acks.extend(a);
    }
    let report = Recorder::report(parts, plan.measure, "all", clients, started.elapsed());
    Ok(Done { report, started, acks })
}
