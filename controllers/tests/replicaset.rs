//! The ReplicaSet controller over a real one-member store, started as the leader component
//! it is in production (informers, work queue, fenced-style in-process client).
//!
//! - A ReplicaSet gets exactly its replicas: pods named `<rs>-<5 chars>`, with the template's
//!   labels and a controller ownerReference that blocks owner deletion.
//! - Scaling up then down converges to exactly the desired count; a ready pod outlives
//!   not-ready ones when scaling down.
//! - A matching orphan is adopted instead of a new pod being created; a pod controlled by
//!   something else is left alone.
//! - A pod deleted by hand is replaced.
//! - Status reports replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (pods
//!   marked Ready through `pods/status`) and observedGeneration.
//!
//! - Expectations: driven by hand over a pod cache that has not seen its creates yet, a
//!   second reconcile creates nothing; once the cache catches up, nothing more either.
//! - Slow start (shared with the DaemonSet and Job controllers): batches of 1, 2, 4, …; the
//!   first batch with a failed create is the last, and what it created is expected.
//!
//! Every test also records each pod ever added for the ReplicaSet (from its own informer):
//! the controller must never create more pods than the scenario needs — the expectations
//! that keep a lagging cache from causing duplicate creates are what that checks.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use flotilla_apiserver::client::{Api, Client};
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::registry::ListOptions;
use flotilla_apiserver::ApiError;
use flotilla_controllers::replicaset;
use flotilla_controllers::replicaset::expectations::Expectations;
use flotilla_controllers::replicaset::slow_start::Creates;
use flotilla_controllers::replicaset::ReplicaSetController;
use flotilla_controllers::runtime::{Action, Key, Reconciler, Recorder, Store, Writer};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use support::{edit, mark_ready, until, wait_for, Solo};

const NS: &str = "default";
const ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

struct Env {
    solo: Solo,
    /// The test's own pod cache.
    pods: Store<Pod>,
    /// Names of every pod ever added to the cache.
    added: Arc<Mutex<BTreeSet<String>>>,
}

impl Env {
    /// A store, the test's pod informer, and the ReplicaSet controller running.
    async fn start() -> Self {
        let solo = Solo::start().await;
        let added = Arc::new(Mutex::new(BTreeSet::new()));
        let log = added.clone();
        let pods = support::observe::<Pod>(&solo, move |c, _| {
            if c.old.is_none() {
                log.lock().expect("log lock").insert(c.key.name.clone());
            }
        })
        .await;
        solo.lead(replicaset::component());
        Self { solo, pods, added }
    }

    fn client(&self) -> &Client {
        &self.solo.client
    }

    /// The active pods `rs` controls, by name.
    fn owned(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        self.pods
            .list_in(NS)
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && controller_uid(p) == rs.metadata.uid)
            .collect()
    }

    /// Wait until `rs` controls exactly `n` pods and its status says so for its current
    /// generation; returns the pods.
    async fn converged(&self, rs: &ReplicaSet, n: usize) -> Vec<Arc<Pod>> {
        let api = self.client().api::<ReplicaSet>(Some(NS));
        let name = rs.metadata.name.clone().expect("name");
        wait_for(&format!("{name} at rest with {n} pods"), || async {
            let now = api.get(&name).await.ok()?;
            let status = now.status.as_ref()?;
            let at_rest = status.observed_generation == now.metadata.generation && status.replicas == n as i32;
            let pods = self.owned(rs);
            (at_rest && pods.len() == n).then_some(pods)
        })
        .await
    }

    /// Pods ever added whose name starts with `<prefix>-`.
    fn ever_added(&self, prefix: &str) -> usize {
        self.added.lock().expect("log lock").iter().filter(|n| n.starts_with(&format!("{prefix}-"))).count()
    }
}

fn controller_uid(pod: &Pod) -> Option<String> {
    pod.metadata.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true)).map(|r| r.uid.clone())
}

fn labels() -> std::collections::BTreeMap<String, String> {
    [("app".to_string(), "web".to_string())].into()
}

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(NS.into()), ..Default::default() },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(labels()), ..Default::default() },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels()), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some("nginx".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn bare_pod(name: &str, owner: Option<OwnerReference>) -> Pod {
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels: Some(labels()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: replicaset("x", 1).spec.and_then(|s| s.template).and_then(|t| t.spec),
        status: None,
    };
    pod.metadata.labels = Some(labels());
    pod
}

/// Set `spec.replicas`, retrying on conflicts with the controller's status writes.
async fn scale(api: &Api<ReplicaSet>, name: &str, replicas: i32) -> ReplicaSet {
    edit(api, name, |rs| rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas)).await
}

