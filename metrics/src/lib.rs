//! `flotilla-metrics`: the process's Prometheus metrics, on `prometheus-client`.
//!
//! One registry per process (a replica or an agent), every family named `flotilla_*`. The
//! families are declared here, in one place, grouped by the component that updates them;
//! each group is created and registered the first time it is asked for ([`store`],
//! [`api`], [`scheduler`], [`controllers`], [`agent`]), so a process exposes the groups it
//! runs: a replica registers the first four at start (the scheduler and controllers run on
//! whichever replica leads, and a follower shows their families at zero), an agent the last.
//! Values that are read rather than counted (database size, open watches) are refreshed by
//! hooks right before a scrape ([`on_scrape`]). [`encode`] is the text exposition format.
//!
//! Invariant: a family is registered exactly once per process (each group lives in a
//! `OnceLock`), so the exposition never repeats a name.

use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use prometheus_client;

/// The content type of [`encode`]'s output (OpenMetrics text, which Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Hook = Box<dyn Fn() + Send + Sync>;

struct Process {
    registry: Registry,
    hooks: Vec<Hook>,
}

fn process() -> &'static Mutex<Process> {
    static PROCESS: OnceLock<Mutex<Process>> = OnceLock::new();
    PROCESS.get_or_init(|| Mutex::new(Process { registry: Registry::with_prefix("flotilla"), hooks: Vec::new() }))
}

fn with_registry(f: impl FnOnce(&mut Registry)) {
    f(&mut process().lock().expect("metrics lock poisoned").registry);
}

/// Run `hook` before every scrape (to refresh gauges whose values are read, not counted).
pub fn on_scrape(hook: impl Fn() + Send + Sync + 'static) {
    process().lock().expect("metrics lock poisoned").hooks.push(Box::new(hook));
}

/// Every registered family in the text exposition format, after running the scrape hooks.
pub fn encode() -> String {
    let p = process().lock().expect("metrics lock poisoned");
    for hook in &p.hooks {
        hook();
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &p.registry).expect("writing to a String cannot fail");
    out
}

/// Latency buckets from 1 ms to about 33 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The replicated store.
pub struct Store {
    pub raft_term: Gauge,
    pub raft_is_leader: Gauge,
    pub raft_leader_changes: Counter,
    pub raft_last_log_index: Gauge,
    pub raft_commit_index: Gauge,
    pub raft_applied_index: Gauge,
    /// Writes that did not commit (no leader, lost leadership, timeout).
    pub raft_proposal_failures: Counter,
    /// From a write's submission to its result (committed and applied).
    pub raft_proposal_seconds: Histogram,
    pub snapshots: Counter,
    pub snapshot_seconds: Histogram,
    pub db_size_bytes: Gauge,
    pub watchers: Gauge,
}

pub fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let m = Store {
            raft_term: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_leader_changes: Counter::default(),
            raft_last_log_index: Gauge::default(),
            raft_commit_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_proposal_failures: Counter::default(),
            raft_proposal_seconds: seconds(),
            snapshots: Counter::default(),
            snapshot_seconds: seconds(),
            db_size_bytes: Gauge::default(),
            watchers: Gauge::default(),
        };
        with_registry(|r| {
            r.register("raft_term", "The Raft term this replica is in", m.raft_term.clone());
            r.register("raft_is_leader", "1 when this replica is the Raft leader", m.raft_is_leader.clone());
            r.register(
                "raft_leader_changes",
                "Times this replica saw the leader change",
                m.raft_leader_changes.clone(),
            );
            r.register("raft_last_log_index", "Index of the last entry in the log", m.raft_last_log_index.clone());
            r.register("raft_commit_index", "Index of the last entry known committed", m.raft_commit_index.clone());
            r.register("raft_applied_index", "Index of the last entry applied", m.raft_applied_index.clone());
            r.register("raft_proposal_failures", "Writes that did not commit", m.raft_proposal_failures.clone());
            r.register(
                "raft_proposal_seconds",
                "Write submitted to committed and applied",
                m.raft_proposal_seconds.clone(),
            );
            r.register("store_snapshots", "State-machine snapshots built", m.snapshots.clone());
            r.register("store_snapshot_seconds", "Time to build a snapshot", m.snapshot_seconds.clone());
            r.register("store_db_size_bytes", "Size of the state machine's database", m.db_size_bytes.clone());
            r.register("store_watchers", "Open watchers on the store", m.watchers.clone());
        });
        m
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Upstream's verbs: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    pub resource: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: String,
    pub resource: String,
}

