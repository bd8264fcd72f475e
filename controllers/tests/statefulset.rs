//! The StatefulSet controller over a real one-member store, started as the leader component
//! it is in production. No node agent runs: the tests play the kubelet by writing pod
//! status (Running, Ready) through `pods/status`; pods stay unbound, so deletes are immediate.
//!
//! - OrderedReady: web-0, then web-1 only once web-0 is Ready, and so on — checked on every
//!   pod the test's informer sees added (all lower ordinals exist and are Ready); identity
//!   (hostname, subdomain, labels, owner), a claim per ordinal, upstream's events.
//! - Scale-down removes the highest ordinal first, one at a time; claims stay.
//! - A pod deleted by hand, or Failed, comes back under its name with the same claim.
//! - Parallel creates every pod at once, none of them ready.
//! - A rolling update with partition 1 replaces web-2 then web-1 (never web-0), one at a
//!   time, each after its predecessor is ready; status follows (partitioned, then complete
//!   once the partition drops to 0).
//! - ControllerRevisions: one per template, numbered upward, the template in `data`; a
//!   rollback renumbers the old revision instead of adding one; history beyond
//!   `revisionHistoryLimit` is pruned.
//! - Claim retention `Delete`/`Delete`, with the garbage collector running: claims of
//!   scaled-down ordinals go with their pods, the rest with the set.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use flotilla_apiserver::client::{Api, Client};
use flotilla_apiserver::registry::{DeleteOptions, ListOptions};
use flotilla_apiserver::ApiError;
use flotilla_controllers::runtime::Store;
use flotilla_controllers::{garbage_collector, history, statefulset};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use serde_json::json;
use support::{until, wait_for, Solo};

const NS: &str = "default";

/// What the test's pod informer saw, in order.
#[derive(Default)]
struct Log {
    /// Pods added, by name, in order.
    added: Vec<String>,
    /// Pods deleted, by name, in order.
    deleted: Vec<String>,
    /// OrderedReady violations: a pod added while a lower ordinal was missing or unready.
    violations: Vec<String>,
}

struct Env {
    solo: Solo,
    pods: Store<Pod>,
    log: Arc<Mutex<Log>>,
}

impl Env {
    /// The store, the controller, the test's pod informer with its log; with `kubelet`,
    /// every new pod is marked Running and Ready as soon as it is seen.
    async fn start(kubelet: bool) -> Self {
        let solo = Solo::start().await;
        solo.lead(statefulset::component());
        let log = Arc::new(Mutex::new(Log::default()));
        let (record, client) = (log.clone(), solo.client.clone());
        let mut seen: BTreeMap<String, Arc<Pod>> = BTreeMap::new();
        let pods = support::observe::<Pod>(&solo, move |c, _| {
            let mut log = record.lock().expect("log");
            match &c.new {
                Some(p) => {
                    if c.old.is_none() {
                        log.added.push(c.key.name.clone());
                        check_predecessors(&seen, &c.key.name, &mut log.violations);
                    }
                    if kubelet && !ready(p) && p.metadata.deletion_timestamp.is_none() {
                        tokio::spawn(mark_ready(client.clone(), c.key.name.clone()));
                    }
                    seen.insert(c.key.name.clone(), p.clone());
                }
                None => {
                    log.deleted.push(c.key.name.clone());
                    seen.remove(&c.key.name);
                }
            }
        })
        .await;
        Self { solo, pods, log }
    }

    fn client(&self) -> &Client {
        &self.solo.client
    }

    fn sets(&self) -> Api<StatefulSet> {
        self.client().api(Some(NS))
    }

    fn pod(&self, name: &str) -> Option<Arc<Pod>> {
        self.pods.get(Some(NS), name)
    }

    /// Wait until pods `web-0..n` exist, are ready, and no other `web-*` pod exists.
    async fn exactly_ready(&self, n: usize) {
        until(&format!("exactly {n} ready pods"), || {
            let pods: Vec<_> = self.pods.list_in(NS).into_iter().filter(|p| name(p).starts_with("web-")).collect();
            pods.len() == n && (0..n).all(|i| self.pod(&format!("web-{i}")).is_some_and(|p| ready(&p)))
        })
        .await;
    }

    /// Change StatefulSet `web` with `f`, retrying on conflicts with status writes.
    async fn edit(&self, f: impl Fn(&mut StatefulSet)) -> StatefulSet {
        support::edit(&self.sets(), "web", f).await
    }

    /// Wait until the status of `web` for its current generation satisfies `pred`.
    async fn status(&self, what: &str, pred: impl Fn(&StatefulSet) -> bool) -> StatefulSet {
        wait_for(what, || async {
            let set = self.sets().get("web").await.ok()?;
            let observed = set.status.as_ref()?.observed_generation == set.metadata.generation;
            (observed && pred(&set)).then_some(set)
        })
        .await
    }

