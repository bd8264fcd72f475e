//! The PersistentVolume binder and local-path provisioner over a real one-member store,
//! started as the leader component it is in production. The tests play the scheduler
//! (`client.bind`) and the kubelet (deleting pods at once).
//!
//! - Immediate binding: a claim takes the smallest volume that fits; one too big waits,
//!   then binds when a fitting volume appears; access-mode, class and selector mismatches
//!   never bind; `""` binds only class-less volumes.
//! - Claims racing for one volume: exactly one binds, over many rounds.
//! - local-path: a claim waits for its first consumer; once the pod is bound to a node, a
//!   `pvc-<uid>` volume with that node's affinity and a directory under the base is
//!   provisioned and bound; deleting the claim deletes it (Delete) or leaves it Released
//!   (Retain), and a claim recreated under the same name never gets the Released volume.
//! - A claim without any class gets the default class `local-path`.
//! - A half-finished binding left by a previous leader is completed, or undone when the
//!   claim went elsewhere.
//! - Protection: driven by hand, a deleted claim stays while a scheduled pod uses it and
//!   goes once the pod is gone.
//!
//! Throughout, the test's own claim informer checks every state it observes: no two claims
//! are ever bound to one volume, and each volume is only ever bound to one claim uid.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use flotilla_apiserver::bootstrap::{DEFAULT_CLASS_ANNOTATION, DEFAULT_STORAGE_CLASS, LOCAL_PATH_PROVISIONER};
use flotilla_apiserver::client::{Api, Client};
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::ApiError;
use flotilla_controllers::runtime::{Key, SharedInformers, Store};
use flotilla_controllers::volume::{self, Binder, Caches, ANN_BIND_COMPLETED, ANN_SELECTED_NODE};
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::json;
use support::{until, wait_for, Solo};

const NS: &str = "default";

