//! The controller runtime over a real one-member store (Raft, MVCC, watches, compaction).
//!
//! - An informer syncs from a list, then follows adds, updates and deletes, and reports each
//!   as a change to subscribers, in order.
//! - A namespace/label-scoped informer holds exactly the selected objects, including objects
//!   that start or stop matching.
//! - When its watch expires (410: the store was compacted past the watch's revision) the
//!   informer re-lists, and the diff reports what changed meanwhile, deletions included.
//! - End to end: a small controller that keeps a copy of each marked ConfigMap converges,
//!   follows source changes, and repairs a tampered copy (a dependent's change queues its
//!   controlling owner).
//!
//! The queue's and runner's own contracts are unit tests next to them (`src/runtime/`).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use flotilla_apiserver::client::{Api, Client, Watch};
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::selector::LabelSelector;
use flotilla_apiserver::{ApiError, ApiResult};
use flotilla_controllers::runtime::{
    Action, ApiSource, Backoff, Change, Controller, ControllerConfig, Informer, InformerConfig, Key, ListWatch,
    Reconciler, Store,
};
use flotilla_store::StoreNode;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use support::{configmap, datum, until, wait_for, Solo, DEADLINE};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Start `informer` in the background; returns its store once synced.
async fn start<S: ListWatch<ConfigMap>>(
    informer: Informer<ConfigMap, S>,
    cancel: &CancellationToken,
) -> Store<ConfigMap> {
    let store = informer.store();
    tokio::spawn(informer.run(cancel.clone()));
    tokio::time::timeout(DEADLINE, store.wait_synced()).await.expect("informer synced in time");
    assert!(store.has_synced());
    store
}

/// Every change received so far, as `(name, old data "v", new data "v")`.
fn drain(rx: &mut mpsc::Receiver<Change<ConfigMap>>, log: &mut Vec<(String, Option<String>, Option<String>)>) {
    while let Ok(c) = rx.try_recv() {
        log.push((c.key.name.clone(), c.old.and_then(|o| datum(&o, "v")), c.new.and_then(|n| datum(&n, "v"))));
    }
}

fn change(name: &str, old: Option<&str>, new: Option<&str>) -> (String, Option<String>, Option<String>) {
    (name.to_string(), old.map(String::from), new.map(String::from))
}

#[tokio::test]
async fn informer_syncs_from_a_list_then_follows_adds_updates_and_deletes() {
    let solo = Solo::start().await;
    let api = solo.client.api::<ConfigMap>(Some("default"));
    api.create(&configmap("default", "before", &[("v", "0")], &[])).await.expect("create before");

    let informer = Informer::<ConfigMap>::new(&solo.client, InformerConfig::default());
    let mut changes = informer.store().subscribe();
    let cancel = CancellationToken::new();
    let store = start(informer, &cancel).await;
    assert_eq!(store.get(Some("default"), "before").and_then(|c| datum(&c, "v")), Some("0".into()));

    api.create(&configmap("default", "later", &[("v", "1")], &[])).await.expect("create later");
    until("the add is cached", || store.get(Some("default"), "later").is_some()).await;
    let mut cm = (*store.get(Some("default"), "later").expect("cached")).clone();
    cm.data = Some([("v".to_string(), "2".to_string())].into());
    api.update("later", &cm).await.expect("update later");
    until("the update is cached", || {
        store.get(Some("default"), "later").and_then(|c| datum(&c, "v")) == Some("2".into())
    })
    .await;
    api.delete("before", &DeleteOptions::default()).await.expect("delete before");
    until("the delete is cached", || store.get(Some("default"), "before").is_none()).await;

    let names: Vec<String> = store.list_in("default").iter().filter_map(|c| c.metadata.name.clone()).collect();
    assert_eq!(names, vec!["later"]);
    assert!(store.list_in("kube-system").iter().all(|c| c.metadata.namespace.as_deref() == Some("kube-system")));

    let mut log = Vec::new();
    drain(&mut changes, &mut log);
    let ours: Vec<_> = log.into_iter().filter(|(n, _, _)| n == "before" || n == "later").collect();
    assert_eq!(
        ours,
        vec![
            change("before", None, Some("0")),
            change("later", None, Some("1")),
            change("later", Some("1"), Some("2")),
            change("before", Some("0"), None),
        ],
        "subscribers see every change in order, with the old and the new object"
    );
    cancel.cancel();
}

