//! The runner's contract over hand-built caches (no store): one key never in two workers at
//! once, nothing before every cache synced, every primary key reconciled at start, owner
//! mapping, `RequeueAfter`, error backoff and `forget`, panics survived, one `reconcile`
//! span per reconcile naming the key, and a prompt stop on cancel.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tokio::time::Instant;

use super::*;
use crate::runtime::store::Writer;

/// How long a condition the test waits for may take.
const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("scripted failure")]
struct Failed;

/// A reconciler driven by a closure over the call number (0-based) and the key, recording
/// every call and any overlap of one key with itself.
struct Scripted<F> {
    script: F,
    calls: Arc<Mutex<Vec<Key>>>,
    in_flight: Arc<Mutex<HashSet<Key>>>,
    overlaps: Arc<AtomicUsize>,
    policy: ErrorAction,
}

impl<F> Scripted<F> {
    fn new(script: F) -> Self {
        Self {
            script,
            calls: Arc::default(),
            in_flight: Arc::default(),
            overlaps: Arc::default(),
            policy: ErrorAction::Backoff,
        }
    }
}

impl<F, Fut> Reconciler for Scripted<F>
where
    F: Fn(usize, Key) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, Failed>> + Send,
{
    type Error = Failed;

    async fn reconcile(&self, key: &Key) -> Result<Action, Failed> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(key.clone());
            calls.len() - 1
        };
        if !self.in_flight.lock().unwrap().insert(key.clone()) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        let result = (self.script)(n, key.clone()).await;
        self.in_flight.lock().unwrap().remove(key);
        result
    }

    fn error_policy(&self, _key: &Key, _error: &Failed) -> ErrorAction {
        self.policy
    }
}

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

fn key(name: &str) -> Key {
    Key::namespaced("default", name)
}

async fn synced_store(items: Vec<ConfigMap>) -> Writer<ConfigMap> {
    let mut w = Writer::new();
    w.replace(items).await;
    w
}

