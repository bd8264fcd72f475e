//! Closed-loop request latency: get, list, create and update of configmaps.
//!
//! Each of `clients` workers owns one connection (worker i to replica i mod n) and issues its
//! next request as soon as the previous one returns, until the op's duration is over; the
//! request in flight at the deadline still completes and counts. Every successful request's
//! latency is kept, so percentiles are exact. Failed requests are counted, never retried.
//!
//! - get: a configmap chosen uniformly from the list namespace.
//! - list: the whole list namespace (`list_size` configmaps, no `limit`).
//! - create: a new configmap per request (`c-<worker>-<n>`).
//! - update: a PUT of the worker's own configmap carrying the resourceVersion from the
//!   previous response, i.e. a compare-and-swap. Workers own distinct objects, so a 409 can
//!   only mean the server lost track of a version; it is counted as an error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;

use super::client::{resource_version, Conn};
use super::objects::{self, configmap, path};
use super::procfs::CpuUse;
use super::stats::{round2, Summary};

/// One timed workload; one table row and JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    pub measure: String,
    /// `all` (clients spread over every replica) or one replica's name.
    pub target: String,
    pub clients: usize,
    /// Requests issued: `ok + errors`.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub throughput: f64,
    #[serde(flatten)]
    pub latency: Summary,
    /// Filled in by the caller, who knows what to measure.
    #[serde(flatten)]
    pub cpu: CpuUse,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Per-worker tally, merged into an [`OpReport`].
#[derive(Default)]
pub struct Recorder {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Recorder {
    pub fn record(&mut self, started: Instant, result: anyhow::Result<()>) {
        match result {
            Ok(()) => self.latencies.push(started.elapsed()),
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }

    pub fn report(parts: Vec<Recorder>, measure: &str, target: &str, clients: usize, elapsed: Duration) -> OpReport {
        let mut all = Recorder::default();
        for p in parts {
            all.merge(p);
        }
        let Recorder { latencies: mut all, errors, first_error } = all;
        let ok = all.len() as u64;
        OpReport {
            measure: measure.into(),
            target: target.into(),
            clients,
            requests: ok + errors,
            ok,
            errors,
            elapsed_s: round2(elapsed.as_secs_f64()),
            throughput: round2(ok as f64 / elapsed.as_secs_f64().max(1e-9)),
            latency: rounded(Summary::of(&mut all)),
            cpu: CpuUse::default(),
            first_error,
        }
    }
}

fn rounded(s: Summary) -> Summary {
    Summary { p50_ms: round2(s.p50_ms), p99_ms: round2(s.p99_ms), max_ms: round2(s.max_ms) }
}

/// The closed-loop ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    List,
    Create,
    Update,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::List => "list",
            Op::Create => "create",
            Op::Update => "update",
        }
    }
}

/// Namespaces and sizes the ops work on.
pub struct Fixture {
    /// Replica API URLs; worker i uses `urls[i % len]`.
    pub urls: Vec<String>,
    pub target: String,
    pub clients: usize,
    pub list_ns: String,
    pub list_size: usize,
    pub create_ns: String,
    pub update_ns: String,
}

/// Name of the i-th configmap of the list namespace.
fn list_name(i: usize) -> String {
    format!("cm-{i:05}")
}

impl Fixture {
    /// Fills the list namespace (untimed); the namespaces must exist.
    pub async fn fill_list(self: &Arc<Self>) -> anyhow::Result<()> {
        let report =
            create_many(self, &self.list_ns, "configmaps", self.list_size, |i| configmap(&list_name(i), 0)).await?;
        if report.errors > 0 {
            anyhow::bail!("filling {}: {} creates failed: {:?}", self.list_ns, report.errors, report.first_error);
        }
        Ok(())
    }

    /// Items and bytes of one list of the list namespace (checks the list is complete).
    pub async fn list_once(&self) -> anyhow::Result<(usize, usize)> {
        let mut conn = Conn::connect(&self.urls[0]).await?;
        let body = conn.call(Method::GET, &path(&self.list_ns, "configmaps", None), None, StatusCode::OK).await?;
        let list: Value = serde_json::from_slice(&body)?;
        let items = list["items"].as_array().map_or(0, Vec::len);
        Ok((items, body.len()))
    }
}

