//! The control-plane workload: a Deployment scaled up and down on hollow nodes under faults.
//!
//! Data flow: start `flotilla agent --runtime fake --simulate 3` in the root namespace
//! against every API replica ([`agent`]); create a namespace and a Deployment
//! ([`INITIAL_REPLICAS`], maxSurge 1, maxUnavailable 0); then, until cancelled, a scaler
//! (process `base`) sets random seeded replica counts every few seconds while an observer
//! (process `base + 1`) lists the deployment's pods and the agent's nodes, checking each
//! time that the agent still runs. After cancellation (faults healed)
//! the observer polls, marked final, until the pods converge or [`CONVERGE_TIMEOUT`];
//! then the namespace is deleted and the agent stopped.
//!
//! History encoding (see [`crate::checker::control_plane`]): scale ops are
//! `Call::Write { value }` on [`SCALE_KEY`], the create being the first; an observation is
//! a `Call::Observe` carrying the [`Observation`] as JSON; the agent's run is one
//! `Call::Observe` on [`AGENT_KEY`] (process `base + 2`) from its start to its teardown,
//! carrying an [`AgentRun`](crate::checker::control_plane::AgentRun) that records an
//! unexpected exit.
//!
//! Invariants: every scale op is `Ok` only when a replica acknowledged it and `Fail` only
//! when no attempt may have applied it; each observation is one linearizable list, taken
//! between the op's invoke and complete times.

mod agent;
mod api;
mod http;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use self::api::{Api, WriteResult};
use super::{Ctx, Kind, Opts};
use crate::checker::control_plane::{converged, final_desired, Observation, AGENT_KEY, OBSERVE_KEY, SCALE_KEY};
use crate::history::{Call, History, Op, Outcome, Ret};

/// Port of each replica's Kubernetes API (the cluster's `API_PORT`).
const API_PORT: u16 = 6443;
/// Replicas the Deployment is created with.
const INITIAL_REPLICAS: u32 = 5;
/// Range of replica counts the scaler picks from: small enough for three hollow nodes.
const REPLICAS: std::ops::RangeInclusive<u32> = 1..=8;
/// Pause between scale ops, in milliseconds (a few seconds: room for the controllers).
const SCALE_EVERY_MS: std::ops::Range<u64> = 1500..4000;
/// Pause between observations.
const OBSERVE_EVERY: Duration = Duration::from_millis(500);
/// How long the pods may take to converge once the faults healed.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the workload until cancelled, then waits for convergence and tears down.
pub async fn run(endpoints: Vec<String>, opts: Opts, ctx: Ctx) -> History {
    let urls: Vec<String> = endpoints.iter().map(|e| api_url(e)).collect();
    let tag = format!("{}-{}", std::process::id(), opts.seed % 10_000);
    let node_prefix = format!("cp-{tag}-");
    let namespace = format!("jepsen-cp-{tag}");
    let api = Api { urls: urls.clone(), namespace, name: "scaled".to_string(), node_prefix: node_prefix.clone() };
    let base = Kind::ControlPlane.process_base();
    let mut agent = match agent::Agent::start(&urls, &node_prefix, ctx.clock.ns()).await {
        Ok(agent) => Some(agent),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "control-plane workload: the agent did not start");
            None
        }
    };
    let mut scaler = Recorder { process: base, ctx: ctx.clone(), ops: Vec::new() };
    let acked = Arc::new(AtomicU32::new(0));
    let mut ops = Vec::new();
    if let Some(agent) = agent.as_mut() {
        if create(&api, &mut scaler, &acked).await {
            let mut observer =
                Observer { recorder: Recorder { process: base + 1, ctx: ctx.clone(), ops: Vec::new() }, agent };
            let rng = StdRng::seed_from_u64(opts.seed ^ 0x4350_5343);
            tokio::join!(scale_loop(&api, &mut scaler, &acked, rng), observe_loop(&api, &mut observer, &acked));
            let values: Vec<(u32, bool)> = scales(&scaler.ops);
            converge(&api, &mut observer, &acked, &final_desired(&values)).await;
            ops.append(&mut observer.recorder.ops);
        }
    }
    ops.append(&mut scaler.ops);
    if api.delete_namespace().await != WriteResult::Ok {
        tracing::warn!(namespace = %api.namespace, "control-plane workload: namespace not deleted");
    }
    if let Some(agent) = agent.as_mut() {
        let stopped_ns = ctx.clock.ns();
        let run = agent.stop(stopped_ns).await;
        let complete_ns = run.exit.as_ref().map_or(stopped_ns, |e| e.noticed_ns);
        let (invoke_ns, outcome) = (agent.started_ns, Outcome::Ok(Ret::Done));
        ops.push(Op {
            process: base + 2,
            key: AGENT_KEY.to_string(),
            call: run.to_call(),
            invoke_ns,
            complete_ns,
            outcome,
        });
    }
    ops.sort_by_key(|op| op.invoke_ns);
    History::new(ops)
}

/// `http://ip:2379` (an etcd endpoint) → `http://ip:6443` (that node's API).
fn api_url(endpoint: &str) -> String {
    let host = endpoint.trim_start_matches("http://").rsplit_once(':').map_or(endpoint, |(h, _)| h);
    format!("http://{host}:{API_PORT}")
}

