//! The Deployment controller over a real one-member store, with no ReplicaSet controller:
//! the tests play it ([`Pods`]), writing each RS's status (replicas, ready, available) as
//! pods would come and go, one step at a time, so every intermediate state is reachable.
//!
//! - A new Deployment gets exactly one RS `<deploy>-<hash>` carrying the hash label (also
//!   in its selector and template), revision 1, a blocking controller ownerReference and
//!   the replicas; its status and conditions follow the RS; a scale goes to the new RS.
//! - A RollingUpdate to a new image creates revision 2 and rolls; every RS state the
//!   controller produces (seen through a watch, in order) keeps the desired total within
//!   `replicas + maxSurge` and the pods that stay available at `replicas - maxUnavailable`
//!   or more. Setting the template back as `kubectl rollout undo` sends it reuses the first
//!   RS, now revision 3, and rolls back under the same bounds.
//! - Recreate scales the old RS to 0 and creates the new one only after its pods are gone.
//! - progressDeadlineSeconds turns Progressing to False/ProgressDeadlineExceeded; a paused
//!   Deployment gets status but no new RS until resumed.
//! - revisionHistoryLimit deletes the oldest idle RSs; orphans are adopted, RSs controlled
//!   by something else are left alone.

mod support;

use std::collections::BTreeMap;

use flotilla_apiserver::client::Api;
use flotilla_apiserver::registry::ListOptions;
use flotilla_apiserver::ApiError;
use flotilla_controllers::deployment::replicasets::{desired, revision};
use flotilla_controllers::deployment::{self, template};
use flotilla_controllers::runtime::{owner, Change, Informer, InformerConfig, Store};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use support::{until, wait_for, Solo};
use tokio::sync::mpsc;

const NS: &str = "default";

/// The store, the running controller, an RS cache with its change feed.
struct Env {
    _solo: Solo,
    deployments: Api<Deployment>,
    rs_api: Api<ReplicaSet>,
    rs: Store<ReplicaSet>,
    changes: mpsc::Receiver<Change<ReplicaSet>>,
    /// The controlled RSs as the changes so far left them (see [`check`]).
    seen: BTreeMap<String, ReplicaSet>,
}

impl Env {
    async fn start() -> Self {
        let solo = Solo::start().await;
        solo.lead(deployment::component());
        let informer = Informer::<ReplicaSet>::new(&solo.client, InformerConfig::default());
        let (rs, changes) = (informer.store(), informer.store().subscribe());
        tokio::spawn(informer.run(solo.cancel.clone()));
        tokio::time::timeout(support::DEADLINE, rs.wait_synced()).await.expect("RS cache synced in time");
        let (deployments, rs_api) = (solo.client.api(Some(NS)), solo.client.api(Some(NS)));
        Env { deployments, rs_api, rs, changes, seen: BTreeMap::new(), _solo: solo }
    }

    async fn get(&self, name: &str) -> Deployment {
        self.deployments.get(name).await.expect("get deployment")
    }

    /// Change `name`'s spec with `f`, retrying on conflicts.
    async fn edit(&self, name: &str, f: impl Fn(&mut Deployment)) -> Deployment {
        support::edit(&self.deployments, name, f).await
    }

    /// The RSs controlled by `d`, oldest revision first.
    fn owned(&self, d: &Deployment) -> Vec<ReplicaSet> {
        let mut v: Vec<ReplicaSet> =
            self.rs.list_in(NS).iter().filter(|rs| controlled_by(rs, d)).map(|rs| (**rs).clone()).collect();
        v.sort_by_key(revision);
        v
    }

    /// Wait until Deployment `name` satisfies `pred`.
    async fn wait(&self, what: &str, name: &str, pred: impl Fn(&Deployment) -> bool) -> Deployment {
        wait_for(what, || async {
            let d = self.get(name).await;
            pred(&d).then_some(d)
        })
        .await
    }

    /// Wait until `name`'s status reports a complete rollout of its current generation.
    async fn complete(&self, name: &str) -> Deployment {
        let done =
            |d: &Deployment| rolled_out(d) && reason(d, "Progressing").as_deref() == Some("NewReplicaSetAvailable");
        self.wait("rollout complete", name, done).await
    }
}

/// Whether `d`'s status counts say its current generation is fully rolled out.
fn rolled_out(d: &Deployment) -> bool {
    let s = d.status.clone().unwrap_or_default();
    let r = d.spec.as_ref().and_then(|s| s.replicas);
    observed(d) && s.updated_replicas == r && s.replicas == r && s.available_replicas == r
}

