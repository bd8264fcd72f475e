//! The scheduling loop over a real one-member store, started as the leader starts it
//! (`component()(ctx)` with a fenced client).
//!
//! What is tested, and why it matters:
//! - pending pods are bound to Ready nodes with room, and capacity taken by earlier
//!   decisions counts before their bindings come back through the watch (assume), so
//!   three nodes with room for two pods each get exactly two each;
//! - a pod that fits nowhere gets a `FailedScheduling` Warning event with upstream's
//!   "0/N nodes are available: ..." text, and is bound as soon as a suitable node joins
//!   (the node add re-queues it: the test's backoff is an hour);
//! - deleting a bound pod frees its room at once for a pod waiting for it;
//! - a cordoned node is never chosen, even when it has the most room;
//! - cancelling the context stops the loop: the component returns, and a pod created
//!   afterwards stays unbound until another scheduler term starts.

mod support;

use flotilla_apiserver::registry::{DeleteOptions, ListOptions};
use std::time::Duration;

use flotilla_controllers::runtime::Backoff;
use flotilla_scheduler::scheduling_loop::{component, component_with, LoopConfig, COMPONENT, REASON};
use k8s_openapi::api::core::v1::{Event, Pod};
use support::{wait_for, Solo, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_pending_pods_within_node_capacity() {
    let solo = Solo::start().await;
    solo.add_node("n1", "1", "110", true, false).await;
    solo.add_node("n2", "1", "110", true, false).await;
    solo.add_node("n3", "1", "110", true, false).await;
    // Not Ready: carries the not-ready taint, so nothing may land there.
    solo.add_node("down", "8", "110", false, false).await;
    // Every pod waits before the scheduler starts, so all six are placed back to back,
    // before any binding comes back through the watch: only assumed capacity keeps a node
    // from getting more than the two pods it has room for.
    let names = ["a", "b", "c", "d", "e", "f"];
    for name in names {
        solo.add_pod(name, "500m").await;
    }
    let (cancel, task) = solo.lead(component());

    let mut per_node = std::collections::BTreeMap::new();
    for name in names {
        *per_node.entry(solo.bound(name).await).or_insert(0) += 1;
    }
    let expected = ["n1", "n2", "n3"].into_iter().map(|n| (n.to_string(), 2)).collect();
    assert_eq!(per_node, expected);

    cancel.cancel();
    tokio::time::timeout(DEADLINE, task).await.expect("scheduler stops").expect("scheduler did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_gets_an_event_then_binds_when_a_node_joins() {
    let solo = Solo::start().await;
    solo.add_node("small", "1", "110", true, false).await;
    // A retry backoff far beyond the deadline: only the node add can get the pod retried.
    let hour = Duration::from_secs(3600);
    let config = LoopConfig { backoff: Backoff { base: hour, max: hour }, ..LoopConfig::default() };
    let (cancel, task) = solo.lead(component_with(config));

    let pod = solo.add_pod("big", "2").await;
    let uid = pod.metadata.uid.clone().expect("created pods have a uid");
    let events = solo.client.api::<Event>(Some("default"));
    let event = wait_for("a FailedScheduling event", || async {
        let (items, _) = events.list(&ListOptions::default()).await.expect("events listed");
        items.into_iter().find(|e| e.involved_object.uid.as_deref() == Some(uid.as_str()))
    })
    .await;
    assert_eq!(event.reason.as_deref(), Some(REASON));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.message.as_deref(), Some("0/1 nodes are available: 1 Insufficient cpu."));
    assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(event.involved_object.name.as_deref(), Some("big"));
    assert_eq!(event.source.as_ref().and_then(|s| s.component.as_deref()), Some(COMPONENT));
    assert!(event.count.is_some_and(|c| c >= 1));
    assert!(event.first_timestamp.is_some() && event.last_timestamp.is_some());
    assert_eq!(solo.node_of("big").await, None);

    solo.add_node("large", "4", "110", true, false).await;
    assert_eq!(solo.bound("big").await, "large");

    cancel.cancel();
    tokio::time::timeout(DEADLINE, task).await.expect("scheduler stops").expect("scheduler did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_lets_a_waiting_pod_in() {
    let solo = Solo::start().await;
    solo.add_node("only", "1", "110", true, false).await;
    let hour = Duration::from_secs(3600);
    let config = LoopConfig { backoff: Backoff { base: hour, max: hour }, ..LoopConfig::default() };
    let (cancel, task) = solo.lead(component_with(config));
    solo.add_pod("first", "800m").await;
    assert_eq!(solo.bound("first").await, "only");

    let waiting = solo.add_pod("second", "800m").await;
    let uid = waiting.metadata.uid.clone().expect("created pods have a uid");
    let events = solo.client.api::<Event>(Some("default"));
    wait_for("the waiting pod's FailedScheduling event", || async {
        let (items, _) = events.list(&ListOptions::default()).await.expect("events listed");
        items.into_iter().find(|e| e.involved_object.uid.as_deref() == Some(uid.as_str()))
    })
    .await;
    // With an hour of backoff, only the deletion can get it retried.
    let pods = solo.client.api::<Pod>(Some("default"));
    // Grace period 0: no kubelet runs here to finish a graceful deletion, and a terminating
    // pod still holds its room (as upstream's scheduler counts it).
    let now = DeleteOptions { grace_period_seconds: Some(0), ..Default::default() };
    pods.delete("first", &now).await.expect("pod deleted");
    assert_eq!(solo.bound("second").await, "only");

    cancel.cancel();
    tokio::time::timeout(DEADLINE, task).await.expect("scheduler stops").expect("scheduler did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordoned_node_is_avoided() {
    let solo = Solo::start().await;
    // The cordoned node has far more room: least-allocated scoring alone would prefer it.
    solo.add_node("cordoned", "64", "110", true, true).await;
    solo.add_node("open", "2", "110", true, false).await;
    let (cancel, task) = solo.lead(component());

    for name in ["p1", "p2", "p3"] {
        solo.add_pod(name, "100m").await;
    }
    for name in ["p1", "p2", "p3"] {
        assert_eq!(solo.bound(name).await, "open", "pod {name}");
    }

    cancel.cancel();
    tokio::time::timeout(DEADLINE, task).await.expect("scheduler stops").expect("scheduler did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_binding() {
    let solo = Solo::start().await;
    solo.add_node("n1", "4", "110", true, false).await;
    let (cancel, task) = solo.lead(component());
    solo.add_pod("before", "100m").await;
    assert_eq!(solo.bound("before").await, "n1");

    cancel.cancel();
    tokio::time::timeout(DEADLINE, task).await.expect("scheduler stops").expect("scheduler did not panic");
    // The component has returned and its tasks with it: nothing is left to bind this pod.
    solo.add_pod("after", "100m").await;
    assert_eq!(solo.node_of("after").await, None);

    // It was schedulable all along: the next term binds it.
    let (cancel, task) = solo.lead(component());
    assert_eq!(solo.bound("after").await, "n1");
    cancel.cancel();
    tokio::time::timeout(DEADLINE, task).await.expect("scheduler stops").expect("scheduler did not panic");
}
