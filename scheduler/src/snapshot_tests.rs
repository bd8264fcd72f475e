//! The snapshot's per-node totals stay equal to the sum over the pods placed there, through
//! every kind of update the loop makes.

use k8s_openapi::api::core::v1::PodStatus;

use super::*;
use crate::fixtures::{node, pod, HOSTNAME as HOSTNAME_LABEL};

/// (requested millicores, requested bytes, pod count) of a node.
fn totals(snap: &Snapshot, name: &str) -> (i64, i64, i64) {
    let n = snap.node(name).expect("node present");
    (n.requested.milli_cpu, n.requested.memory, n.pod_count)
}

fn phase(mut p: Pod, phase: &str) -> Pod {
    p.status = Some(PodStatus { phase: Some(phase.into()), ..Default::default() });
    p
}

#[test]
fn built_from_lists_it_sums_placed_running_pods_only() {
    let pods = [
        pod("a").on("n1").request("cpu", "250m").request("memory", "1Mi").build(),
        pod("b").on("n1").request("cpu", "1").build(),
        pod("pending").request("cpu", "3").build(),
        phase(pod("done").on("n1").request("cpu", "3").build(), "Succeeded"),
        phase(pod("crashed").on("n1").request("cpu", "3").build(), "Failed"),
        pod("c").on("n2").build(),
    ];
    let snap = Snapshot::new(&[node("n1").build(), node("n2").build()], &pods, &[], &[]);
    assert_eq!(totals(&snap, "n1"), (1250, 1024 * 1024, 2));
    assert_eq!(totals(&snap, "n2"), (0, 0, 1));
    assert_eq!(snap.pod_count(), 3);
    assert_eq!(snap.node("n2").unwrap().non_zero_milli_cpu, 100, "default request for scoring");
}

#[test]
fn assume_and_forget_are_inverse_and_assume_is_idempotent() {
    let mut snap = Snapshot::new(&[node("n1").build(), node("n2").build()], &[], &[], &[]);
    let p = pod("p").request("cpu", "500m").host_port(8080, None, None).owner("rs-1").build();
    snap.assume(&p, "n1");
    snap.assume(&p, "n1");
    assert_eq!(totals(&snap, "n1"), (500, 0, 1), "assuming twice counts once");
    assert_eq!(snap.owner_spread("rs-1").unwrap().len(), 1);
    snap.assume(&p, "n2");
    assert_eq!((totals(&snap, "n1"), totals(&snap, "n2")), ((0, 0, 0), (500, 0, 1)), "a re-placement moves it");
    assert_eq!(snap.pod_node("uid-p"), Some("n2"));
    assert!(snap.forget("uid-p"));
    assert!(!snap.forget("uid-p"));
    assert_eq!(totals(&snap, "n2"), (0, 0, 0));
    assert!(snap.node("n2").unwrap().ports.is_empty());
    assert!(snap.owner_spread("rs-1").is_none());
}

#[test]
fn upsert_pod_follows_the_pod_lifecycle() {
    let mut snap = Snapshot::new(&[node("n1").build()], &[], &[], &[]);
    let p = pod("p").request("cpu", "1").build();
    snap.upsert_pod(&p);
    assert_eq!(totals(&snap, "n1"), (0, 0, 0), "unbound: nothing");
    let bound = pod("p").request("cpu", "1").on("n1").build();
    snap.upsert_pod(&bound);
    assert_eq!(totals(&snap, "n1"), (1000, 0, 1));
    snap.upsert_pod(&phase(bound, "Succeeded"));
    assert_eq!(totals(&snap, "n1"), (0, 0, 0), "finished pods release their resources");
}

