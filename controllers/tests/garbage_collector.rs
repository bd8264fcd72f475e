//! The garbage collector over a real one-member store.
//!
//! A ReplicaSet owns two Pods (controller references with `blockOwnerDeletion`), plus a
//! ConfigMap owned by one of the pods, and a Pod that also has a live second owner:
//! - Background: deleting the ReplicaSet removes it at once; the collector then deletes the
//!   pods whose only owner it was, and transitively the ConfigMap owned by a deleted pod;
//!   the pod with another live owner stays.
//! - Orphan: the ReplicaSet stays (`orphan` finalizer) until the collector has removed its
//!   reference from every pod; then it is gone and the pods remain, ownerless.
//! - Foreground: the collector deletes the pods (Foreground, so a pod's own
//!   `foregroundDeletion` is finished too); the ReplicaSet stays while one pod, held by
//!   another finalizer, still exists, and goes once that pod is gone.
//! - A dependent created while the collector runs, whose owner reference names a uid that
//!   does not exist, is deleted; one whose owner exists is not.

mod support;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::registry::{DeleteOptions, Propagation};
use flotilla_apiserver::ApiError;
use flotilla_controllers::garbage_collector::{self, FOREGROUND, ORPHAN};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use support::{configmap, wait_for, Solo};

const NS: &str = "default";
/// A finalizer standing for another controller that holds an object.
const HOLD: &str = "example.com/hold";

fn pod_spec() -> PodSpec {
    PodSpec {
        containers: vec![Container { name: "c".into(), image: Some("nginx".into()), ..Default::default() }],
        ..Default::default()
    }
}

async fn replicaset(client: &Client, name: &str) -> ReplicaSet {
    let labels: std::collections::BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
    let rs = ReplicaSet {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(NS.into()), ..Default::default() },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(pod_spec()),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    client.api::<ReplicaSet>(Some(NS)).create(&rs).await.expect("create replicaset")
}

fn reference(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn rs_ref(rs: &ReplicaSet) -> OwnerReference {
    let meta = &rs.metadata;
    reference("apps/v1", "ReplicaSet", meta.name.as_deref().unwrap(), meta.uid.as_deref().unwrap())
}

async fn pod(client: &Client, name: &str, owners: Vec<OwnerReference>) -> Pod {
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            owner_references: Some(owners),
            ..Default::default()
        },
        spec: Some(pod_spec()),
        ..Default::default()
    };
    client.api::<Pod>(Some(NS)).create(&pod).await.expect("create pod")
}

async fn gone<K>(api: &flotilla_apiserver::client::Api<K>, name: &str) -> bool
where
    K: k8s_openapi::Resource + serde::Serialize + serde::de::DeserializeOwned,
{
    matches!(api.get(name).await, Err(ApiError::NotFound(_)))
}

fn delete_with(policy: Propagation) -> DeleteOptions {
    DeleteOptions { propagation: Some(policy), ..Default::default() }
}

#[tokio::test]
async fn background_deletion_removes_dependents_whose_owners_are_all_gone() {
    let solo = Solo::start().await;
    let client = &solo.client;
    let rs = replicaset(client, "web").await;
    let other = replicaset(client, "other").await;
    let p1 = pod(client, "web-1", vec![rs_ref(&rs)]).await;
    pod(client, "web-2", vec![rs_ref(&rs)]).await;
    let mut shared_ref = rs_ref(&other);
    shared_ref.controller = None;
    pod(client, "shared", vec![rs_ref(&rs), shared_ref]).await;
    let maps = client.api::<ConfigMap>(Some(NS));
    let mut cm = configmap(NS, "web-1-data", &[], &[]);
    cm.metadata.owner_references = Some(vec![reference("v1", "Pod", "web-1", p1.metadata.uid.as_deref().unwrap())]);
    maps.create(&cm).await.expect("create configmap");

    solo.lead(garbage_collector::component());
    let rss = client.api::<ReplicaSet>(Some(NS));
    let deleted = rss.delete("web", &delete_with(Propagation::Background)).await.expect("delete replicaset");
    assert!(deleted.gone, "a Background delete removes the owner at once");

    let pods = client.api::<Pod>(Some(NS));
    wait_for("the pods and the pod's configmap collected", || async {
        (gone(&pods, "web-1").await && gone(&pods, "web-2").await && gone(&maps, "web-1-data").await).then_some(())
    })
    .await;
    let shared = pods.get("shared").await.expect("a pod with a live owner stays");
    assert!(shared.metadata.deletion_timestamp.is_none());
    assert!(rss.get("other").await.is_ok());
}

