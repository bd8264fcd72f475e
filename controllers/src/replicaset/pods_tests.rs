//! Unit tests of the ReplicaSet's pod decisions on hand-built pods.

use k8s_openapi::api::apps::v1::ReplicaSetSpec;
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::pod::fixtures::at;

/// A Running pod labelled `app=web`, Ready since `ready_at` if given.
fn pod(name: &str, ready_at: Option<i64>) -> Arc<Pod> {
    let mut pod = crate::pod::fixtures::pod("Running", ready_at);
    pod.metadata.name = Some(name.into());
    pod.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
    Arc::new(pod)
}

fn rs(min_ready_seconds: i32) -> ReplicaSet {
    let labels = [("app".to_string(), "web".to_string()), ("tier".to_string(), "front".to_string())].into();
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("prod".into()),
            uid: Some("rs-uid".into()),
            generation: Some(4),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            min_ready_seconds: Some(min_ready_seconds),
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec::default()),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn a_new_pod_carries_the_template_and_a_blocking_controller_reference() {
    let p = new_pod(&rs(0));
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(p.metadata.namespace.as_deref(), Some("prod"));
    assert_eq!(p.metadata.labels.as_ref().map(|l| l.len()), Some(2));
    let refs = p.metadata.owner_references.expect("owner references");
    assert_eq!(refs.len(), 1);
    assert_eq!((refs[0].kind.as_str(), refs[0].uid.as_str()), ("ReplicaSet", "rs-uid"));
    assert_eq!((refs[0].controller, refs[0].block_owner_deletion), (Some(true), Some(true)));
}

#[test]
fn status_counts_ready_pods_as_available_after_min_ready_seconds() {
    let active = vec![pod("long-ready", Some(0)), pod("just-ready", Some(95)), pod("not-ready", None)];
    let (s, next) = status(&rs(10), &active, at(100));
    assert_eq!(s.replicas, 3);
    assert_eq!(s.ready_replicas, Some(2));
    assert_eq!(s.available_replicas, Some(1));
    assert_eq!(s.observed_generation, Some(4));
    assert_eq!(s.fully_labeled_replicas, Some(0), "no pod has the template's tier label");
    assert_eq!(next, Some(Duration::from_secs(5)), "recheck when just-ready becomes available");

    let (s, next) = status(&rs(0), &active, at(100));
    assert_eq!((s.available_replicas, next), (Some(2), None));
}