fn controlled_by(rs: &ReplicaSet, d: &Deployment) -> bool {
    owner::controller_ref(&rs.metadata).is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref())
}

/// Whether the controller has seen `d`'s current spec.
fn observed(d: &Deployment) -> bool {
    d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
}

fn status_of(rs: &ReplicaSet) -> (i32, i32) {
    rs.status.as_ref().map_or((0, 0), |s| (s.replicas, s.available_replicas.unwrap_or(0)))
}

fn condition(d: &Deployment, type_: &str) -> Option<DeploymentCondition> {
    d.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_).cloned()
}

fn reason(d: &Deployment, type_: &str) -> Option<String> {
    condition(d, type_)?.reason
}

fn rolling(surge: i32, unavailable: i32) -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(surge)),
            max_unavailable: Some(IntOrString::Int(unavailable)),
        }),
    }
}

fn new_deployment(name: &str, replicas: i32, image: &str, strategy: DeploymentStrategy) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .expect("deployment")
}

fn set_image(d: &mut Deployment, image: &str) {
    let spec = d.spec.as_mut().expect("spec");
    spec.template.spec.as_mut().expect("pod spec").containers[0].image = Some(image.into());
}

/// One step of a pretend ReplicaSet controller for `d`: the first RS whose pod count differs
/// from its spec gets it (new pods not yet available, removed pods no longer available);
/// otherwise the first RS with unavailable pods gets one more available. Returns whether
/// it wrote anything.
async fn pods_step(env: &Env, d: &Deployment) -> bool {
    for rs in env.owned(d) {
        let (pods, available) = status_of(&rs);
        let want = desired(&rs);
        let next = if pods != want {
            (want, available.min(want))
        } else if available < want {
            (pods, available + 1)
        } else {
            continue;
        };
        let mut rs = rs.clone();
        let status = rs.status.get_or_insert_with(Default::default);
        (status.replicas, status.ready_replicas, status.available_replicas) = (next.0, Some(next.1), Some(next.1));
        status.observed_generation = rs.metadata.generation;
        let name = rs.metadata.name.clone().expect("name");
        match env.rs_api.update_status(&name, &rs).await {
            Ok(_) | Err(ApiError::Conflict(_)) => return true,
            Err(e) => panic!("rs status: {e}"),
        }
    }
    false
}

/// Bounds every RS state of the rollout must meet, checked on each change in order.
struct Bounds {
    max_total: i32,
    min_available: i32,
}

/// Apply the queued RS changes to `env.seen` and check every intermediate state.
fn check(env: &mut Env, d: &Deployment, bounds: &Bounds) {
    let seen = &mut env.seen;
    while let Ok(change) = env.changes.try_recv() {
        match change.new {
            Some(rs) if controlled_by(&rs, d) => seen.insert(change.key.name.clone(), (*rs).clone()),
            _ => seen.remove(&change.key.name),
        };
        let total: i32 = seen.values().map(desired).sum();
        let available: i32 = seen.values().map(|rs| status_of(rs).1.min(desired(rs))).sum();
        assert!(total <= bounds.max_total, "desired total {total} > {}: {:?}", bounds.max_total, summary(seen));
        assert!(available >= bounds.min_available, "available {available} too low: {:?}", summary(seen));
    }
}

fn summary(seen: &BTreeMap<String, ReplicaSet>) -> Vec<(String, i32, (i32, i32))> {
    seen.values().map(|rs| (rs.metadata.name.clone().unwrap_or_default(), desired(rs), status_of(rs))).collect()
}

