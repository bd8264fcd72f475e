//! The in-process typed client (what the scheduler and controllers use): the same registry
//! rules as HTTP — defaults, CAS on resourceVersion, the status split — and typed watches.

use flotilla_apiserver::client::{Client, Event};
use flotilla_apiserver::patch::PatchType;
use flotilla_apiserver::registry::{DeleteOptions, ListOptions, Part};
use flotilla_apiserver::storage::Storage;
use flotilla_apiserver::watch::WatchOptions;
use flotilla_apiserver::{ApiError, Registry};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::json;

use super::support::{deployment, Api};

fn client(api: &Api) -> Client {
    Client::new(Registry::new(Storage::new(api.node.clone())))
}

#[tokio::test]
async fn typed_crud_follows_the_registry_rules() {
    let api = Api::start().await;
    let deployments = client(&api).api::<Deployment>(Some("default"));
    let d: Deployment = serde_json::from_value(deployment("web")).unwrap();
    let created = deployments.create(&d).await.expect("created");
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(1), "defaulted");
    assert_eq!(created.metadata.generation, Some(1));

    let mut changed = created.clone();
    changed.spec.as_mut().unwrap().replicas = Some(3);
    let updated = deployments.update("web", &changed).await.expect("updated");
    assert_eq!(updated.metadata.generation, Some(2));
    // Replaying the same (now stale) version is a conflict, as over HTTP.
    assert!(matches!(deployments.update("web", &changed).await, Err(ApiError::Conflict(_))));

    let mut status = updated.clone();
    status.status = Some(k8s_openapi::api::apps::v1::DeploymentStatus { replicas: Some(3), ..Default::default() });
    status.spec.as_mut().unwrap().replicas = Some(9);
    let after = deployments.update_status("web", &status).await.expect("status written");
    assert_eq!(after.status.unwrap().replicas, Some(3));
    assert_eq!(after.spec.unwrap().replicas, Some(3), "a status write leaves the spec alone");

    let patched =
        deployments.patch("web", PatchType::Merge, &json!({"metadata": {"labels": {"x": "y"}}}), Part::Main).await;
    assert_eq!(patched.unwrap().metadata.labels.unwrap()["x"], "y");
    let (items, rv) = deployments.list(&ListOptions::default()).await.unwrap();
    assert_eq!(items.len(), 1);
    assert!(rv > 0);
    assert!(deployments.delete("web", &DeleteOptions::default()).await.unwrap().gone);
    assert!(matches!(deployments.get("web").await, Err(ApiError::NotFound(_))));
}

#[tokio::test]
async fn typed_watches_see_changes_in_order() {
    let api = Api::start().await;
    let cms = client(&api).api::<ConfigMap>(Some("default"));
    let (_, rv) = cms.list(&ListOptions::default()).await.unwrap();
    let mut watch = cms
        .watch(WatchOptions { resource_version: Some(rv.to_string()), ..Default::default() })
        .await
        .expect("watch starts");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap();
    let created = cms.create(&cm).await.unwrap();
    let mut next = created.clone();
    next.data = Some([("a".to_string(), "2".to_string())].into());
    cms.update("c", &next).await.unwrap();
    cms.delete("c", &DeleteOptions::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
            .await
            .expect("an event in time")
            .expect("the watch goes on")
            .expect("events decode");
        kinds.push(match e {
            Event::Added(c) => format!("ADDED {}", c.data.unwrap()["a"]),
            Event::Modified(c) => format!("MODIFIED {}", c.data.unwrap()["a"]),
            Event::Deleted(c) => format!("DELETED {}", c.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(kinds, ["ADDED 1", "MODIFIED 2", "DELETED c"]);
}