    fn log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.log.lock().expect("log"))
    }

    async fn revisions(&self) -> Vec<ControllerRevision> {
        let (mut revs, _) =
            self.client().api::<ControllerRevision>(Some(NS)).list(&ListOptions::default()).await.expect("list");
        revs.sort_by_key(|r| r.revision);
        revs
    }
}

fn name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or_default()
}

/// Running and Ready: what OrderedReady waits for in a predecessor.
fn ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") && support::is_ready(p)
}

/// Record a violation if `added` (`web-i`) appeared while some `web-j`, j < i, was missing or unready.
fn check_predecessors(seen: &BTreeMap<String, Arc<Pod>>, added: &str, violations: &mut Vec<String>) {
    let Some(i) = added.strip_prefix("web-").and_then(|o| o.parse::<usize>().ok()) else { return };
    for j in 0..i {
        let lower = format!("web-{j}");
        if !seen.get(&lower).is_some_and(|p| ready(p)) {
            violations.push(format!("{added} added while {lower} was missing or unready"));
        }
    }
}

/// Play the kubelet: set `pod` Running and Ready, unless it already is or is going away (a
/// report spawned for an older state of the pod must not undo a later one).
async fn mark_ready(client: Client, pod: String) {
    let api = client.api::<Pod>(Some(NS));
    let Ok(p) = api.get(&pod).await else { return };
    if !ready(&p) && p.metadata.deletion_timestamp.is_none() {
        support::mark_ready(&api, &pod).await;
    }
}

fn statefulset(replicas: i32, policy: &str, partition: i32, history_limit: i32) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "serviceName": "nginx",
            "podManagementPolicy": policy,
            "revisionHistoryLimit": history_limit,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1",
                    "volumeMounts": [{"name": "www", "mountPath": "/www"}]}]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }))
    .expect("statefulset")
}

fn set_image(set: &mut StatefulSet, image: &str) {
    set.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
}

fn claim_of(p: &Pod) -> Option<String> {
    let volumes = p.spec.as_ref()?.volumes.as_ref()?;
    Some(volumes.iter().find(|v| v.name == "www")?.persistent_volume_claim.as_ref()?.claim_name.clone())
}

#[tokio::test]
async fn ordered_ready_creates_each_pod_after_the_previous_is_ready_with_identity_and_claims() {
    let env = Env::start(false).await;
    let set = env.sets().create(&statefulset(3, "OrderedReady", 0, 10)).await.expect("create");
    for i in 0..3 {
        let pod = format!("web-{i}");
        until(&format!("{pod} created"), || env.pod(&pod).is_some()).await;
        mark_ready(env.client().clone(), pod).await;
    }
    env.exactly_ready(3).await;
    let status = env.status("status counts 3 ready", |s| s.status.as_ref().unwrap().ready_replicas == Some(3)).await;
    let s = status.status.expect("status");
    assert_eq!((s.replicas, s.current_replicas, s.updated_replicas), (3, Some(3), Some(3)));
    assert_eq!(s.current_revision, s.update_revision);
    assert_eq!(env.log(|l| l.violations.clone()), Vec::<String>::new());
    assert_eq!(env.log(|l| l.added.clone()), ["web-0", "web-1", "web-2"]);

    let p = env.pod("web-1").expect("web-1");
    let spec = p.spec.as_ref().expect("spec");
    assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-1"), Some("nginx")));
    let labels = p.metadata.labels.clone().expect("labels");
    assert_eq!(labels.get("statefulset.kubernetes.io/pod-name").map(String::as_str), Some("web-1"));
    assert_eq!(labels.get("apps.kubernetes.io/pod-index").map(String::as_str), Some("1"));
    assert_eq!(labels.get(history::REVISION_HASH_LABEL), s.update_revision.as_ref());
    let owner = &p.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), Some(&owner.uid), owner.controller),
        ("StatefulSet", set.metadata.uid.as_ref(), Some(true))
    );
    assert_eq!(claim_of(&p).as_deref(), Some("www-web-1"));
    let claims = env.client().api::<PersistentVolumeClaim>(Some(NS));
    for i in 0..3 {
        let claim = claims.get(&format!("www-web-{i}")).await.expect("a claim per ordinal");
        assert_eq!(claim.metadata.labels.and_then(|l| l.get("app").cloned()).as_deref(), Some("web"));
    }
    let events = wait_for("creation events", || async {
        let events = support::events(env.client(), NS).await;
        let messages: Vec<String> = events.into_iter().filter_map(|e| e.message).collect();
        let wanted = [
            "create Pod web-2 in StatefulSet web successful",
            "create Claim www-web-2 Pod web-2 in StatefulSet web success",
        ];
        wanted.iter().all(|w| messages.iter().any(|m| m == w)).then_some(messages)
    })
    .await;
    assert!(!events.is_empty());
}