#[test]
fn pods_on_unknown_nodes_count_once_the_node_appears() {
    let mut snap = Snapshot::new(&[], &[pod("early").on("n1").request("cpu", "1").owner("rs").build()], &[], &[]);
    assert_eq!(snap.node_count(), 0);
    snap.upsert_node(&node("n1").build());
    assert_eq!(totals(&snap, "n1"), (1000, 0, 1));
    assert_eq!(snap.owner_spread("rs").map(|m| m.values().sum::<u32>()), Some(1));
    snap.remove_node("n1");
    assert_eq!(snap.node_count(), 0);
    assert!(snap.owner_spread("rs").is_none());
    assert_eq!(snap.detached, 1);
    assert!(snap.forget("uid-early"), "the pod is still known");
    assert_eq!(snap.detached, 0);
    snap.upsert_node(&node("n1").build());
    assert_eq!(totals(&snap, "n1"), (0, 0, 0));
}

#[test]
fn updating_a_node_keeps_its_totals() {
    let mut snap = Snapshot::new(&[node("n1").build()], &[pod("a").on("n1").request("cpu", "1").build()], &[], &[]);
    snap.upsert_node(&node("n1").label("zone", "b").allocatable("cpu", "16").unschedulable().build());
    let n = snap.node("n1").unwrap();
    assert_eq!((n.allocatable.milli_cpu, n.requested.milli_cpu, n.pod_count), (16_000, 1000, 1));
    assert!(n.unschedulable && n.labels.get("zone").is_some_and(|z| z == "b"));
}

#[test]
fn nodes_are_visited_in_name_order_whatever_the_input_order() {
    let names = ["c", "a", "d", "b"];
    let nodes: Vec<Node> = names.iter().map(|n| node(n).build()).collect();
    let mut snap = Snapshot::new(&nodes, &[], &[], &[]);
    let order = |s: &Snapshot| s.nodes().map(|(_, n)| n.name.clone()).collect::<Vec<_>>();
    assert_eq!(order(&snap), ["a", "b", "c", "d"]);
    snap.remove_node("b");
    snap.upsert_node(&node("bb").build());
    snap.upsert_node(&node("0").build());
    assert_eq!(order(&snap), ["0", "a", "bb", "c", "d"]);
    assert_eq!(snap.slot_count(), 5, "the freed slot was reused");
}

#[test]
fn anti_affinity_index_tracks_placed_pods() {
    use crate::fixtures::{pod_term, HOSTNAME};
    let mut snap = Snapshot::new(&[node("n1").build()], &[], &[], &[]);
    let p = pod("p").anti_affinity(pod_term("app", "x", HOSTNAME)).build();
    snap.assume(&p, "n1");
    assert_eq!(snap.pods_with_anti_affinity().count(), 1);
    snap.forget("uid-p");
    assert_eq!(snap.pods_with_anti_affinity().count(), 0);
}

#[test]
fn pods_without_uid_are_keyed_by_namespace_and_name() {
    let mut p = pod("p").namespace("ns").build();
    p.metadata.uid = None;
    assert_eq!(pod_key(&p), "ns/p");
    assert_eq!(pod_key(&pod("q").build()), "uid-q");
}

#[test]
fn label_index_follows_node_changes() {
    let mut snap =
        Snapshot::new(&[node("a").label("zone", "z1").build(), node("b").label("zone", "z1").build()], &[], &[], &[]);
    let names = |s: &Snapshot, k: &str, v: &str| {
        let mut n: Vec<String> = s.nodes_with_label(k, v).iter().map(|slot| s.slot_name(*slot).to_string()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&snap, "zone", "z1"), ["a", "b"]);
    snap.upsert_node(&node("b").label("zone", "z2").build());
    assert_eq!(
        (names(&snap, "zone", "z1"), names(&snap, "zone", "z2")),
        (vec!["a".to_string()], vec!["b".to_string()])
    );
    snap.remove_node("a");
    assert!(names(&snap, "zone", "z1").is_empty());
    snap.upsert_node(&node("c").label("zone", "z2").build());
    assert_eq!(names(&snap, "zone", "z2"), ["b", "c"], "the reused slot is indexed under its new node");
    assert_eq!(names(&snap, HOSTNAME_LABEL, "c"), ["c"]);
}