/// Play the pods until `name` completes its rollout, checking `bounds` on every state.
async fn roll(env: &mut Env, name: &str, bounds: &Bounds) -> Deployment {
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    loop {
        let d = env.get(name).await;
        check(env, &d, bounds);
        if rolled_out(&d) {
            return env.complete(name).await;
        }
        assert!(tokio::time::Instant::now() < deadline, "rollout of {name} did not finish: {:?}", summary(&env.seen));
        if !pods_step(env, &d).await {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn a_new_deployment_gets_one_replicaset_named_by_its_template_hash() {
    let mut env = Env::start().await;
    env.deployments.create(&new_deployment("web", 3, "nginx:1", rolling(1, 1))).await.expect("create");
    let d = env.wait("one RS", "web", |d| env.owned(d).len() == 1).await;
    let rs = env.owned(&d).remove(0);
    let hash = template::hash(&d.spec.as_ref().expect("spec").template, None);
    assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    let label = |m: Option<&BTreeMap<String, String>>| m.and_then(|l| l.get("pod-template-hash")).cloned();
    let spec = rs.spec.clone().expect("rs spec");
    assert_eq!(label(rs.metadata.labels.as_ref()), Some(hash.clone()));
    assert_eq!(label(spec.selector.match_labels.as_ref()), Some(hash.clone()));
    let pod_labels = spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.as_ref());
    assert_eq!(label(pod_labels), Some(hash));
    assert_eq!(rs.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("web"));
    assert_eq!((revision(&rs), spec.replicas), (1, Some(3)));
    let owner = &rs.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Deployment", "web"));
    assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));

    // Before any pod is available: Available False, Progressing True.
    let d = env.wait("status observed", "web", |d| reason(d, "Available").is_some()).await;
    assert_eq!(reason(&d, "Available").as_deref(), Some("MinimumReplicasUnavailable"));
    assert_eq!(d.status.as_ref().and_then(|s| s.unavailable_replicas), Some(3));
    let d = roll(&mut env, "web", &Bounds { max_total: 4, min_available: 0 }).await;
    let s = d.status.clone().expect("status");
    assert_eq!(s.observed_generation, d.metadata.generation);
    assert_eq!(
        (s.replicas, s.updated_replicas, s.ready_replicas, s.available_replicas),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(s.unavailable_replicas.unwrap_or(0), 0);
    assert_eq!(reason(&d, "Available").as_deref(), Some("MinimumReplicasAvailable"));
    let annotations = d.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("deployment.kubernetes.io/revision").map(String::as_str), Some("1"));

    // A scale goes to the one RS.
    env.edit("web", |d| d.spec.as_mut().expect("spec").replicas = Some(5)).await;
    until("the RS scaled to 5", || env.owned(&d).iter().map(desired).collect::<Vec<_>>() == vec![5]).await;
}

#[tokio::test]
async fn a_rolling_update_stays_within_its_bounds_and_undo_reuses_the_first_replicaset() {
    let mut env = Env::start().await;
    env.deployments.create(&new_deployment("app", 4, "app:1", rolling(1, 1))).await.expect("create");
    let d = roll(&mut env, "app", &Bounds { max_total: 5, min_available: 0 }).await;
    let first = env.owned(&d).remove(0);

    env.edit("app", |d| set_image(d, "app:2")).await;
    let bounds = Bounds { max_total: 5, min_available: 3 };
    let d = roll(&mut env, "app", &bounds).await;
    let rss = env.owned(&d);
    assert_eq!(rss.len(), 2);
    assert_eq!((revision(&rss[0]), desired(&rss[0]), revision(&rss[1]), desired(&rss[1])), (1, 0, 2, 4));
    assert_eq!(rss[0].metadata.uid, first.metadata.uid);

    // `kubectl rollout undo`: the old RS's template, hash label removed, as Go serialises it.
    let mut sent = serde_json::to_value(first.spec.as_ref().and_then(|s| s.template.as_ref())).expect("json");
    sent["metadata"]["labels"].as_object_mut().expect("labels").remove("pod-template-hash");
    sent["metadata"]["creationTimestamp"] = serde_json::Value::Null;
    sent["spec"]["containers"][0]["resources"] = json!({});
    let sent: PodTemplateSpec = serde_json::from_value(sent).expect("template");
    env.edit("app", |d| d.spec.as_mut().expect("spec").template = sent.clone()).await;
    let d = roll(&mut env, "app", &bounds).await;
    let rss = env.owned(&d);
    assert_eq!(rss.len(), 2, "no third RS");
    assert_eq!(rss[1].metadata.uid, first.metadata.uid, "the first RS is the new one again");
    assert_eq!((revision(&rss[0]), desired(&rss[0]), revision(&rss[1]), desired(&rss[1])), (2, 0, 3, 4));
    let annotations = d.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("deployment.kubernetes.io/revision").map(String::as_str), Some("3"));
}