#[tokio::test]
async fn scale_down_removes_the_highest_ordinal_first_and_keeps_the_claims() {
    let env = Env::start(true).await;
    env.sets().create(&statefulset(4, "OrderedReady", 0, 10)).await.expect("create");
    env.exactly_ready(4).await;
    env.edit(|s| s.spec.as_mut().unwrap().replicas = Some(1)).await;
    env.exactly_ready(1).await;
    // The pod cache can show web-1 gone a moment before the observer has logged it.
    until("three deletions logged", || env.log(|l| l.deleted.len()) >= 3).await;
    assert_eq!(env.log(|l| l.deleted.clone()), ["web-3", "web-2", "web-1"]);
    assert_eq!(env.log(|l| l.violations.clone()), Vec::<String>::new());
    for i in 0..4 {
        env.client().api::<PersistentVolumeClaim>(Some(NS)).get(&format!("www-web-{i}")).await.expect("claim kept");
    }
    env.status("status after scale-down", |s| s.status.as_ref().unwrap().replicas == 1).await;
}

#[tokio::test]
async fn a_deleted_or_failed_pod_comes_back_under_its_name_with_its_claim() {
    let env = Env::start(true).await;
    env.sets().create(&statefulset(2, "OrderedReady", 0, 10)).await.expect("create");
    env.exactly_ready(2).await;
    let claim_uid = env.client().api::<PersistentVolumeClaim>(Some(NS)).get("www-web-0").await.unwrap().metadata.uid;
    let pods = env.client().api::<Pod>(Some(NS));
    let before = env.pod("web-0").expect("web-0").metadata.uid.clone();
    pods.delete("web-0", &DeleteOptions::default()).await.expect("delete web-0");
    until("web-0 recreated", || env.pod("web-0").is_some_and(|p| p.metadata.uid != before && ready(&p))).await;
    assert_eq!(claim_of(&env.pod("web-0").unwrap()).as_deref(), Some("www-web-0"));
    let after = env.client().api::<PersistentVolumeClaim>(Some(NS)).get("www-web-0").await.unwrap().metadata.uid;
    assert_eq!(after, claim_uid, "the same claim, not a new one");

    let failed_uid = env.pod("web-1").expect("web-1").metadata.uid.clone();
    let mut p = pods.get("web-1").await.expect("web-1");
    p.status.as_mut().unwrap().phase = Some("Failed".into());
    pods.update_status("web-1", &p).await.expect("mark failed");
    until("web-1 replaced", || env.pod("web-1").is_some_and(|p| p.metadata.uid != failed_uid && ready(&p))).await;
    env.exactly_ready(2).await;
}

#[tokio::test]
async fn parallel_creates_every_pod_at_once() {
    let env = Env::start(false).await;
    env.sets().create(&statefulset(3, "Parallel", 0, 10)).await.expect("create");
    until("three pods, none ready", || (0..3).all(|i| env.pod(&format!("web-{i}")).is_some())).await;
    assert!(env.pods.list_in(NS).iter().all(|p| !ready(p)), "no pod waited for another");
    let s = env.status("status", |s| s.status.as_ref().unwrap().replicas == 3).await.status.unwrap();
    assert_eq!(s.ready_replicas, Some(0));
}

#[tokio::test]
async fn a_partitioned_rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let env = Env::start(true).await;
    env.sets().create(&statefulset(3, "OrderedReady", 0, 10)).await.expect("create");
    env.exactly_ready(3).await;
    let old = env.status("rolled out", |s| s.status.as_ref().unwrap().ready_replicas == Some(3)).await;
    let old_rev = old.status.unwrap().current_revision.expect("current revision");
    let web0 = env.pod("web-0").unwrap().metadata.uid.clone();
    let deleted_before = env.log(|l| l.deleted.len());
    env.edit(|s| {
        set_image(s, "nginx:2");
        s.spec.as_mut().unwrap().update_strategy.as_mut().unwrap().rolling_update.as_mut().unwrap().partition = Some(1);
    })
    .await;
    let set = env
        .status("partitioned roll out complete", |s| {
            let st = s.status.as_ref().unwrap();
            st.updated_replicas == Some(2) && st.ready_replicas == Some(3)
        })
        .await;
    let st = set.status.unwrap();
    assert_eq!(st.current_revision.as_deref(), Some(old_rev.as_str()), "web-0 keeps the set at the old revision");
    assert_ne!(st.update_revision, st.current_revision);
    assert_eq!(st.current_replicas, Some(1));
    assert_eq!(env.log(|l| l.deleted[deleted_before..].to_vec()), ["web-2", "web-1"]);
    assert_eq!(env.pod("web-0").unwrap().metadata.uid, web0, "below the partition: untouched");
    let rev = |p: &str| env.pod(p).unwrap().metadata.labels.clone().unwrap()[history::REVISION_HASH_LABEL].clone();
    assert_eq!(
        (rev("web-2"), rev("web-1")),
        (st.update_revision.clone().unwrap(), st.update_revision.clone().unwrap())
    );
    assert_eq!(rev("web-0"), old_rev);

    env.edit(|s| {
        s.spec.as_mut().unwrap().update_strategy.as_mut().unwrap().rolling_update.as_mut().unwrap().partition = Some(0)
    })
    .await;
    let done = env
        .status("rolling update complete", |s| {
            let st = s.status.as_ref().unwrap();
            st.updated_replicas == Some(3) && st.ready_replicas == Some(3) && st.current_revision == st.update_revision
        })
        .await;
    assert_eq!(done.status.unwrap().current_replicas, Some(3));
    assert_eq!(env.log(|l| l.deleted[deleted_before..].to_vec()), ["web-2", "web-1", "web-0"]);
}

