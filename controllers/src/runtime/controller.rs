//! [`Controller`]: runs a [`Reconciler`] over the keys its informers' changes produce.
//!
//! Data flow: each watched [`Store`] sends its [`Change`]s to a feed task that maps them
//! to keys (the object's own key, its controller owner's key, or any mapping) and adds
//! them to the [`WorkQueue`]; `workers` tasks take keys from the queue and reconcile them,
//! each reconcile in its own `reconcile` tracing span carrying the controller and the key.
//!
//! Invariants:
//! - No reconcile starts before every store the controller reads has synced; then every
//!   key of the primary store is queued once, so objects that changed while no controller
//!   ran (e.g. before this replica became leader) are reconciled.
//! - One key is never reconciled twice at once (the queue's guarantee); keys differ freely.
//! - After a reconcile: `Ok(Done)` resets the key's backoff; `Ok(RequeueAfter(d))` resets it
//!   and queues the key again after `d`; `Err(e)` asks [`Reconciler::error_policy`] (by
//!   default, per-key exponential backoff). A panic counts as an error and is logged.
//! - Cancellation stops at once: in-flight reconciles are dropped mid-way. That is safe
//!   because every write is a compare-and-swap on resourceVersion, and the next leader
//!   reconciles every object again.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use futures::FutureExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::backoff::Backoff;
use super::key::Key;
use super::owner;
use super::queue::WorkQueue;
use super::store::{Change, Object, Store};

/// Upper bound on workers per controller: reconciles are I/O on one local store, so more
/// workers than this only add contention.
pub const MAX_WORKERS: usize = 64;

/// What to do with a key after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the next change.
    Done,
    /// Reconcile again after this delay (waiting on time: a grace period, a deadline).
    RequeueAfter(Duration),
}

/// What to do with a key whose reconcile failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// Retry after the key's exponential backoff.
    Backoff,
    /// Retry after this delay.
    RequeueAfter(Duration),
    /// Do not retry; the next change to the object brings it back.
    Forget,
}

/// A controller's logic: bring the object named by a key to its desired state.
pub trait Reconciler: Send + Sync + 'static {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reconcile the object named `key`, reading caches and writing through the client.
    /// It must be idempotent: it may run again for the same state, and be dropped midway.
    fn reconcile(&self, key: &Key) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// Decide the retry after `error` (the runner logs the error).
    fn error_policy(&self, key: &Key, error: &Self::Error) -> ErrorAction {
        let _ = (key, error);
        ErrorAction::Backoff
    }
}

/// How a controller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Keys reconciled concurrently (1..=[`MAX_WORKERS`]).
    pub workers: usize,
    /// Retry delays of failing keys.
    pub backoff: Backoff,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self { workers: 2, backoff: Backoff::CONTROLLER }
    }
}

impl ControllerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 || self.workers > MAX_WORKERS {
            return Err(format!("workers must be in 1..={MAX_WORKERS}, not {}", self.workers));
        }
        self.backoff.validate()
    }
}

/// A reconciler wired to its stores; run it with [`Controller::run`].
pub struct Controller<R> {
    name: &'static str,
    reconciler: Arc<R>,
    config: ControllerConfig,
    queue: WorkQueue,
    /// The primary kind, whose controller owner references [`Controller::owns`] follows.
    owner_group: &'static str,
    owner_kind: &'static str,
    /// One per subscription: forwards mapped keys into the queue until the store goes away.
    feeds: Vec<BoxFuture<'static, ()>>,
    /// One per store read: completes when it has synced.
    synced: Vec<BoxFuture<'static, ()>>,
    /// The primary store's keys, queued once at start.
    initial_keys: Box<dyn Fn() -> Vec<Key> + Send + Sync>,
}

impl<R: Reconciler> Controller<R> {
    /// A controller named `name` (in logs and spans) whose keys are objects of `primary`;
    /// each change of a primary object queues its key.
    ///
    /// Subscribes to the stores at once (here and in [`Controller::owns`] /
    /// [`Controller::watches`]): run the controller or drop it, as an undrained subscription
    /// stalls its informer once [`super::CHANGE_BUFFER`] changes are pending. Panics on an
    /// invalid `config` (a programming error: validate user-supplied configs first).
    pub fn new<K: Object>(name: &'static str, reconciler: R, primary: &Store<K>, config: ControllerConfig) -> Self {
        if let Err(e) = config.validate() {
            panic!("controller {name}: {e}");
        }
        let store = primary.clone();
        let mut c = Self {
            name,
            reconciler: Arc::new(reconciler),
            config,
            queue: WorkQueue::new(config.backoff),
            owner_group: K::GROUP,
            owner_kind: K::KIND,
            feeds: Vec::new(),
            synced: Vec::new(),
            initial_keys: Box::new(move || store.keys()),
        };
        c = c.watches(primary, |change| vec![change.key.clone()]);
        c
    }