/// The ops of one client process of this workload.
struct Recorder {
    process: u32,
    ctx: Ctx,
    ops: Vec<Op>,
}

impl Recorder {
    fn record(&mut self, key: String, call: Call, invoke_ns: u64, outcome: Outcome) {
        self.ctx.stats.count(&outcome);
        let complete_ns = self.ctx.clock.ns().max(invoke_ns);
        self.ops.push(Op { process: self.process, key, call, invoke_ns, complete_ns, outcome });
    }
}

fn outcome(result: WriteResult) -> Outcome {
    match result {
        WriteResult::Ok => Outcome::Ok(Ret::Done),
        WriteResult::Fail => Outcome::Fail,
        WriteResult::Info => Outcome::Info,
    }
}

/// The scale values and whether each was acknowledged (failed ones left out).
fn scales(ops: &[Op]) -> Vec<(u32, bool)> {
    ops.iter()
        .filter_map(|op| match (&op.call, &op.outcome) {
            (Call::Write { value }, Outcome::Ok(_) | Outcome::Info) => Some((*value as u32, op.is_ok())),
            _ => None,
        })
        .collect()
}

/// Creates the namespace and Deployment, retrying until acknowledged or cancelled.
async fn create(api: &Api, scaler: &mut Recorder, acked: &AtomicU32) -> bool {
    let invoke = scaler.ctx.clock.ns();
    for attempt in 0.. {
        match api.create(attempt, INITIAL_REPLICAS).await {
            WriteResult::Ok => {
                acked.store(INITIAL_REPLICAS, Ordering::SeqCst);
                let call = Call::Write { value: i64::from(INITIAL_REPLICAS) };
                scaler.record(SCALE_KEY.to_string(), call, invoke, Outcome::Ok(Ret::Done));
                return true;
            }
            _ if scaler.ctx.cancel.is_cancelled() => break,
            _ => tokio::time::sleep(OBSERVE_EVERY).await,
        }
    }
    let call = Call::Write { value: i64::from(INITIAL_REPLICAS) };
    scaler.record(SCALE_KEY.to_string(), call, invoke, Outcome::Info);
    false
}

async fn scale_loop(api: &Api, scaler: &mut Recorder, acked: &AtomicU32, mut rng: StdRng) {
    let mut cancel = scaler.ctx.cancel.clone();
    let mut current = INITIAL_REPLICAS;
    let mut start = 0;
    loop {
        let pause = Duration::from_millis(rng.gen_range(SCALE_EVERY_MS));
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        let mut value = rng.gen_range(REPLICAS);
        if value == current {
            value = if value == *REPLICAS.end() { value - 1 } else { value + 1 };
        }
        let invoke = scaler.ctx.clock.ns();
        let result = api.scale(start, value).await;
        start += 1;
        if result == WriteResult::Ok {
            acked.store(value, Ordering::SeqCst);
        }
        if result != WriteResult::Fail {
            current = value;
        }
        scaler.record(SCALE_KEY.to_string(), Call::Write { value: i64::from(value) }, invoke, outcome(result));
    }
}

/// The observer process: its ops, and the agent it checks on every observation.
struct Observer<'a> {
    recorder: Recorder,
    agent: &'a mut agent::Agent,
}

/// Lists the pods, the agent's nodes (and, in the final phase, the ReplicaSets) once,
/// records it, and checks that the agent still runs.
async fn observe(
    api: &Api,
    observer: &mut Observer<'_>,
    acked: &AtomicU32,
    start: usize,
    final_phase: bool,
) -> Option<Observation> {
    let recorder = &mut observer.recorder;
    let invoke = recorder.ctx.clock.ns();
    observer.agent.check(invoke);
    let acked_desired = acked.load(Ordering::SeqCst);
    let pods = api.pods(start).await;
    let nodes = api.nodes(start).await;
    let replica_sets = if final_phase { api.replica_sets(start).await } else { Some(Vec::new()) };
    let (Some(pods), Some(nodes), Some(replica_sets)) = (pods, nodes, replica_sets) else {
        recorder.record(OBSERVE_KEY.to_string(), Call::Observe { data: String::new() }, invoke, Outcome::Fail);
        return None;
    };
    let obs = Observation { final_phase, acked_desired, pods, replica_sets, nodes };
    recorder.record(OBSERVE_KEY.to_string(), obs.to_call(), invoke, Outcome::Ok(Ret::Done));
    Some(obs)
}

async fn observe_loop(api: &Api, observer: &mut Observer<'_>, acked: &AtomicU32) {
    let mut cancel = observer.recorder.ctx.cancel.clone();
    let mut start = 0;
    while !cancel.is_cancelled() {
        observe(api, observer, acked, start, false).await;
        start += 1;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(OBSERVE_EVERY) => {}
        }
    }
}

/// Polls until the pods match one of `allowed` or [`CONVERGE_TIMEOUT`] passes.
async fn converge(api: &Api, observer: &mut Observer<'_>, acked: &AtomicU32, allowed: &[u32]) {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let mut start = 0;
    while Instant::now() < deadline {
        if let Some(obs) = observe(api, observer, acked, start, true).await {
            if converged(&obs, allowed).is_empty() {
                return;
            }
        }
        start += 1;
        tokio::time::sleep(OBSERVE_EVERY).await;
    }
    tracing::warn!(?allowed, "control-plane workload: pods did not converge in time");
}