/// The Kubernetes API.
pub struct Api {
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency; watches (long-running) are not timed.
    pub request_seconds: Family<VerbLabels, Histogram>,
    pub open_watches: Gauge,
}

pub fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let m = Api {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(seconds),
            open_watches: Gauge::default(),
        };
        with_registry(|r| {
            r.register("apiserver_requests", "Kubernetes API requests by verb, resource and code", m.requests.clone());
            r.register("apiserver_request_seconds", "Kubernetes API request latency", m.request_seconds.clone());
            r.register("apiserver_open_watches", "Kubernetes API watches being served", m.open_watches.clone());
        });
        m
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `scheduled`, `unschedulable` or `error`.
    pub result: String,
}

/// The scheduler (on the leader).
pub struct Scheduler {
    pub attempts: Family<ResultLabels, Counter>,
    /// One scheduling attempt: placement and binding.
    pub attempt_seconds: Histogram,
}

pub fn scheduler() -> &'static Scheduler {
    static SCHEDULER: OnceLock<Scheduler> = OnceLock::new();
    SCHEDULER.get_or_init(|| {
        let m = Scheduler { attempts: Family::default(), attempt_seconds: seconds() };
        with_registry(|r| {
            r.register("scheduler_attempts", "Scheduling attempts by result", m.attempts.clone());
            r.register("scheduler_attempt_seconds", "Time of one scheduling attempt", m.attempt_seconds.clone());
        });
        m
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

/// The controllers (on the leader).
pub struct Controllers {
    pub reconciles: Family<ControllerLabels, Counter>,
    pub reconcile_errors: Family<ControllerLabels, Counter>,
    pub reconcile_seconds: Family<ControllerLabels, Histogram>,
    /// Keys waiting in the work queue.
    pub queue_depth: Family<ControllerLabels, Gauge>,
}

pub fn controllers() -> &'static Controllers {
    static CONTROLLERS: OnceLock<Controllers> = OnceLock::new();
    CONTROLLERS.get_or_init(|| {
        let m = Controllers {
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_seconds: Family::new_with_constructor(seconds),
            queue_depth: Family::default(),
        };
        with_registry(|r| {
            r.register("controller_reconciles", "Reconciles by controller", m.reconciles.clone());
            r.register("controller_reconcile_errors", "Reconciles that failed", m.reconcile_errors.clone());
            r.register("controller_reconcile_seconds", "Reconcile latency", m.reconcile_seconds.clone());
            r.register("controller_queue_depth", "Keys waiting in the work queue", m.queue_depth.clone());
        });
        m
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// `liveness`, `readiness` or `startup`.
    pub probe: String,
}

/// The node agent.
pub struct Agent {
    pub pod_starts: Counter,
    pub container_starts: Counter,
    pub probe_failures: Family<ProbeLabels, Counter>,
}

pub fn agent() -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        let m = Agent {
            pod_starts: Counter::default(),
            container_starts: Counter::default(),
            probe_failures: Family::default(),
        };
        with_registry(|r| {
            r.register("agent_pod_starts", "Pods whose sandbox the agent started", m.pod_starts.clone());
            r.register("agent_container_starts", "Containers the agent started", m.container_starts.clone());
            r.register("agent_probe_failures", "Failed probes by kind", m.probe_failures.clone());
        });
        m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_prefixed_registered_once_and_hooks_run_before_a_scrape() {
        store().raft_term.set(7);
        let _ = store();
        api()
            .requests
            .get_or_create(&RequestLabels { verb: "get".into(), resource: "pods".into(), code: "200".into() })
            .inc();
        on_scrape(|| {
            store().watchers.set(3);
        });
        let text = encode();
        assert!(text.contains("flotilla_raft_term 7\n"), "{text}");
        assert!(text.contains("flotilla_store_watchers 3\n"), "the hook ran: {text}");
        assert!(
            text.contains(r#"flotilla_apiserver_requests_total{verb="get",resource="pods",code="200"} 1"#),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE flotilla_raft_term gauge").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