#[tokio::test]
async fn a_scoped_informer_holds_exactly_the_selected_objects() {
    let solo = Solo::start().await;
    for ns in ["a", "b"] {
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.into());
        solo.client.api::<Namespace>(None).create(&n).await.expect("create namespace");
    }
    let (in_a, in_b) = (solo.client.api::<ConfigMap>(Some("a")), solo.client.api::<ConfigMap>(Some("b")));
    in_a.create(&configmap("a", "x", &[], &[("app", "x")])).await.expect("a/x");
    in_a.create(&configmap("a", "y", &[], &[("app", "y")])).await.expect("a/y");
    in_b.create(&configmap("b", "x", &[], &[("app", "x")])).await.expect("b/x");

    let config = InformerConfig {
        namespace: Some("a".into()),
        label_selector: Some(LabelSelector::parse("app=x").expect("selector")),
        ..Default::default()
    };
    let cancel = CancellationToken::new();
    let store = start(Informer::<ConfigMap>::new(&solo.client, config), &cancel).await;
    assert_eq!(store.keys(), vec![Key::namespaced("a", "x")]);

    // a/y starts matching, a/x stops matching: the cache follows both.
    let mut y = in_a.get("y").await.expect("get a/y");
    y.metadata.labels = Some([("app".to_string(), "x".to_string())].into());
    in_a.update("y", &y).await.expect("relabel a/y");
    let mut x = in_a.get("x").await.expect("get a/x");
    x.metadata.labels = None;
    in_a.update("x", &x).await.expect("unlabel a/x");
    until("a/y in and a/x out", || store.keys() == vec![Key::namespaced("a", "y")]).await;
    cancel.cancel();
}

/// A source whose first watch starts behind a compaction: before it, one object is
/// deleted and one created, then the store is compacted past the list's revision, so the
/// real watch answers 410 Expired.
struct CompactBeforeFirstWatch {
    inner: ApiSource<ConfigMap>,
    api: Api<ConfigMap>,
    node: Arc<StoreNode>,
    registry: flotilla_apiserver::Registry,
    lists: Arc<AtomicUsize>,
    watches: Arc<AtomicUsize>,
}

impl ListWatch<ConfigMap> for CompactBeforeFirstWatch {
    async fn list(&self) -> ApiResult<(Vec<ConfigMap>, i64)> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list().await
    }

    async fn watch(&self, resource_version: i64) -> ApiResult<Watch<ConfigMap>> {
        if self.watches.fetch_add(1, Ordering::SeqCst) == 0 {
            self.api.delete("doomed", &DeleteOptions::default()).await?;
            self.api.create(&configmap("default", "born-while-away", &[("v", "1")], &[])).await?;
            let now = self.registry.storage().current_revision();
            assert!(now >= resource_version + 2, "two writes happened after the list");
            self.node.compact(now).await.map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        self.inner.watch(resource_version).await
    }
}

#[tokio::test]
async fn an_expired_watch_makes_the_informer_relist_and_report_what_it_missed() {
    let solo = Solo::start().await;
    let api = solo.client.api::<ConfigMap>(Some("default"));
    api.create(&configmap("default", "doomed", &[("v", "0")], &[])).await.expect("create doomed");
    let (lists, watches) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let source = CompactBeforeFirstWatch {
        inner: ApiSource::new(&solo.client, &InformerConfig::default()),
        api: solo.client.api::<ConfigMap>(Some("default")),
        node: solo.node.clone(),
        registry: solo.registry.clone(),
        lists: lists.clone(),
        watches: watches.clone(),
    };
    let backoff = Backoff { base: std::time::Duration::from_millis(10), max: std::time::Duration::from_millis(100) };
    let informer = Informer::with_source(source, backoff);
    let mut changes = informer.store().subscribe();
    let cancel = CancellationToken::new();
    let store = start(informer, &cancel).await;

    until("the re-list shows the changes made while the watch was behind", || {
        store.get(Some("default"), "born-while-away").is_some() && store.get(Some("default"), "doomed").is_none()
    })
    .await;
    assert!(lists.load(Ordering::SeqCst) >= 2, "the informer listed again");
    assert!(watches.load(Ordering::SeqCst) >= 2, "and watched again");

    // The new watch is live: later writes arrive without another list.
    let lists_before = lists.load(Ordering::SeqCst);
    api.create(&configmap("default", "after", &[("v", "2")], &[])).await.expect("create after");
    until("the write after the re-list is cached", || store.get(Some("default"), "after").is_some()).await;
    assert_eq!(lists.load(Ordering::SeqCst), lists_before, "followed by the watch, not another list");

    let mut log = Vec::new();
    drain(&mut changes, &mut log);
    for expected in [change("doomed", Some("0"), None), change("born-while-away", None, Some("1"))] {
        assert!(log.contains(&expected), "missing {expected:?} in {log:?}");
    }
    cancel.cancel();
}