#[tokio::test]
async fn orphan_deletion_releases_dependents_then_the_owner() {
    let solo = Solo::start().await;
    let client = &solo.client;
    let rs = replicaset(client, "web").await;
    for name in ["web-1", "web-2"] {
        pod(client, name, vec![rs_ref(&rs)]).await;
    }
    let rss = client.api::<ReplicaSet>(Some(NS));
    let deleted = rss.delete("web", &delete_with(Propagation::Orphan)).await.expect("delete replicaset");
    assert!(!deleted.gone, "the orphan finalizer holds the owner");
    let held = rss.get("web").await.expect("held until the collector runs");
    assert!(held.metadata.finalizers.unwrap_or_default().contains(&ORPHAN.to_string()));

    solo.lead(garbage_collector::component());
    wait_for("the replicaset removed", || async { gone(&rss, "web").await.then_some(()) }).await;
    let pods = client.api::<Pod>(Some(NS));
    for name in ["web-1", "web-2"] {
        let p = pods.get(name).await.expect("orphaned pods stay");
        assert!(p.metadata.deletion_timestamp.is_none(), "{name} not deleted");
        assert!(p.metadata.owner_references.unwrap_or_default().is_empty(), "{name} released");
    }
}

#[tokio::test]
async fn foreground_deletion_removes_dependents_before_the_owner() {
    let solo = Solo::start().await;
    let client = &solo.client;
    let rs = replicaset(client, "web").await;
    pod(client, "web-1", vec![rs_ref(&rs)]).await;
    // A pod something else also holds: it lingers, terminating, until released below.
    let mut held_pod = pod(client, "web-2", vec![rs_ref(&rs)]).await;
    held_pod.metadata.finalizers = Some(vec![HOLD.into()]);
    let pods = client.api::<Pod>(Some(NS));
    pods.update("web-2", &held_pod).await.expect("hold web-2");
    let rss = client.api::<ReplicaSet>(Some(NS));
    let deleted = rss.delete("web", &delete_with(Propagation::Foreground)).await.expect("delete replicaset");
    assert!(!deleted.gone, "the foregroundDeletion finalizer holds the owner");

    solo.lead(garbage_collector::component());
    wait_for("web-1 deleted and web-2 terminating", || async {
        let web2 = pods.get("web-2").await.ok()?;
        (gone(&pods, "web-1").await && web2.metadata.deletion_timestamp.is_some()).then_some(())
    })
    .await;
    let owner = rss.get("web").await.expect("the owner stays while a blocking dependent exists");
    assert!(owner.metadata.finalizers.unwrap_or_default().contains(&FOREGROUND.to_string()));

    // The collector may still be writing web-2 (its own foregroundDeletion): retry on conflict.
    support::edit(&pods, "web-2", |p| {
        p.metadata.finalizers = p.metadata.finalizers.take().map(|f| f.into_iter().filter(|f| f != HOLD).collect());
    })
    .await;
    wait_for("the last pod and then the replicaset removed", || async {
        (gone(&pods, "web-2").await && gone(&rss, "web").await).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_dependent_of_a_missing_owner_is_collected_and_one_of_a_live_owner_is_not() {
    let solo = Solo::start().await;
    let client = &solo.client;
    solo.lead(garbage_collector::component());
    let rs = replicaset(client, "web").await;
    pod(client, "kept", vec![rs_ref(&rs)]).await;
    let mut wrong = rs_ref(&rs);
    wrong.uid = "00000000-0000-0000-0000-000000000000".into();
    pod(client, "stray", vec![wrong]).await;
    let pods = client.api::<Pod>(Some(NS));
    wait_for("the stray pod collected", || async { gone(&pods, "stray").await.then_some(()) }).await;
    let kept = pods.get("kept").await.expect("a pod with a live owner stays");
    assert!(kept.metadata.deletion_timestamp.is_none());
}
