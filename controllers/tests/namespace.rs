//! The namespace controller over a real one-member store.
//!
//! - `DELETE namespace` with ConfigMaps, a Deployment and an unbound Pod in it: the
//!   controller deletes them all, then clears `spec.finalizers` and the namespace is
//!   removed. That the namespace goes at all also shows every namespaced resource the API
//!   serves has a purge (an unknown one fails the reconcile and keeps the namespace).
//!   Another namespace's objects are untouched.
//! - An object held by a finalizer keeps its namespace `Terminating` until the finalizer is
//!   removed: the controller waits for content to be gone, it never finalizes early.

mod support;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::registry::{DeleteOptions, ListOptions};
use flotilla_apiserver::ApiError;
use flotilla_controllers::namespace;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use support::{configmap, wait_for, Solo};

async fn create_namespace(client: &Client, name: &str) {
    let ns = Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    client.api::<Namespace>(None).create(&ns).await.expect("create namespace");
}

fn pod_spec() -> PodSpec {
    PodSpec {
        containers: vec![Container { name: "c".into(), image: Some("nginx".into()), ..Default::default() }],
        ..Default::default()
    }
}

fn deployment(ns: &str, name: &str) -> Deployment {
    let labels = [("app".to_string(), name.to_string())].into_iter().collect();
    Deployment {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
        spec: Some(DeploymentSpec {
            selector: LabelSelector { match_labels: Some(labels), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("app".to_string(), name.to_string())].into_iter().collect()),
                    ..Default::default()
                }),
                spec: Some(pod_spec()),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(ns: &str, name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
        spec: Some(pod_spec()),
        ..Default::default()
    }
}

async fn wait_gone(client: &Client, name: &str) {
    let api = client.api::<Namespace>(None);
    wait_for("the namespace to be removed", || async {
        matches!(api.get(name).await, Err(ApiError::NotFound(_))).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_deleted_namespace_is_emptied_then_removed() {
    let solo = Solo::start().await;
    let client = &solo.client;
    for ns in ["doomed", "kept"] {
        create_namespace(client, ns).await;
    }
    let maps = client.api::<ConfigMap>(Some("doomed"));
    for name in ["a", "b", "c"] {
        maps.create(&configmap("doomed", name, &[("v", "1")], &[])).await.expect("create configmap");
    }
    client.api::<Deployment>(Some("doomed")).create(&deployment("doomed", "web")).await.expect("create deployment");
    client.api::<Pod>(Some("doomed")).create(&pod("doomed", "loose")).await.expect("create pod");
    let kept = client.api::<ConfigMap>(Some("kept"));
    kept.create(&configmap("kept", "stays", &[("v", "1")], &[])).await.expect("create kept configmap");

    solo.lead(namespace::component());
    client.api::<Namespace>(None).delete("doomed", &DeleteOptions::default()).await.expect("delete namespace");
    wait_gone(client, "doomed").await;

    let empty = ListOptions::default();
    assert!(maps.list(&empty).await.expect("list configmaps").0.is_empty(), "configmaps deleted");
    let deployments = client.api::<Deployment>(Some("doomed")).list(&empty).await.expect("list deployments").0;
    assert!(deployments.is_empty(), "deployment deleted");
    assert!(client.api::<Pod>(Some("doomed")).list(&empty).await.expect("list pods").0.is_empty(), "pod deleted");
    assert!(kept.get("stays").await.is_ok(), "another namespace's objects are untouched");
    let kept_ns = client.api::<Namespace>(None).get("kept").await.expect("kept namespace");
    assert!(kept_ns.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn a_namespace_waits_for_content_held_by_a_finalizer() {
    let solo = Solo::start().await;
    let client = &solo.client;
    create_namespace(client, "held").await;
    let maps = client.api::<ConfigMap>(Some("held"));
    let mut pinned = configmap("held", "pinned", &[], &[]);
    pinned.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    maps.create(&pinned).await.expect("create pinned configmap");
    maps.create(&configmap("held", "free", &[], &[])).await.expect("create free configmap");

    solo.lead(namespace::component());
    let namespaces = client.api::<Namespace>(None);
    namespaces.delete("held", &DeleteOptions::default()).await.expect("delete namespace");
    let pinned = wait_for("the pinned configmap marked and the free one deleted", || async {
        let free_gone = matches!(maps.get("free").await, Err(ApiError::NotFound(_)));
        let pinned = maps.get("pinned").await.ok()?;
        (free_gone && pinned.metadata.deletion_timestamp.is_some()).then_some(pinned)
    })
    .await;
    let ns = namespaces.get("held").await.expect("the namespace stays while content remains");
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    assert!(ns.spec.and_then(|s| s.finalizers).is_some_and(|f| f.contains(&namespace::FINALIZER.to_string())));

    let mut release = pinned;
    release.metadata.finalizers = None;
    maps.update("pinned", &release).await.expect("remove the finalizer");
    wait_gone(client, "held").await;
}