#[tokio::test]
async fn a_replicaset_gets_exactly_its_replicas_with_labels_and_owner_references() {
    let env = Env::start().await;
    let rs = env.client().api::<ReplicaSet>(Some(NS)).create(&replicaset("web", 3)).await.expect("create rs");
    let pods = env.converged(&rs, 3).await;
    for pod in &pods {
        let name = pod.metadata.name.as_deref().expect("name");
        let suffix = name.strip_prefix("web-").expect("named after the ReplicaSet");
        assert!(suffix.len() == 5 && suffix.chars().all(|c| ALPHABET.contains(c)), "{name}");
        assert_eq!(pod.metadata.labels.as_ref(), Some(&labels()));
        let refs = pod.metadata.owner_references.as_ref().expect("owner references");
        assert_eq!(refs.len(), 1);
        let r = &refs[0];
        assert_eq!((r.api_version.as_str(), r.kind.as_str(), r.name.as_str()), ("apps/v1", "ReplicaSet", "web"));
        assert_eq!(Some(&r.uid), rs.metadata.uid.as_ref());
        assert_eq!((r.controller, r.block_owner_deletion), (Some(true), Some(true)));
    }
    assert_eq!(env.ever_added("web"), 3, "no pod was created twice for one replica");
}

#[tokio::test]
async fn scaling_up_then_down_converges_and_keeps_the_ready_pod() {
    let env = Env::start().await;
    let api = env.client().api::<ReplicaSet>(Some(NS));
    let rs = api.create(&replicaset("web", 3)).await.expect("create rs");
    env.converged(&rs, 3).await;

    let rs = scale(&api, "web", 5).await;
    let pods = env.converged(&rs, 5).await;
    assert_eq!(env.ever_added("web"), 5, "scaling 3 → 5 created exactly 2 pods");

    let keeper = pods[2].metadata.name.clone().expect("name");
    mark_ready(&env.client().api::<Pod>(Some(NS)), &keeper).await.expect("the keeper marked ready");
    let rs = scale(&api, "web", 1).await;
    let pods = env.converged(&rs, 1).await;
    assert_eq!(pods[0].metadata.name.as_deref(), Some(keeper.as_str()), "the ready pod is deleted last");
    assert_eq!(env.ever_added("web"), 5, "scaling down created nothing");
}