/// Keeps `<name>-copy` equal to the data of every ConfigMap labelled `copy=yes`, owned by
/// (controller reference to) its source.
struct Copier {
    maps: Store<ConfigMap>,
    client: Client,
}

impl Reconciler for Copier {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> Result<Action, ApiError> {
        let Some(source) = self.maps.get_key(key) else { return Ok(Action::Done) };
        let labels = source.metadata.labels.clone().unwrap_or_default();
        if labels.get("copy").map(String::as_str) != Some("yes") {
            return Ok(Action::Done);
        }
        let ns = key.namespace().expect("configmaps are namespaced");
        let api = self.client.api::<ConfigMap>(Some(ns));
        let name = format!("{}-copy", key.name);
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: key.name.clone(),
            uid: source.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            ..Default::default()
        };
        match self.maps.get(Some(ns), &name) {
            None => {
                let mut copy = configmap(ns, &name, &[], &[]);
                copy.data = source.data.clone();
                copy.metadata.owner_references = Some(vec![owner]);
                api.create(&copy).await?;
            }
            Some(copy) if copy.data != source.data => {
                // CAS on the cached resourceVersion: a stale cache fails and is retried.
                let mut copy = (*copy).clone();
                copy.data = source.data.clone();
                api.update(&name, &copy).await?;
            }
            Some(_) => {}
        }
        Ok(Action::Done)
    }
}

#[tokio::test]
async fn a_copying_controller_converges_follows_changes_and_repairs_its_copies() {
    let solo = Solo::start().await;
    let api = solo.client.api::<ConfigMap>(Some("default"));
    api.create(&configmap("default", "settings", &[("v", "1")], &[("copy", "yes")])).await.expect("source");
    api.create(&configmap("default", "private", &[("v", "1")], &[])).await.expect("unmarked");

    let cancel = CancellationToken::new();
    let maps = start(Informer::<ConfigMap>::new(&solo.client, InformerConfig::default()), &cancel).await;
    let copier = Copier { maps: maps.clone(), client: solo.client.clone() };
    let controller = Controller::new("copier", copier, &maps, ControllerConfig::default()).owns(&maps);
    tokio::spawn(controller.run(cancel.clone()));

    let copy_says = |want: &'static str| {
        let api = &api;
        wait_for(want, move || async move {
            let copy = api.get("settings-copy").await.ok()?;
            (datum(&copy, "v").as_deref() == Some(want)).then_some(copy)
        })
    };
    let copy = copy_says("1").await;
    let owner = copy.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.len(), 1);
    assert_eq!((owner[0].name.as_str(), owner[0].controller), ("settings", Some(true)));

    // The source changes: the copy follows.
    let mut source = api.get("settings").await.expect("get source");
    source.data = Some([("v".to_string(), "2".to_string())].into());
    api.update("settings", &source).await.expect("update source");
    copy_says("2").await;

    // Someone edits the copy: its change queues the owner, which restores it.
    let mut tampered = api.get("settings-copy").await.expect("get copy");
    tampered.data = Some([("v".to_string(), "evil".to_string())].into());
    api.update("settings-copy", &tampered).await.expect("tamper");
    copy_says("2").await;

    // A source created while the controller runs gets its copy too; unmarked ones never do.
    api.create(&configmap("default", "more", &[("v", "9")], &[("copy", "yes")])).await.expect("second source");
    wait_for("the second copy", || async { api.get("more-copy").await.ok() }).await;
    assert!(matches!(api.get("private-copy").await, Err(ApiError::NotFound(_))));
    cancel.cancel();
}