/// Wait until `cond` holds, yielding to the runtime in between.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn fast() -> ControllerConfig {
    ControllerConfig { workers: 4, backoff: Backoff { base: Duration::from_millis(1), max: Duration::from_millis(8) } }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_is_never_reconciled_twice_at_once_and_a_re_add_runs_once_after() {
    /// Calls that re-add their own key while in flight.
    const READDS: usize = 300;
    let w = synced_store(vec![cm("k0"), cm("k1"), cm("k2")]).await;
    let queue: Arc<std::sync::OnceLock<WorkQueue>> = Arc::default();
    let q = queue.clone();
    let r = Scripted::new(move |n, key: Key| {
        if n < READDS {
            // While this key is in flight, an idle worker would take it if the queue let it.
            q.get().expect("queue set before run").add(key);
        }
        async {
            // Stay in flight across scheduling points and a timer so overlaps would show.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(Action::Done)
        }
    });
    let (calls, overlaps) = (r.calls.clone(), r.overlaps.clone());
    let c = Controller::new("overlap", r, &w.store(), fast());
    let q = c.queue();
    assert!(queue.set(q.clone()).is_ok());
    let cancel = CancellationToken::new();
    let run = tokio::spawn(c.run(cancel.clone()));
    until("every re-add reconciled and the queue idle", || {
        calls.lock().unwrap().len() >= READDS + 3 && q.processing_len() == 0 && q.is_empty()
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(DEADLINE, run).await.expect("run stops").expect("run task");
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "a key was reconciled by two workers at once");
    // Each key once at start, plus exactly one reconcile per re-add made while in flight.
    assert_eq!(calls.lock().unwrap().len(), READDS + 3);
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_runs_before_every_store_synced_then_every_primary_key_runs() {
    let primary = synced_store(vec![cm("a"), cm("b")]).await;
    let mut other: Writer<Pod> = Writer::new();
    let other_store = other.store();
    let saw_unsynced = Arc::new(AtomicBool::new(false));
    let flag = saw_unsynced.clone();
    let r = Scripted::new(move |_, _| {
        if !other_store.has_synced() {
            flag.store(true, Ordering::SeqCst);
        }
        async { Ok(Action::Done) }
    });
    let calls = r.calls.clone();
    let c = Controller::new("sync", r, &primary.store(), fast()).reads(&other.store());
    let cancel = CancellationToken::new();
    let run = tokio::spawn(c.run(cancel.clone()));
    // On this single-threaded runtime, yielding lets the runner and any worker run.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(calls.lock().unwrap().is_empty(), "reconciled before a store synced");
    other.replace(vec![]).await;
    until("both primary keys reconciled", || calls.lock().unwrap().len() == 2).await;
    let mut got = calls.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec![key("a"), key("b")]);
    assert!(!saw_unsynced.load(Ordering::SeqCst));
    cancel.cancel();
    tokio::time::timeout(DEADLINE, run).await.expect("run stops").expect("run task");
}

#[tokio::test]
async fn changes_of_the_primary_and_of_owned_objects_queue_keys() {
    let mut rs: Writer<ReplicaSet> = Writer::new();
    rs.replace(vec![]).await;
    let mut pods: Writer<Pod> = Writer::new();
    pods.replace(vec![]).await;
    let r = Scripted::new(|_, _| async { Ok(Action::Done) });
    let calls = r.calls.clone();
    let c = Controller::new("owners", r, &rs.store(), fast()).owns(&pods.store());
    let cancel = CancellationToken::new();
    let run = tokio::spawn(c.run(cancel.clone()));

    let owned = Pod {
        metadata: ObjectMeta {
            name: Some("web-x1y2z".into()),
            namespace: Some("prod".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web".into(),
                uid: "u".into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        ..Default::default()
    };
    pods.apply(owned).await;
    until("the owner's key reconciled", || calls.lock().unwrap().contains(&Key::namespaced("prod", "web"))).await;
    let mut orphan = Pod::default();
    orphan.metadata.name = Some("stray".into());
    orphan.metadata.namespace = Some("prod".into());
    pods.apply(orphan).await;
    let mut own = ReplicaSet::default();
    own.metadata.name = Some("api".into());
    own.metadata.namespace = Some("prod".into());
    rs.apply(own).await;
    until("the primary's key reconciled", || calls.lock().unwrap().contains(&Key::namespaced("prod", "api"))).await;
    let got = calls.lock().unwrap().clone();
    assert!(!got.iter().any(|k| k.name == "stray" || k.name == "web-x1y2z"), "a pod key was queued: {got:?}");
    cancel.cancel();
    tokio::time::timeout(DEADLINE, run).await.expect("run stops").expect("run task");
}

#[tokio::test]
async fn requeue_after_reconciles_again_and_errors_back_off_until_success() {
    let w = synced_store(vec![cm("timer"), cm("flaky")]).await;
    let r = Scripted::new(|_, key: Key| async move {
        match key.name.as_str() {
            "timer" => Ok(Action::RequeueAfter(Duration::from_millis(5))),
            _ => Err(Failed),
        }
    });
    let calls = r.calls.clone();
    let count = |name: &str| calls.lock().unwrap().iter().filter(|k| k.name == name).count();
    let c = Controller::new("retry", r, &w.store(), fast());
    let q = c.queue();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(c.run(cancel.clone()));
    until("three timed reconciles and three failures", || count("timer") >= 3 && count("flaky") >= 3).await;
    assert!(q.failures(&key("flaky")) >= 2, "failures are counted");
    assert_eq!(q.failures(&key("timer")), 0, "success forgets");
    cancel.cancel();
    tokio::time::timeout(DEADLINE, run).await.expect("run stops").expect("run task");
}

#[tokio::test]
async fn a_forgotten_error_is_not_retried_and_a_panic_is_retried() {
    let w = synced_store(vec![]).await;
    let mut r = Scripted::new(|n, key: Key| async move {
        match key.name.as_str() {
            "panics" if n < 2 => panic!("scripted panic"),
            "panics" => Ok(Action::Done),
            _ => Err(Failed),
        }
    });
    r.policy = ErrorAction::Forget;
    let calls = r.calls.clone();
    let c = Controller::new("forget", r, &w.store(), fast());
    let q = c.queue();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(c.run(cancel.clone()));
    q.add(key("fails"));
    q.add(key("panics"));
    until("the panicking key to succeed on its retry", || {
        calls.lock().unwrap().iter().filter(|k| k.name == "panics").count() >= 2
    })
    .await;
    until("the queue to go idle", || q.processing_len() == 0 && q.is_empty() && q.delayed_len() == 0).await;
    assert_eq!(calls.lock().unwrap().iter().filter(|k| k.name == "fails").count(), 1);
    assert_eq!(q.failures(&key("fails")), 0);
    cancel.cancel();
    tokio::time::timeout(DEADLINE, run).await.expect("run stops").expect("run task");
}

#[tokio::test]
async fn cancel_stops_the_runner_even_mid_reconcile() {
    let w = synced_store(vec![cm("stuck")]).await;
    let r = Scripted::new(|_, _| futures::future::pending::<Result<Action, Failed>>());
    let calls = r.calls.clone();
    let c = Controller::new("stuck", r, &w.store(), fast());
    let q = c.queue();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(c.run(cancel.clone()));
    until("the reconcile to start", || !calls.lock().unwrap().is_empty()).await;
    cancel.cancel();
    tokio::time::timeout(DEADLINE, run).await.expect("run stops at once").expect("run task");
    assert!(q.is_shutdown());
}

#[test]
fn config_validation_bounds_workers() {
    assert!(ControllerConfig::default().validate().is_ok());
    assert!(ControllerConfig { workers: 0, ..Default::default() }.validate().is_err());
    assert!(ControllerConfig { workers: MAX_WORKERS + 1, ..Default::default() }.validate().is_err());
}

/// Records the `key` field of every `reconcile` span (installed per thread).
struct SpanLog {
    keys: Arc<Mutex<Vec<String>>>,
    next_id: AtomicU64,
}

struct KeyField(Option<String>);

impl tracing::field::Visit for KeyField {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "key" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for SpanLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        if attrs.metadata().name() == "reconcile" {
            let mut field = KeyField(None);
            attrs.record(&mut field);
            self.keys.lock().unwrap().push(field.0.unwrap_or_default());
        }
        tracing::span::Id::from_u64(self.next_id.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn each_reconcile_runs_in_its_own_span_naming_the_key() {
    let spans: Arc<Mutex<Vec<String>>> = Arc::default();
    // The runtime is single-threaded, so the workers' spans are made on this thread.
    let _guard = tracing::subscriber::set_default(SpanLog { keys: spans.clone(), next_id: AtomicU64::new(0) });
    let w = synced_store(vec![cm("a"), cm("b")]).await;
    let r = Scripted::new(|_, _| async { Ok(Action::Done) });
    let calls = r.calls.clone();
    let c = Controller::new("spans", r, &w.store(), fast());
    let q = c.queue();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(c.run(cancel.clone()));
    until("both keys reconciled", || calls.lock().unwrap().len() == 2).await;
    q.add(key("a"));
    until("the re-added key reconciled", || calls.lock().unwrap().len() == 3).await;
    cancel.cancel();
    tokio::time::timeout(DEADLINE, run).await.expect("run stops").expect("run task");
    let mut expected: Vec<String> = calls.lock().unwrap().iter().map(|k| k.to_string()).collect();
    let mut got = spans.lock().unwrap().clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "one reconcile span per reconcile, with its key");
    assert_eq!(got, vec!["default/a", "default/a", "default/b"]);
}