#[tokio::test]
async fn revisions_are_numbered_renumbered_on_rollback_and_pruned() {
    let env = Env::start(true).await;
    env.sets().create(&statefulset(1, "OrderedReady", 0, 1)).await.expect("create");
    env.exactly_ready(1).await;
    let complete = |s: &StatefulSet| {
        let st = s.status.as_ref().unwrap();
        st.current_revision == st.update_revision && st.ready_replicas == Some(1) && st.updated_replicas == Some(1)
    };
    for image in ["nginx:2", "nginx:3"] {
        env.edit(|s| set_image(s, image)).await;
        env.status(&format!("rolled out {image}"), complete).await;
    }
    let revs = wait_for("history pruned to the limit", || async {
        let revs = env.revisions().await;
        (revs.len() == 2).then_some(revs)
    })
    .await;
    assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [2, 3]);
    let image =
        |r: &ControllerRevision| r.data.as_ref().unwrap().0.pointer("/spec/template/spec/containers/0/image").cloned();
    assert_eq!((image(&revs[0]), image(&revs[1])), (Some(json!("nginx:2")), Some(json!("nginx:3"))));
    assert_eq!(revs[0].data.as_ref().unwrap().0.pointer("/spec/template/$patch"), Some(&json!("replace")));

    env.edit(|s| set_image(s, "nginx:2")).await;
    let set = env.status("rolled back", complete).await;
    let revs = env.revisions().await;
    assert_eq!(revs.len(), 2, "the rollback reused the old revision");
    assert_eq!(revs[1].revision, 4);
    assert_eq!(image(&revs[1]), Some(json!("nginx:2")));
    assert_eq!(revs[1].metadata.name, set.status.unwrap().update_revision);
}

#[tokio::test]
async fn claims_follow_the_delete_retention_policy_through_the_garbage_collector() {
    let env = Env::start(true).await;
    env.solo.lead(garbage_collector::component());
    let mut set = statefulset(3, "Parallel", 0, 10);
    set.spec.as_mut().unwrap().persistent_volume_claim_retention_policy =
        serde_json::from_value(json!({"whenDeleted": "Delete", "whenScaled": "Delete"})).unwrap();
    let set = env.sets().create(&set).await.expect("create");
    env.exactly_ready(3).await;
    let claims = env.client().api::<PersistentVolumeClaim>(Some(NS));
    let owned_by_set = wait_for("www-web-0 owned by the set", || async {
        let refs = claims.get("www-web-0").await.ok()?.metadata.owner_references?;
        (refs.len() == 1 && refs[0].uid == set.metadata.uid.clone()?).then_some(refs)
    })
    .await;
    assert_eq!(owned_by_set[0].controller, Some(true));

    env.edit(|s| s.spec.as_mut().unwrap().replicas = Some(1)).await;
    env.exactly_ready(1).await;
    wait_for("scaled-down claims collected", || async {
        let gone = |r: Result<PersistentVolumeClaim, ApiError>| matches!(r, Err(ApiError::NotFound(_)));
        (gone(claims.get("www-web-1").await) && gone(claims.get("www-web-2").await)).then_some(())
    })
    .await;
    claims.get("www-web-0").await.expect("the claim of a kept ordinal stays");

    env.sets().delete("web", &DeleteOptions::default()).await.expect("delete the set");
    wait_for("the set's claims collected with it", || async {
        matches!(claims.get("www-web-0").await, Err(ApiError::NotFound(_))).then_some(())
    })
    .await;
}