#[tokio::test]
async fn recreate_scales_the_old_replicaset_to_zero_before_the_new_one_comes_up() {
    let mut env = Env::start().await;
    let recreate = DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None };
    env.deployments.create(&new_deployment("db", 2, "db:1", recreate)).await.expect("create");
    let d = roll(&mut env, "db", &Bounds { max_total: 2, min_available: 0 }).await;
    env.edit("db", |d| set_image(d, "db:2")).await;
    until("old RS scaled to 0", || env.owned(&d).first().map(desired) == Some(0)).await;
    // Its pods are still there (nobody updated its status): no new RS yet.
    let still = env.wait("status seen while old pods remain", "db", observed).await;
    let (listed, _) = env.rs_api.list(&ListOptions::default()).await.expect("list");
    assert_eq!(listed.iter().filter(|rs| controlled_by(rs, &still)).count(), 1, "the new RS waits for the old pods");
    let d = roll(&mut env, "db", &Bounds { max_total: 2, min_available: 0 }).await;
    let rss = env.owned(&d);
    assert_eq!((rss.len(), desired(&rss[0]), desired(&rss[1]), revision(&rss[1])), (2, 0, 2, 2));
}

#[tokio::test]
async fn the_progress_deadline_and_pausing_show_in_the_status() {
    let env = Env::start().await;
    let mut d = new_deployment("slow", 1, "slow:1", rolling(1, 0));
    d.spec.as_mut().expect("spec").progress_deadline_seconds = Some(1);
    env.deployments.create(&d).await.expect("create");
    let exceeded = |d: &Deployment| reason(d, "Progressing").as_deref() == Some("ProgressDeadlineExceeded");
    let d = env.wait("deadline exceeded", "slow", exceeded).await;
    assert_eq!(condition(&d, "Progressing").map(|c| c.status).as_deref(), Some("False"));
    assert_eq!(reason(&d, "Available").as_deref(), Some("MinimumReplicasUnavailable"));

    env.edit("slow", |d| {
        d.spec.as_mut().expect("spec").paused = Some(true);
        set_image(d, "slow:2");
    })
    .await;
    let paused = |d: &Deployment| observed(d) && reason(d, "Progressing").as_deref() == Some("DeploymentPaused");
    env.wait("paused seen", "slow", paused).await;
    assert_eq!(env.owned(&d).len(), 1, "paused: no new RS");
    env.edit("slow", |d| d.spec.as_mut().expect("spec").paused = None).await;
    until("resumed: the new RS", || env.owned(&d).len() == 2).await;
}

#[tokio::test]
async fn history_is_limited_orphans_are_adopted_and_foreign_replicasets_ignored() {
    let mut env = Env::start().await;
    let mut d = new_deployment("hist", 1, "h:1", rolling(1, 0));
    d.spec.as_mut().expect("spec").revision_history_limit = Some(1);
    // An orphan with the Deployment's labels, and one controlled by someone else.
    let orphan: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "stray", "namespace": NS, "labels": {"app": "hist", "v": "stray"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "hist", "v": "stray"}},
                 "template": {"metadata": {"labels": {"app": "hist", "v": "stray"}},
                              "spec": {"containers": [{"name": "c", "image": "stray"}]}}}
    }))
    .expect("orphan");
    let mut foreign = orphan.clone();
    foreign.metadata.name = Some("foreign".into());
    foreign.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "other", "uid": "other-uid", "controller": true
    }))
    .expect("ref")]);
    env.rs_api.create(&orphan).await.expect("orphan");
    env.rs_api.create(&foreign).await.expect("foreign");
    env.deployments.create(&d).await.expect("create");
    let bounds = Bounds { max_total: 2, min_available: 0 };
    let d = roll(&mut env, "hist", &bounds).await;
    let stray = env.rs_api.get("stray").await.expect("stray kept: within the history limit");
    assert!(controlled_by(&stray, &d), "the matching orphan is adopted");
    for image in ["h:2", "h:3"] {
        env.edit("hist", |d| set_image(d, image)).await;
        roll(&mut env, "hist", &bounds).await;
    }
    until("one old RS kept", || env.owned(&d).len() == 2).await;
    let rss = env.owned(&d);
    let image = |rs: &ReplicaSet| rs.spec.clone()?.template?.spec?.containers[0].image.clone();
    let images: Vec<String> = rss.iter().filter_map(image).collect();
    assert_eq!(images, vec!["h:2", "h:3"], "the adopted orphan and revision 1 went first");
    let foreign = env.rs_api.get("foreign").await.expect("foreign still there");
    assert_eq!(foreign.metadata.owner_references.expect("refs")[0].uid, "other-uid");
}