struct Env {
    solo: Solo,
    /// volume name → every claim uid ever seen bound to it.
    ever_bound: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Env {
    /// A store with the invariant checker running but no controller yet.
    async fn new() -> Self {
        let solo = Solo::start().await;
        let ever_bound = Arc::new(Mutex::new(BTreeMap::<String, BTreeSet<String>>::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let (log, bad) = (ever_bound.clone(), violations.clone());
        support::observe::<PersistentVolumeClaim>(&solo, move |_, claims| {
            check(claims, &mut log.lock().expect("log"), &mut bad.lock().expect("violations"));
        })
        .await;
        Self { solo, ever_bound, violations }
    }

    /// [`Env::new`] with the binder running.
    async fn start() -> Self {
        let env = Self::new().await;
        env.start_controller();
        env
    }

    fn start_controller(&self) {
        self.solo.lead(volume::component());
    }

    fn client(&self) -> &Client {
        &self.solo.client
    }

    fn claims(&self) -> Api<PersistentVolumeClaim> {
        self.client().api(Some(NS))
    }

    fn volumes(&self) -> Api<PersistentVolume> {
        self.client().api(None)
    }

    async fn create<K>(&self, api: Api<K>, obj: serde_json::Value) -> K
    where
        K: k8s_openapi::Resource + serde::Serialize + serde::de::DeserializeOwned,
    {
        let obj: K = serde_json::from_value(obj).expect("valid object");
        api.create(&obj).await.expect("create")
    }

    /// Wait until claim `name` is Bound and its volume Bound back to it; returns both.
    async fn bound(&self, name: &str) -> (PersistentVolumeClaim, PersistentVolume) {
        wait_for(&format!("claim {name} bound"), || async {
            let claim = self.claims().get(name).await.ok()?;
            let volume = claim.spec.as_ref()?.volume_name.clone()?;
            (phase(claim.status.as_ref()?.phase.as_deref()) == "Bound").then_some(())?;
            let pv = self.volumes().get(&volume).await.ok()?;
            let claim_ref = pv.spec.as_ref()?.claim_ref.as_ref()?;
            let bound_back =
                claim_ref.uid == claim.metadata.uid && pv.status.as_ref()?.phase.as_deref() == Some("Bound");
            bound_back.then_some((claim, pv))
        })
        .await
    }

    /// Wait until an Event with `reason` about the object with `uid` exists.
    async fn event(&self, uid: &Option<String>, reason: &str) -> Event {
        wait_for(&format!("event {reason}"), || async {
            let events = support::events(self.client(), NS).await;
            events.into_iter().find(|e| &e.involved_object.uid == uid && e.reason.as_deref() == Some(reason))
        })
        .await
    }

    fn assert_invariants(&self) {
        assert_eq!(*self.violations.lock().expect("violations"), Vec::<String>::new());
        for (volume, uids) in self.ever_bound.lock().expect("log").iter() {
            assert_eq!(uids.len(), 1, "volume {volume} was bound to claims {uids:?}");
        }
    }
}

fn phase(p: Option<&str>) -> &str {
    p.unwrap_or_default()
}

/// Record the bound claims of the current cache state; no volume may have two.
fn check(
    claims: &Store<PersistentVolumeClaim>,
    ever: &mut BTreeMap<String, BTreeSet<String>>,
    violations: &mut Vec<String>,
) {
    let mut now: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in claims.list() {
        let completed = c.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(ANN_BIND_COMPLETED));
        let Some(volume) = c.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|_| completed) else { continue };
        let uid = c.metadata.uid.clone().unwrap_or_default();
        ever.entry(volume.clone()).or_default().insert(uid.clone());
        now.entry(volume).or_default().push(uid);
    }
    violations.extend(now.into_iter().filter(|(_, uids)| uids.len() > 1).map(|(v, u)| format!("{v}: {u:?}")));
}

fn pv(name: &str, size: &str, class: &str, modes: &[&str]) -> serde_json::Value {
    json!({"metadata": {"name": name}, "spec": {"capacity": {"storage": size}, "accessModes": modes,
        "storageClassName": class, "hostPath": {"path": format!("/srv/{name}")}}})
}

fn pvc(name: &str, size: &str, class: Option<&str>, modes: &[&str]) -> serde_json::Value {
    let mut c = json!({"metadata": {"name": name, "namespace": NS},
        "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}}}});
    if let Some(class) = class {
        c["spec"]["storageClassName"] = json!(class);
    }
    c
}

fn pod(name: &str, claim: &str) -> serde_json::Value {
    json!({"metadata": {"name": name, "namespace": NS}, "spec": {
        "containers": [{"name": "c", "image": "nginx", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}})
}

/// A class `name` whose volumes an admin creates by hand, bound at once.
fn manual_class(name: &str) -> serde_json::Value {
    json!({"metadata": {"name": name}, "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate"})
}

const RWO: &[&str] = &["ReadWriteOnce"];

fn volume_of(claim: &PersistentVolumeClaim) -> &str {
    claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()).unwrap_or_default()
}

#[tokio::test]
async fn an_immediate_claim_binds_the_smallest_fitting_volume_and_a_big_one_waits_for_a_fit() {
    let env = Env::start().await;
    env.create(env.client().api::<StorageClass>(None), manual_class("manual")).await;
    for (name, size) in [("small", "1Gi"), ("mid", "5Gi"), ("large", "10Gi")] {
        env.create(env.volumes(), pv(name, size, "manual", RWO)).await;
    }
    env.create(env.volumes(), pv("classless", "1Gi", "", RWO)).await;
    env.create(env.claims(), pvc("a", "2Gi", Some("manual"), RWO)).await;
    let (a, mid) = env.bound("a").await;
    assert_eq!(volume_of(&a), "mid");
    let status = a.status.as_ref().expect("status");
    assert_eq!(status.capacity.as_ref().expect("capacity")["storage"].0, "5Gi");
    assert_eq!(status.access_modes.as_deref(), Some(&["ReadWriteOnce".to_string()][..]));
    let annotations = a.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get(ANN_BIND_COMPLETED).map(String::as_str), Some("yes"));
    assert_eq!(annotations.get("pv.kubernetes.io/bound-by-controller").map(String::as_str), Some("yes"));
    assert!(mid.metadata.annotations.unwrap_or_default().contains_key("pv.kubernetes.io/bound-by-controller"));

    let big = env.create(env.claims(), pvc("big", "20Gi", Some("manual"), RWO)).await;
    env.event(&big.metadata.uid, "ProvisioningFailed").await;
    assert_eq!(volume_of(&env.claims().get("big").await.expect("big")), "", "nothing fits yet");
    env.create(env.volumes(), pv("huge", "50Gi", "manual", RWO)).await;
    assert_eq!(volume_of(&env.bound("big").await.0), "huge");

    env.create(env.claims(), pvc("plain", "1Gi", Some(""), RWO)).await;
    assert_eq!(volume_of(&env.bound("plain").await.0), "classless", "\"\" binds only a class-less volume");
    for free in ["small", "large"] {
        let v = env.volumes().get(free).await.expect("volume");
        assert_eq!(v.status.and_then(|s| s.phase).as_deref(), Some("Available"));
    }
    env.assert_invariants();
}

#[tokio::test]
async fn access_mode_class_and_selector_mismatches_do_not_bind() {
    let env = Env::start().await;
    env.create(env.client().api::<StorageClass>(None), manual_class("manual")).await;
    // Each small volume fails one criterion; only the big one fits all of them, so a claim
    // ignoring any criterion would take a small one (smallest first).
    let mut unlabelled = pv("unlabelled", "1Gi", "manual", &["ReadWriteMany"]);
    unlabelled["metadata"]["labels"] = json!({"tier": "bronze"});
    let mut one_mode = pv("one-mode", "1Gi", "manual", RWO);
    one_mode["metadata"]["labels"] = json!({"tier": "gold"});
    let mut other_class = pv("other-class", "1Gi", "slow", &["ReadWriteMany"]);
    other_class["metadata"]["labels"] = json!({"tier": "gold"});
    let mut fits = pv("fits", "8Gi", "manual", &["ReadWriteMany", "ReadWriteOnce"]);
    fits["metadata"]["labels"] = json!({"tier": "gold"});
    for v in [unlabelled, one_mode, other_class] {
        env.create(env.volumes(), v).await;
    }
    let mut claim = pvc("picky", "1Gi", Some("manual"), &["ReadWriteMany"]);
    claim["spec"]["selector"] = json!({"matchLabels": {"tier": "gold"}});
    let picky = env.create(env.claims(), claim).await;
    env.event(&picky.metadata.uid, "ProvisioningFailed").await;
    assert_eq!(volume_of(&env.claims().get("picky").await.expect("picky")), "");
    env.create(env.volumes(), fits).await;
    assert_eq!(volume_of(&env.bound("picky").await.0), "fits");
    for name in ["unlabelled", "one-mode", "other-class"] {
        let v = env.volumes().get(name).await.expect("volume");
        assert_eq!(v.spec.and_then(|s| s.claim_ref), None, "{name} stays free");
    }
    env.assert_invariants();
}

#[tokio::test]
async fn claims_racing_for_one_volume_bind_exactly_one() {
    let env = Env::start().await;
    const ROUNDS: usize = 8;
    const RIVALS: usize = 3;
    for round in 0..ROUNDS {
        let names: Vec<String> = (0..RIVALS).map(|i| format!("r{round}-{i}")).collect();
        // A class per round, so that a round's losers cannot take the next round's volume.
        let class = format!("race-{round}");
        let creates = names.iter().map(|n| env.create(env.claims(), pvc(n, "1Gi", Some(&class), RWO)));
        futures::future::join_all(creates).await;
        // The volume appears once all claims wait: becoming Available queues them together.
        env.create(env.volumes(), pv(&format!("v{round}"), "1Gi", &class, RWO)).await;
        let winner = wait_for("one rival bound", || async {
            for n in &names {
                let c = env.claims().get(n).await.ok()?;
                if phase(c.status.as_ref()?.phase.as_deref()) == "Bound" {
                    return Some(n.clone());
                }
            }
            None
        })
        .await;
        let (_, volume) = env.bound(&winner).await;
        assert_eq!(volume.metadata.name, Some(format!("v{round}")));
        for n in names.iter().filter(|n| **n != winner) {
            let c = env.claims().get(n).await.expect("rival");
            assert_eq!(volume_of(&c), "", "{n} must not take {winner}'s volume");
            assert_ne!(c.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
        }
    }
    env.assert_invariants();
}

/// Create `pod` using `claim` and bind it to `node` (playing the scheduler).
async fn schedule(env: &Env, name: &str, claim: &str, node: &str) {
    env.create(env.client().api::<Pod>(Some(NS)), pod(name, claim)).await;
    env.client().bind(NS, name, node).await.expect("bind pod");
}

async fn delete_pod(env: &Env, name: &str) {
    let opts = DeleteOptions { grace_period_seconds: Some(0), ..Default::default() };
    env.client().api::<Pod>(Some(NS)).delete(name, &opts).await.expect("delete pod");
}

#[tokio::test]
async fn local_path_provisions_on_the_consumers_node_and_deletes_with_the_claim() {
    let env = Env::start().await;
    let class = env.client().api::<StorageClass>(None).get(DEFAULT_STORAGE_CLASS).await.expect("bootstrap class");
    assert_eq!(class.provisioner, LOCAL_PATH_PROVISIONER);
    assert_eq!(class.volume_binding_mode.as_deref(), Some("WaitForFirstConsumer"));
    assert_eq!(class.reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(class.metadata.annotations.unwrap_or_default()[DEFAULT_CLASS_ANNOTATION], "true");
    let node = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "host-1"}}});
    env.create(env.client().api::<Node>(None), node).await;

    let claim = env.create(env.claims(), pvc("data", "3Gi", Some(DEFAULT_STORAGE_CLASS), RWO)).await;
    env.event(&claim.metadata.uid, "WaitForFirstConsumer").await;
    let uid = claim.metadata.uid.clone().expect("uid");
    let name = format!("pvc-{uid}");
    assert!(matches!(env.volumes().get(&name).await, Err(ApiError::NotFound(_))), "nothing before a consumer");
    assert_eq!(volume_of(&env.claims().get("data").await.expect("claim")), "");

    schedule(&env, "app", "data", "n1").await;
    let (claim, volume) = env.bound("data").await;
    assert_eq!(volume.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(claim.metadata.annotations.unwrap_or_default()[ANN_SELECTED_NODE], "n1");
    let spec = volume.spec.clone().expect("spec");
    let host = spec.host_path.expect("hostPath");
    assert_eq!(host.path, format!("/var/lib/flotilla/local-path/{name}_{NS}_data"));
    assert_eq!(host.type_.as_deref(), Some("DirectoryOrCreate"));
    let terms = spec.node_affinity.and_then(|a| a.required).expect("affinity").node_selector_terms;
    let expr = &terms[0].match_expressions.as_ref().expect("expressions")[0];
    assert_eq!((expr.key.as_str(), expr.values.as_deref()), ("kubernetes.io/hostname", Some(&["host-1".into()][..])));
    assert_eq!(spec.capacity.expect("capacity")["storage"].0, "3Gi");
    assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(
        volume.metadata.annotations.unwrap_or_default()["pv.kubernetes.io/provisioned-by"],
        LOCAL_PATH_PROVISIONER
    );
    env.event(&claim.metadata.uid, "ProvisioningSucceeded").await;

    delete_pod(&env, "app").await;
    env.claims().delete("data", &DeleteOptions::default()).await.expect("delete claim");
    wait_for("claim and volume gone", || async {
        let claim_gone = matches!(env.claims().get("data").await, Err(ApiError::NotFound(_)));
        let volume_gone = matches!(env.volumes().get(&name).await, Err(ApiError::NotFound(_)));
        (claim_gone && volume_gone).then_some(())
    })
    .await;
    env.assert_invariants();
}

#[tokio::test]
async fn retain_keeps_the_volume_released_and_a_recreated_claim_gets_a_new_one() {
    let env = Env::start().await;
    let keep = json!({"metadata": {"name": "keep"}, "provisioner": LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"});
    env.create(env.client().api::<StorageClass>(None), keep).await;
    env.create(env.claims(), pvc("db", "1Gi", Some("keep"), RWO)).await;
    schedule(&env, "db-0", "db", "n1").await;
    let (first, volume) = env.bound("db").await;
    let old = volume.metadata.name.clone().expect("name");
    delete_pod(&env, "db-0").await;
    env.claims().delete("db", &DeleteOptions::default()).await.expect("delete claim");
    let released = wait_for("volume released", || async {
        let v = env.volumes().get(&old).await.ok()?;
        (v.status.as_ref()?.phase.as_deref() == Some("Released")).then_some(v)
    })
    .await;
    let claim_ref = released.spec.and_then(|s| s.claim_ref).expect("claimRef kept");
    assert_eq!(claim_ref.uid, first.metadata.uid);

    env.create(env.claims(), pvc("db", "1Gi", Some("keep"), RWO)).await;
    schedule(&env, "db-1", "db", "n1").await;
    let (second, fresh) = env.bound("db").await;
    assert_ne!(second.metadata.uid, first.metadata.uid);
    assert_ne!(fresh.metadata.name.as_deref(), Some(old.as_str()), "a new volume, not the released one");
    let still = env.volumes().get(&old).await.expect("retained");
    assert_eq!(still.status.and_then(|s| s.phase).as_deref(), Some("Released"));
    env.assert_invariants();
}

#[tokio::test]
async fn a_claim_without_a_class_gets_the_default_class() {
    let env = Env::start().await;
    env.create(env.claims(), pvc("logs", "1Gi", None, RWO)).await;
    let class =
        wait_for("default class assigned", || async { env.claims().get("logs").await.ok()?.spec?.storage_class_name })
            .await;
    assert_eq!(class, DEFAULT_STORAGE_CLASS);
    schedule(&env, "logger", "logs", "n2").await;
    let (_, volume) = env.bound("logs").await;
    assert_eq!(volume.spec.and_then(|s| s.storage_class_name).as_deref(), Some(DEFAULT_STORAGE_CLASS));
}

/// A volume whose claimRef names `claim` (with its uid), as the binder writes it.
fn half_bound(name: &str, claim: &PersistentVolumeClaim) -> serde_json::Value {
    let mut v = pv(name, "1Gi", "", RWO);
    v["metadata"]["annotations"] = json!({"pv.kubernetes.io/bound-by-controller": "yes"});
    v["spec"]["claimRef"] = json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": NS,
        "name": claim.metadata.name, "uid": claim.metadata.uid});
    v
}

#[tokio::test]
async fn a_binding_left_half_done_by_a_previous_leader_is_completed() {
    let env = Env::new().await;
    let claim = env.create(env.claims(), pvc("c", "1Gi", Some(""), RWO)).await;
    env.create(env.volumes(), half_bound("x", &claim)).await;
    // A rival that would fit x just as well.
    env.create(env.claims(), pvc("d", "1Gi", Some(""), RWO)).await;
    env.start_controller();
    let (c, x) = env.bound("c").await;
    assert_eq!((volume_of(&c), x.metadata.name.as_deref()), ("x", Some("x")));
    let y = env.create(env.volumes(), pv("y", "1Gi", "", RWO)).await;
    assert_eq!(volume_of(&env.bound("d").await.0), "y", "the rival gets another volume");
    assert_eq!(y.metadata.name.as_deref(), Some("y"));
    env.assert_invariants();
}

#[tokio::test]
async fn a_half_binding_whose_claim_chose_another_volume_is_undone() {
    let env = Env::new().await;
    let mut chooser = pvc("c", "1Gi", Some(""), RWO);
    chooser["spec"]["volumeName"] = json!("y");
    let claim = env.create(env.claims(), chooser).await;
    env.create(env.volumes(), half_bound("x", &claim)).await;
    env.create(env.volumes(), pv("y", "1Gi", "", RWO)).await;
    env.start_controller();
    assert_eq!(volume_of(&env.bound("c").await.0), "y");
    wait_for("x available again", || async {
        let x = env.volumes().get("x").await.ok()?;
        let free = x.spec.as_ref()?.claim_ref.is_none() && x.status.as_ref()?.phase.as_deref() == Some("Available");
        free.then_some(())
    })
    .await;
    env.assert_invariants();
}

#[tokio::test]
async fn a_deleted_claim_stays_while_a_scheduled_pod_uses_it() {
    let env = Env::new().await;
    // The caches the component would read, without its controllers: this test reconciles.
    let shared = SharedInformers::new(env.client().clone(), env.solo.cancel.clone());
    let caches = Caches {
        claims: shared.store(),
        volumes: shared.store(),
        classes: shared.store(),
        pods: shared.store(),
        nodes: shared.store(),
    };
    let binder = Binder::new(env.client().clone(), caches.clone(), "test");
    let key = Key::namespaced(NS, "data");

    env.create(env.claims(), pvc("data", "1Gi", Some(""), RWO)).await;
    schedule(&env, "user", "data", "n1").await;
    until("caches hold the claim and the scheduled pod", || {
        let pod = caches.pods.get(Some(NS), "user");
        caches.claims.get_key(&key).is_some()
            && pod.is_some_and(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
    })
    .await;
    binder.sync_claim(&key).await.expect("reconcile");
    let protected = env.claims().get("data").await.expect("claim");
    assert!(protected.metadata.finalizers.unwrap_or_default().contains(&volume::PVC_PROTECTION.to_string()));

    env.claims().delete("data", &DeleteOptions::default()).await.expect("delete claim");
    until("cache shows the deletion", || {
        caches.claims.get_key(&key).is_some_and(|c| c.metadata.deletion_timestamp.is_some())
    })
    .await;
    binder.sync_claim(&key).await.expect("reconcile");
    let kept = env.claims().get("data").await.expect("still there while the pod runs");
    assert!(kept.metadata.deletion_timestamp.is_some());

    delete_pod(&env, "user").await;
    until("cache drops the pod", || caches.pods.get(Some(NS), "user").is_none()).await;
    binder.sync_claim(&key).await.expect("reconcile");
    assert!(matches!(env.claims().get("data").await, Err(ApiError::NotFound(_))), "gone with its pod");
}