    /// Also queue the controlling owner (of the primary kind) of every changed object of
    /// `dependents`: a Pod change queues its ReplicaSet.
    pub fn owns<C: Object>(self, dependents: &Store<C>) -> Self {
        let (group, kind) = (self.owner_group, self.owner_kind);
        self.watches(dependents, move |change| {
            let mut keys: Vec<Key> =
                change.objects().filter_map(|o| owner::controller_key_for(o.metadata(), group, kind)).collect();
            keys.dedup();
            keys
        })
    }

    /// Also queue the keys `map` returns for every change of `store` (and wait for it to
    /// sync before starting).
    pub fn watches<C: Object>(
        mut self,
        store: &Store<C>,
        map: impl Fn(&Change<C>) -> Vec<Key> + Send + 'static,
    ) -> Self {
        let mut changes = store.subscribe();
        let queue = self.queue.clone();
        self.feeds.push(Box::pin(async move {
            while let Some(change) = changes.recv().await {
                for key in map(&change) {
                    queue.add(key);
                }
            }
        }));
        self.reads(store)
    }

    /// Wait for `store` to sync before starting (a store the reconciler reads but whose
    /// changes need not queue anything).
    pub fn reads<C: Object>(mut self, store: &Store<C>) -> Self {
        let store = store.clone();
        self.synced.push(Box::pin(async move { store.wait_synced().await }));
        self
    }

    /// The controller's queue, e.g. to queue keys from elsewhere.
    pub fn queue(&self) -> WorkQueue {
        self.queue.clone()
    }

    /// Wait for the stores to sync, then reconcile until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let Self { name, reconciler, config, queue, feeds, synced, initial_keys, .. } = self;
        // Feeds start first: an informer waits for its subscribers, so they must drain
        // even while the controller waits for the other stores to sync. Dropping the set
        // when `run` returns aborts them, which also drops their subscriptions.
        let mut tasks = JoinSet::new();
        for feed in feeds {
            tasks.spawn(feed);
        }
        tokio::select! {
            _ = cancel.cancelled() => return queue.shutdown(),
            _ = join_all(synced) => {}
        }
        let initial = initial_keys();
        tracing::info!(controller = name, objects = initial.len(), workers = config.workers, "caches synced; starting");
        for key in initial {
            queue.add(key);
        }
        let mut workers = JoinSet::new();
        for _ in 0..config.workers {
            workers.spawn(worker(name, reconciler.clone(), queue.clone(), cancel.clone()));
        }
        cancel.cancelled().await;
        queue.shutdown();
        // Workers return promptly: a cancelled reconcile is dropped, not awaited.
        while workers.join_next().await.is_some() {}
        tracing::info!(controller = name, "stopped");
    }
}

/// Take keys and reconcile them until the queue shuts down or `cancel` fires.
async fn worker<R: Reconciler>(name: &'static str, reconciler: Arc<R>, queue: WorkQueue, cancel: CancellationToken) {
    loop {
        let key = tokio::select! {
            _ = cancel.cancelled() => return,
            key = queue.get() => match key { Some(k) => k, None => return },
        };
        let span = tracing::info_span!("reconcile", controller = name, key = %key);
        let metrics = flotilla_metrics::controllers();
        let labels = flotilla_metrics::ControllerLabels { controller: name.to_string() };
        metrics.queue_depth.get_or_create(&labels).set(queue.len() as i64);
        let started = std::time::Instant::now();
        let attempt = AssertUnwindSafe(reconciler.reconcile(&key)).catch_unwind().instrument(span.clone());
        let outcome = tokio::select! {
            _ = cancel.cancelled() => {
                queue.done(&key);
                return;
            }
            outcome = attempt => outcome,
        };
        metrics.reconciles.get_or_create(&labels).inc();
        metrics.reconcile_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        if !matches!(outcome, Ok(Ok(_))) {
            metrics.reconcile_errors.get_or_create(&labels).inc();
        }
        span.in_scope(|| settle(&*reconciler, &queue, &key, outcome));
        queue.done(&key);
    }
}

/// Record a reconcile's outcome in the queue: forget, requeue, or back off.
fn settle<R: Reconciler>(
    reconciler: &R,
    queue: &WorkQueue,
    key: &Key,
    outcome: std::thread::Result<Result<Action, R::Error>>,
) {
    match outcome {
        Ok(Ok(Action::Done)) => queue.forget(key),
        Ok(Ok(Action::RequeueAfter(delay))) => {
            queue.forget(key);
            queue.add_after(key.clone(), delay);
        }
        Ok(Err(error)) => match reconciler.error_policy(key, &error) {
            ErrorAction::Backoff => {
                let retry_in = queue.add_rate_limited(key.clone());
                tracing::warn!(%error, failures = queue.failures(key), ?retry_in, "reconcile failed");
            }
            ErrorAction::RequeueAfter(retry_in) => {
                tracing::warn!(%error, ?retry_in, "reconcile failed");
                queue.add_after(key.clone(), retry_in);
            }
            ErrorAction::Forget => {
                tracing::warn!(%error, "reconcile failed; not retrying");
                queue.forget(key);
            }
        },
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let retry_in = queue.add_rate_limited(key.clone());
            tracing::error!(panic = %what, ?retry_in, "reconcile panicked");
        }
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
