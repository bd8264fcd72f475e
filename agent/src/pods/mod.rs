//! Running the pods bound to one node: [`PodManager`] routes pod events and runtime
//! events to one [`worker::Worker`] per pod; the decisions are in [`sync`] and [`status`],
//! which do no I/O.
//!
//! Invariants:
//! - At most one worker per pod uid at a time, so one pod's containers are never
//!   managed by two loops.
//! - Nothing found in the runtime is touched before the first full list of the node's
//!   pods: containers of pods in that list are adopted by their pods' workers (left
//!   running); containers of pods not in it (deleted while the agent was away) get a
//!   worker that tears them down. Every later list does the same housekeeping.
//! - A pod missing from a list, or seen deleted, has its worker told it is gone.
//!
//! Data flow: [`crate::api::watch`] → `mpsc` (bounded) → [`PodManager::run`] → per-pod
//! `watch` channel (latest Pod only) + `Notify` → [`worker::Worker`] → runtime and
//! `pods/{name}/status`.

pub mod backoff;
pub mod dns;
pub mod effects;
pub mod env;
pub mod probe;
pub mod spec;
pub mod status;
pub mod sync;
pub mod tokens;
pub mod volumes;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::watch::Event;
use crate::api::ApiPool;
use crate::runtime::{Runtime, RuntimeEvent};
use worker::Worker;

/// What every pod worker of a node shares.
pub struct Context {
    pub runtime: Arc<dyn Runtime>,
    pub pool: Arc<ApiPool>,
    pub node_name: String,
    /// The node's address, every pod's hostIP.
    pub host_ip: String,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub resync: Duration,
    /// Pods' volumes, made into host paths.
    pub volumes: volumes::VolumeManager,
    /// Whether `securityContext.privileged: true` containers may run (refused otherwise).
    pub allow_privileged: bool,
    /// Pods' resolver configuration (cluster DNS, the host's resolv.conf).
    pub dns: dns::NodeDns,
    /// Pods' ServiceAccount tokens, reused until due for renewal.
    pub tokens: tokens::TokenCache,
}

struct Handle {
    /// Which worker this is: a finished worker's exit must not remove its successor.
    generation: u64,
    pod: watch::Sender<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
}

/// The pods of one node. See the module doc.
pub struct PodManager {
    ctx: Arc<Context>,
    workers: HashMap<String, Handle>,
    tasks: JoinSet<(String, u64)>,
    generation: u64,
    cancel: CancellationToken,
}

impl PodManager {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx, workers: HashMap::new(), tasks: JoinSet::new(), generation: 0, cancel: CancellationToken::new() }
    }

    /// Route `events` (this node's pods) until they end or `cancel` fires; then stop the
    /// workers (containers keep running: stopping the agent is not deleting pods).
    pub async fn run(mut self, mut events: mpsc::Receiver<Event<Pod>>, cancel: CancellationToken) {
        self.cancel = cancel.child_token();
        let mut runtime_events = self.ctx.runtime.events();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                event = events.recv() => match event {
                    Some(event) => self.apply(event).await,
                    None => break,
                },
                event = next_runtime_event(&mut runtime_events) => self.on_runtime_event(event, &mut runtime_events),
                Some(done) = self.tasks.join_next() => {
                    if let Ok((uid, generation)) = done {
                        if self.workers.get(&uid).is_some_and(|h| h.generation == generation) {
                            self.workers.remove(&uid);
                        }
                    }
                }
            }
        }
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    async fn apply(&mut self, event: Event<Pod>) {
        match event {
            Event::Applied(pod) => self.upsert(Some(Arc::new(pod)), None),
            Event::Deleted(pod) => {
                let uid = spec::uid(&pod).to_string();
                self.upsert(None, Some(uid));
            }
            Event::Listed(pods) => {
                let listed: HashSet<String> = pods.iter().map(|p| spec::uid(p).to_string()).collect();
                let gone: Vec<String> = self.workers.keys().filter(|u| !listed.contains(*u)).cloned().collect();
                for uid in gone {
                    self.upsert(None, Some(uid));
                }
                for pod in pods {
                    self.upsert(Some(Arc::new(pod)), None);
                }
                self.housekeeping().await;
            }
        }
    }

    /// Start a teardown worker for every pod the runtime holds that has no worker.
    async fn housekeeping(&mut self) {
        let runtime = &self.ctx.runtime;
        let (sandboxes, containers) = match (runtime.list_sandboxes(None).await, runtime.list_containers(None).await) {
            (Ok(s), Ok(c)) => (s, c),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(node = self.ctx.node_name, error = %e, "cannot list the runtime's pods");
                return;
            }
        };
        let uids: HashSet<String> =
            sandboxes.into_iter().map(|s| s.pod_uid).chain(containers.into_iter().map(|c| c.pod_uid)).collect();
        let orphans: Vec<String> = uids.into_iter().filter(|u| !self.workers.contains_key(u)).collect();
        for uid in orphans {
            tracing::info!(node = self.ctx.node_name, pod_uid = uid, "removing the containers of a pod that is gone");
            self.upsert(None, Some(uid));
        }
    }

    /// Hand `pod` (or "gone", for `uid`) to its worker, starting one if needed.
    fn upsert(&mut self, pod: Option<Arc<Pod>>, uid: Option<String>) {
        let uid = uid.unwrap_or_else(|| pod.as_deref().map(spec::uid).unwrap_or_default().to_string());
        if let Some(handle) = self.workers.get(&uid) {
            if handle.pod.send(pod.clone()).is_ok() {
                return;
            }
        }
        let (tx, rx) = watch::channel(pod);
        let wake = Arc::new(Notify::new());
        let worker = Worker::new(self.ctx.clone(), uid.clone(), rx, wake.clone());
        self.generation += 1;
        let (generation, cancel) = (self.generation, self.cancel.clone());
        self.tasks.spawn(async move { (worker.run(cancel).await, generation) });
        self.workers.insert(uid, Handle { generation, pod: tx, wake });
    }

    fn on_runtime_event(
        &mut self,
        event: Result<RuntimeEvent, RecvError>,
        source: &mut Option<broadcast::Receiver<RuntimeEvent>>,
    ) {
        match event {
            Ok(e) => {
                if let Some(h) = self.workers.get(&e.pod_uid) {
                    h.wake.notify_one();
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(node = self.ctx.node_name, missed, "runtime events lagged; syncing every pod");
                self.workers.values().for_each(|h| h.wake.notify_one());
            }
            Err(RecvError::Closed) => *source = None,
        }
    }
}

async fn next_runtime_event(source: &mut Option<broadcast::Receiver<RuntimeEvent>>) -> Result<RuntimeEvent, RecvError> {
    match source {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
