//! Whole decisions: the FailedScheduling text, determinism, and the loop's assume cycle.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;

use super::*;
use crate::fixtures::{expr, node, pod};

#[test]
fn fit_error_counts_reasons_like_upstream() {
    let nodes = [
        node("a").unschedulable().build(),
        node("b").allocatable("cpu", "1").build(),
        node("c").allocatable("cpu", "1").build(),
    ];
    let snap = Snapshot::new(&nodes, &[], &[], &[]);
    let err = schedule(&pod("p").request("cpu", "2").build(), &snap).unwrap_err();
    assert_eq!(err.to_string(), "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.");
}

#[test]
fn fit_error_with_several_reasons_per_node_and_taints() {
    let nodes = [
        node("a").allocatable("cpu", "1").allocatable("memory", "1Gi").build(),
        node("b").ready("False").build(),
        node("c").taint("node-role.kubernetes.io/control-plane", "", "NoSchedule").build(),
        node("d").label("disk", "hdd").build(),
    ];
    let snap = Snapshot::new(&nodes, &[], &[], &[]);
    // "a" has no disk label, so NotIn passes there and its resources are what fails.
    let p = pod("p").request("cpu", "2").request("memory", "2Gi").required_term(vec![expr("disk", "NotIn", &["hdd"])]);
    assert_eq!(
        schedule(&p.build(), &snap).unwrap_err().to_string(),
        "0/4 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, \
         1 node(s) didn't match Pod's node affinity/selector, \
         1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
         1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
    );
}

#[test]
fn no_nodes_and_prefilter_failures() {
    let empty = Snapshot::default();
    assert_eq!(schedule(&pod("p").build(), &empty), Err(FitError::NoNodes));
    let snap = Snapshot::new(&[node("a").build(), node("b").build()], &[], &[], &[]);
    let err = schedule(&pod("p").claim("data", "missing").build(), &snap).unwrap_err();
    assert_eq!(err.to_string(), "0/2 nodes are available: persistentvolumeclaim \"missing\" not found.");
}

#[test]
fn the_only_feasible_node_is_chosen() {
    let nodes = [node("a").build(), node("b").label("gpu", "yes").build(), node("c").build()];
    let snap = Snapshot::new(&nodes, &[], &[], &[]);
    assert_eq!(schedule(&pod("p").node_selector("gpu", "yes").build(), &snap), Ok("b".to_string()));
}

fn cluster(names: &[String]) -> Vec<Node> {
    names.iter().map(|n| node(n).build()).collect()
}

#[test]
fn same_input_same_node_whatever_the_build_order() {
    let names: Vec<String> = (0..50).map(|i| format!("node-{i:02}")).collect();
    let mut reversed = names.clone();
    reversed.reverse();
    let placed: Vec<_> =
        (0..30).map(|i| pod(&format!("x{i}")).on(&names[i * 7 % 50]).request("cpu", "100m").build()).collect();
    let mut placed_rev = placed.clone();
    placed_rev.reverse();
    let a = Snapshot::new(&cluster(&names), &placed, &[], &[]);
    let b = Snapshot::new(&cluster(&reversed), &placed_rev, &[], &[]);
    for i in 0..40 {
        let p = pod(&format!("p{i}")).request("cpu", "200m").build();
        let first = schedule(&p, &a).unwrap();
        assert_eq!(schedule(&p, &a).unwrap(), first);
        assert_eq!(schedule(&p, &b).unwrap(), first);
    }
}

#[test]
fn ties_are_spread_by_hash_not_by_name() {
    let names: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    let snap = Snapshot::new(&cluster(&names), &[], &[], &[]);
    let picks: BTreeSet<String> = (0..100).map(|i| schedule(&pod(&format!("p{i}")).build(), &snap).unwrap()).collect();
    assert!(picks.len() >= 5, "equally good nodes should all be used by some pods: {picks:?}");
}

#[test]
fn assume_after_each_decision_fills_the_cluster_evenly_then_reports_it_full() {
    let names: Vec<String> = (0..4).map(|i| format!("n{i}")).collect();
    let nodes: Vec<Node> = names.iter().map(|n| node(n).allocatable("cpu", "1").build()).collect();
    let mut snap = Snapshot::new(&nodes, &[], &[], &[]);
    for i in 0..8 {
        let p = pod(&format!("p{i}")).request("cpu", "500m").build();
        let chosen = schedule(&p, &snap).unwrap();
        snap.assume(&p, &chosen);
    }
    for name in &names {
        assert_eq!(snap.node(name).unwrap().pod_count, 2, "least allocated spreads before it packs");
    }
    let err = schedule(&pod("late").request("cpu", "500m").build(), &snap).unwrap_err();
    assert_eq!(err.to_string(), "0/4 nodes are available: 4 Insufficient cpu.");
    snap.forget("uid-p0");
    assert!(schedule(&pod("late").request("cpu", "500m").build(), &snap).is_ok(), "a failed binding frees room");
}

#[test]
fn tie_break_depends_on_both_parts() {
    let t = |pod: &str, node: &str| tie_break(fnv1a(pod.bytes()), fnv1a(node.bytes()));
    assert_ne!(t("a", "n1"), t("a", "n2"));
    assert_ne!(t("a", "n1"), t("b", "n1"));
    assert_ne!(t("n1", "a"), t("a", "n1"), "the two halves are not interchangeable");
    // FNV-1a of the empty input is its offset basis; of "a" a published constant.
    assert_eq!(fnv1a(std::iter::empty()), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a("a".bytes()), 0xaf63_dc4c_8601_ec8c);
}
