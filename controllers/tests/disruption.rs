//! The disruption controller over a real one-member store: a PodDisruptionBudget's status
//! follows its pods, and the eviction subresource (what `kubectl drain` calls) spends it.
//!
//! - Three Ready, Running pods of a 3-replica ReplicaSet under `maxUnavailable: 1`: one
//!   disruption is allowed; the first eviction succeeds, the second is refused (429) until
//!   the controller has seen the evicted pod go and a replacement become Ready.
//! - A budget whose pods have no controller reports SyncFailed and allows nothing.

mod support;

use std::collections::BTreeMap;

use flotilla_apiserver::client::Api;
use flotilla_apiserver::ApiError;
use flotilla_controllers::disruption;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use support::{wait_for, Solo};

const NS: &str = "default";

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), "web".to_string())])
}

async fn replicaset(solo: &Solo) -> ReplicaSet {
    let rs = ReplicaSet {
        metadata: ObjectMeta { name: Some("web".into()), ..Default::default() },
        spec: Some(ReplicaSetSpec {
            replicas: Some(3),
            selector: LabelSelector { match_labels: Some(labels()), ..Default::default() },
            template: Some(k8s_openapi::api::core::v1::PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels()), ..Default::default() }),
                spec: Some(PodSpec { containers: vec![container()], ..Default::default() }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    solo.client.api::<ReplicaSet>(Some(NS)).create(&rs).await.expect("create rs")
}

fn container() -> Container {
    Container { name: "c".into(), image: Some("busybox".into()), ..Default::default() }
}

/// A Running, Ready pod, controlled by `owner` if given.
async fn ready_pod(pods: &Api<Pod>, name: &str, owner: Option<&ReplicaSet>) -> Pod {
    let owner_references = owner.map(|rs| {
        vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: rs.metadata.name.clone().unwrap_or_default(),
            uid: rs.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            ..Default::default()
        }]
    });
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels()),
            owner_references,
            ..Default::default()
        },
        spec: Some(PodSpec { containers: vec![container()], ..Default::default() }),
        status: None,
    };
    pods.create(&pod).await.expect("create pod");
    support::mark_ready(pods, name).await.expect("pod status")
}

async fn budget(solo: &Solo, max_unavailable: i32) -> PodDisruptionBudget {
    let pdb = PodDisruptionBudget {
        metadata: ObjectMeta { name: Some("web".into()), ..Default::default() },
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable)),
            selector: Some(LabelSelector { match_labels: Some(labels()), ..Default::default() }),
            ..Default::default()
        }),
        status: None,
    };
    solo.client.api::<PodDisruptionBudget>(Some(NS)).create(&pdb).await.expect("create pdb")
}

/// Wait until the budget's status satisfies `cond`.
async fn until_status(solo: &Solo, what: &str, cond: impl Fn(&PodDisruptionBudget) -> bool) -> PodDisruptionBudget {
    wait_for(what, || {
        let api = solo.client.api::<PodDisruptionBudget>(Some(NS));
        let cond = &cond;
        async move { api.get("web").await.ok().filter(|p| cond(p)) }
    })
    .await
}

fn allowed(p: &PodDisruptionBudget) -> Option<i32> {
    let s = p.status.as_ref()?;
    (s.observed_generation == p.metadata.generation).then_some(s.disruptions_allowed)
}

#[tokio::test]
async fn evictions_spend_the_budget_and_the_controller_refills_it() {
    let solo = Solo::start().await;
    solo.lead(disruption::component());
    let rs = replicaset(&solo).await;
    let pods = solo.client.api::<Pod>(Some(NS));
    for name in ["web-a", "web-b", "web-c"] {
        ready_pod(&pods, name, Some(&rs)).await;
    }
    budget(&solo, 1).await;
    let pdb = until_status(&solo, "one disruption allowed", |p| allowed(p) == Some(1)).await;
    let status = pdb.status.expect("status");
    assert_eq!((status.expected_pods, status.desired_healthy, status.current_healthy), (3, 2, 3));

    solo.registry.evict(NS, "web-a", &json!({})).await.expect("the first eviction fits the budget");
    let refused = solo.registry.evict(NS, "web-b", &json!({})).await.expect_err("the second does not");
    assert!(matches!(refused, ApiError::DisruptionBudget(..)), "{refused:?}");

    // web-a was not bound, so it is gone at once; the controller sees 2 healthy of 3.
    let pdb = until_status(&solo, "web-a gone from the budget", |p| {
        p.status.as_ref().is_some_and(|s| s.current_healthy == 2 && s.disrupted_pods.is_none())
    })
    .await;
    assert_eq!(allowed(&pdb), Some(0));
    assert!(solo.registry.evict(NS, "web-b", &json!({})).await.is_err(), "still no room");

    ready_pod(&pods, "web-d", Some(&rs)).await;
    until_status(&solo, "the replacement refills the budget", |p| allowed(p) == Some(1)).await;
    solo.registry.evict(NS, "web-b", &json!({})).await.expect("room again");
}

#[tokio::test]
async fn pods_without_a_controller_make_a_max_unavailable_budget_unusable() {
    let solo = Solo::start().await;
    solo.lead(disruption::component());
    let pods = solo.client.api::<Pod>(Some(NS));
    ready_pod(&pods, "lonely", None).await;
    budget(&solo, 1).await;
    let pdb = until_status(&solo, "a SyncFailed status", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.reason == "SyncFailed"))
    })
    .await;
    assert_eq!(allowed(&pdb), Some(0));
    let refused = solo.registry.evict(NS, "lonely", &json!({})).await.expect_err("no disruption allowed");
    assert!(matches!(refused, ApiError::DisruptionBudget(..)), "{refused:?}");
}