#[tokio::test]
async fn a_matching_orphan_is_adopted_and_a_foreign_pod_is_ignored() {
    let env = Env::start().await;
    let pods = env.client().api::<Pod>(Some(NS));
    pods.create(&bare_pod("orphan", None)).await.expect("create orphan");
    let foreign_owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "other".into(),
        uid: "other-uid".into(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    pods.create(&bare_pod("foreign", Some(foreign_owner.clone()))).await.expect("create foreign");

    let rs = env.client().api::<ReplicaSet>(Some(NS)).create(&replicaset("web", 2)).await.expect("create rs");
    let owned = env.converged(&rs, 2).await;
    let orphan = owned.iter().find(|p| p.metadata.name.as_deref() == Some("orphan")).expect("the orphan was adopted");
    let refs = orphan.metadata.owner_references.as_ref().expect("owner references");
    assert_eq!(refs.len(), 1);
    assert_eq!((refs[0].controller, refs[0].block_owner_deletion), (Some(true), Some(true)));
    assert_eq!(env.ever_added("web"), 1, "one pod created next to the adopted orphan");

    let foreign = pods.get("foreign").await.expect("foreign pod still there");
    assert_eq!(foreign.metadata.owner_references, Some(vec![foreign_owner]), "a foreign pod is not touched");
}

#[tokio::test]
async fn a_pod_deleted_by_hand_is_replaced() {
    let env = Env::start().await;
    let rs = env.client().api::<ReplicaSet>(Some(NS)).create(&replicaset("web", 2)).await.expect("create rs");
    let before = env.converged(&rs, 2).await;
    let victim = before[0].metadata.name.clone().expect("name");
    env.client().api::<Pod>(Some(NS)).delete(&victim, &DeleteOptions::default()).await.expect("delete pod");

    until("a replacement pod", || {
        let owned = env.owned(&rs);
        owned.len() == 2 && owned.iter().all(|p| p.metadata.name.as_deref() != Some(victim.as_str()))
    })
    .await;
    env.converged(&rs, 2).await;
    assert_eq!(env.ever_added("web"), 3, "exactly one replacement");
}

#[tokio::test]
async fn status_reports_ready_pods_and_the_observed_generation() {
    let env = Env::start().await;
    let api = env.client().api::<ReplicaSet>(Some(NS));
    api.create(&replicaset("web", 1)).await.expect("create rs");
    let rs = scale(&api, "web", 3).await;
    assert!(rs.metadata.generation > Some(1), "scaling bumped the generation");
    let pods = env.converged(&rs, 3).await;
    let pod_api = env.client().api::<Pod>(Some(NS));
    for p in &pods {
        mark_ready(&pod_api, p.metadata.name.as_deref().expect("name")).await.expect("pod marked ready");
    }
    let status = wait_for("status counts the ready pods", || async {
        let status = api.get("web").await.ok()?.status?;
        (status.ready_replicas == Some(3)).then_some(status)
    })
    .await;
    assert_eq!(status.replicas, 3);
    assert_eq!(status.fully_labeled_replicas, Some(3));
    assert_eq!(status.available_replicas, Some(3), "minReadySeconds 0: ready is available");
    assert_eq!(status.observed_generation, rs.metadata.generation);
}

#[tokio::test]
async fn a_lagging_pod_cache_does_not_cause_duplicate_creates() {
    let solo = Solo::start().await;
    let (rs_api, pod_api) = (solo.client.api::<ReplicaSet>(Some(NS)), solo.client.api::<Pod>(Some(NS)));
    let rs = rs_api.create(&replicaset("web", 3)).await.expect("create rs");
    let (mut rs_cache, mut pod_cache) = (Writer::<ReplicaSet>::new(), Writer::<Pod>::new());
    rs_cache.replace(vec![rs]).await;
    pod_cache.replace(vec![]).await;
    let controller = ReplicaSetController::new(solo.client.clone(), rs_cache.store(), pod_cache.store());
    let key = Key::namespaced(NS, "web");
    let in_store = || async { pod_api.list(&ListOptions::default()).await.expect("list pods").0 };

    controller.reconcile(&key).await.expect("first reconcile");
    assert_eq!(in_store().await.len(), 3);
    // The ReplicaSet cache follows its status write (a stale one only makes that write fail).
    rs_cache.apply(rs_api.get("web").await.expect("get rs")).await;
    let action = controller.reconcile(&key).await.expect("reconcile before the cache caught up");
    assert_eq!(in_store().await.len(), 3, "the creates the cache has not shown are not repeated");
    assert!(matches!(action, Action::RequeueAfter(_)), "a safety requeue while writes are unobserved");

    for pod in in_store().await {
        pod_cache.apply(pod).await;
    }
    let action = controller.reconcile(&key).await.expect("reconcile after the cache caught up");
    assert_eq!(in_store().await.len(), 3);
    assert_eq!(action, Action::Done);
    let status = rs_api.get("web").await.expect("get rs").status.expect("status written");
    assert_eq!(status.replicas, 3);
}

#[tokio::test]
async fn slow_start_stops_at_the_first_batch_with_a_failed_create() {
    let solo = Solo::start().await;
    let (rs_api, pod_api) = (solo.client.api::<ReplicaSet>(Some(NS)), solo.client.api::<Pod>(Some(NS)));
    let rs = rs_api.create(&replicaset("web", 7)).await.expect("create rs");
    pod_api.create(&bare_pod("p1", None)).await.expect("the pod whose name is taken");
    let wanted: Vec<Pod> = (0..7).map(|i| bare_pod(&format!("p{i}"), None)).collect();
    let (events, expectations) = (Recorder::detached("test", "test"), Expectations::default());
    let creates = Creates { api: &pod_api, events: &events, expectations: &expectations };
    let key = Key::namespaced(NS, "web");

    let (created, error) = creates.run(&rs, &key, &wanted).await;
    assert_eq!(created, 2, "batch 1 (p0) and the rest of batch 2 (p2)");
    assert!(matches!(error, Some(ApiError::AlreadyExists(_))), "{error:?}");
    let (pods, _) = pod_api.list(&ListOptions::default()).await.expect("list pods");
    let mut names: Vec<_> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["p0", "p1", "p2"], "batch 3 (p3..p6) never started");
    assert!(expectations.pending(&key, |n| n == "p0", |_, _| false), "p2 is expected until seen");
    assert!(!expectations.pending(&key, |n| n == "p2", |_, _| false), "and nothing else is");
}
