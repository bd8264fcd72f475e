//! Unit tests of the ReplicaSet's pod decisions on hand-built pods.

use k8s_openapi::api::apps::v1::ReplicaSetSpec;
use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("valid timestamp")
}

fn pod(name: &str, created: i64, node: Option<&str>, phase: &str, ready_at: Option<i64>) -> Arc<Pod> {
    let conditions = ready_at.map(|t| {
        vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(at(t))),
            ..Default::default()
        }]
    });
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            creation_timestamp: Some(Time(at(created))),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec { node_name: node.map(String::from), ..Default::default() }),
        status: Some(PodStatus { phase: Some(phase.into()), conditions, ..Default::default() }),
    })
}

fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
    pods.iter().map(|p| p.metadata.name.as_deref().unwrap_or_default()).collect()
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
fn surplus_pods_go_unscheduled_then_pending_then_not_ready_then_newest() {
    let mut pods = vec![
        pod("ready-old", 1, Some("n1"), "Running", Some(5)),
        pod("ready-new", 2, Some("n1"), "Running", Some(6)),
        pod("running-not-ready", 3, Some("n1"), "Running", None),
        pod("pending-on-node", 4, Some("n1"), "Pending", None),
        pod("unscheduled", 0, None, "Pending", None),
    ];
    deletion_order(&mut pods);
    assert_eq!(names(&pods), ["unscheduled", "pending-on-node", "running-not-ready", "ready-new", "ready-old"]);
}

#[test]
fn terminating_and_finished_pods_are_not_active() {
    assert!(is_active(&pod("a", 0, None, "Pending", None)));
    assert!(!is_active(&pod("b", 0, Some("n"), "Succeeded", None)));
    assert!(!is_active(&pod("c", 0, Some("n"), "Failed", None)));
    let mut terminating = (*pod("d", 0, Some("n"), "Running", None)).clone();
    terminating.metadata.deletion_timestamp = Some(Time(at(9)));
    assert!(!is_active(&terminating));
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
    let active = vec![
        pod("long-ready", 0, Some("n"), "Running", Some(0)),
        pod("just-ready", 0, Some("n"), "Running", Some(95)),
        pod("not-ready", 0, Some("n"), "Running", None),
    ];
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