/// Runs `op` with every worker for `duration`.
pub async fn run_op(fx: &Arc<Fixture>, op: Op, duration: Duration) -> anyhow::Result<OpReport> {
    let mut workers = Vec::with_capacity(fx.clients);
    for i in 0..fx.clients {
        let conn = Conn::connect(&fx.urls[i % fx.urls.len()]).await?;
        let mut w = Worker { id: i, conn, n: 0, rng: StdRng::seed_from_u64(i as u64), rv: String::new() };
        if op == Op::Update {
            w.create_own(fx).await?;
        }
        workers.push(w);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for mut w in workers {
        let fx = fx.clone();
        tasks.spawn(async move {
            let mut rec = Recorder::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                let result = w.step(op, &fx).await;
                rec.record(t, result);
            }
            rec
        });
    }
    let parts = join_all(tasks).await?;
    Ok(Recorder::report(parts, op.name(), &fx.target, fx.clients, started.elapsed()))
}

async fn join_all<T: 'static>(mut tasks: JoinSet<T>) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.context("a bench worker panicked")?);
    }
    Ok(out)
}

struct Worker {
    id: usize,
    conn: Conn,
    /// Requests this worker has issued in the current op.
    n: u64,
    rng: StdRng,
    /// resourceVersion of the worker's own configmap (update).
    rv: String,
}

impl Worker {
    fn own_name(&self) -> String {
        format!("u-{}", self.id)
    }

    /// Creates (untimed) the configmap this worker updates.
    async fn create_own(&mut self, fx: &Fixture) -> anyhow::Result<()> {
        let body = configmap(&self.own_name(), 0);
        let p = path(&fx.update_ns, "configmaps", None);
        let created = self.conn.call_json(Method::POST, &p, Some(&body), StatusCode::CREATED).await?;
        self.rv = resource_version(&created)?;
        Ok(())
    }

    async fn step(&mut self, op: Op, fx: &Fixture) -> anyhow::Result<()> {
        self.n += 1;
        match op {
            Op::Get => {
                let name = list_name(self.rng.gen_range(0..fx.list_size));
                self.conn
                    .call(Method::GET, &path(&fx.list_ns, "configmaps", Some(&name)), None, StatusCode::OK)
                    .await?;
            }
            Op::List => {
                self.conn.call(Method::GET, &path(&fx.list_ns, "configmaps", None), None, StatusCode::OK).await?;
            }
            Op::Create => {
                let body = configmap(&format!("c-{}-{}", self.id, self.n), self.n);
                let p = path(&fx.create_ns, "configmaps", None);
                self.conn.call(Method::POST, &p, Some(&body), StatusCode::CREATED).await?;
            }
            Op::Update => {
                let name = self.own_name();
                let mut body = configmap(&name, self.n);
                body["metadata"]["resourceVersion"] = Value::String(self.rv.clone());
                let p = path(&fx.update_ns, "configmaps", Some(&name));
                let updated = self.conn.call_json(Method::PUT, &p, Some(&body), StatusCode::OK).await?;
                self.rv = resource_version(&updated)?;
            }
        }
        Ok(())
    }
}

/// Creates `count` objects of `plural` in `ns` with `fx.clients` concurrent clients, timing
/// each create; `make(i)` builds the i-th object.
pub async fn create_many(
    fx: &Arc<Fixture>,
    ns: &str,
    plural: &'static str,
    count: usize,
    make: fn(usize) -> Value,
) -> anyhow::Result<OpReport> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut conns = Vec::with_capacity(fx.clients);
    for i in 0..fx.clients {
        conns.push(Conn::connect(&fx.urls[i % fx.urls.len()]).await?);
    }
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for mut conn in conns {
        let (next, p) = (next.clone(), path(ns, plural, None));
        tasks.spawn(async move {
            let mut rec = Recorder::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return rec;
                }
                let body = make(i);
                let t = Instant::now();
                let result = conn.call(Method::POST, &p, Some(&body), StatusCode::CREATED).await;
                rec.record(t, result.map(drop));
            }
        });
    }
    let parts = join_all(tasks).await?;
    Ok(Recorder::report(parts, &format!("create-{plural}"), &fx.target, fx.clients, started.elapsed()))
}

/// Creates a namespace; fails on any error (setup is not measured).
pub async fn create_namespace(url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = Conn::connect(url).await?;
    let body = objects::namespace(name);
    conn.call(Method::POST, objects::namespaces_path(), Some(&body), StatusCode::CREATED).await?;
    Ok(())
}
