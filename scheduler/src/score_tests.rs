//! Each score's arithmetic against hand-computed values, and each score deciding a
//! placement on its own when every other score is equal.

use super::*;
use crate::fixtures::{expr, node, pod};
use crate::schedule;
use crate::snapshot::Snapshot;

fn requests(p: &k8s_openapi::api::core::v1::Pod) -> PodRequests {
    PodRequests::of(p.spec.as_ref().unwrap())
}

#[test]
fn least_allocated_is_the_mean_free_fraction_after_placement() {
    let snap = Snapshot::new(
        &[node("n").build()],
        &[pod("a").on("n").request("cpu", "1").request("memory", "2Gi").build()],
        &[],
        &[],
    );
    let n = snap.node("n").unwrap();
    // cpu: (4000 - 1000 - 1000) * 100 / 4000 = 50; memory: (8Gi - 2Gi - 2Gi) / 8Gi = 50.
    assert_eq!(least_allocated(n, &requests(&pod("p").request("cpu", "1").request("memory", "2Gi").build())), 50);
    // Without requests the pod counts as 100m / 200Mi: cpu 72 (2900/4000), memory 72.
    assert_eq!(least_allocated(n, &requests(&pod("p").build())), 72);
    // Asking for more than the node has scores 0 for that resource: (0 + 75) / 2.
    assert_eq!(least_allocated(n, &requests(&pod("p").request("cpu", "8").request("memory", "0").build())), 37);
    let empty = Snapshot::new(&[node("e").allocatable("cpu", "0").allocatable("memory", "0").build()], &[], &[], &[]);
    assert_eq!(least_allocated(empty.node("e").unwrap(), &requests(&pod("p").build())), 0);
}

#[test]
fn balanced_allocation_rewards_equal_fractions() {
    let snap = Snapshot::new(&[node("n").build()], &[], &[], &[]);
    let n = snap.node("n").unwrap();
    // cpu 2/4 = 0.5, memory 2Gi/8Gi = 0.25: 100 * (1 - 0.125) = 87.
    assert_eq!(balanced_allocation(n, &requests(&pod("p").request("cpu", "2").request("memory", "2Gi").build())), 87);
    assert_eq!(balanced_allocation(n, &requests(&pod("p").request("cpu", "2").request("memory", "4Gi").build())), 100);
    // Fractions are capped at 1: cpu 8/4 -> 1, memory 0: 100 * (1 - 0.5) = 50.
    assert_eq!(balanced_allocation(n, &requests(&pod("p").request("cpu", "8").build())), 50);
}

#[test]
fn normalize_and_spread_follow_upstream_integer_arithmetic() {
    let mut s = vec![0, 3, 6];
    normalize(&mut s, false);
    assert_eq!(s, [0, 50, 100]);
    let mut s = vec![0, 1, 3];
    normalize(&mut s, true);
    assert_eq!(s, [100, 67, 0]);
    let mut s = vec![0, 0];
    normalize(&mut s, true);
    assert_eq!(s, [100, 100]);
    let mut s = vec![0, 0];
    normalize(&mut s, false);
    assert_eq!(s, [0, 0]);
    let mut s = vec![0, 1, 4];
    spread(&mut s);
    assert_eq!(s, [100, 75, 0]);
    let mut s = vec![0, 0];
    spread(&mut s);
    assert_eq!(s, [100, 100]);
}

#[test]
fn emptier_node_wins_on_least_allocated() {
    let busy = pod("busy").on("a").request("cpu", "2").request("memory", "4Gi").build();
    let snap = Snapshot::new(&[node("a").build(), node("b").build()], &[busy], &[], &[]);
    assert_eq!(schedule(&pod("p").request("cpu", "1").request("memory", "2Gi").build(), &snap).unwrap(), "b");
}

#[test]
fn balanced_node_wins_when_free_space_is_equal() {
    // Both nodes are half free on average after placement; "b" is half used on each resource.
    let cpu_heavy = pod("x").on("a").request("cpu", "3").request("memory", "2Gi").build();
    let even = pod("y").on("b").request("cpu", "2").request("memory", "4Gi").build();
    let snap = Snapshot::new(&[node("a").build(), node("b").build()], &[cpu_heavy, even], &[], &[]);
    let p = pod("p").request("cpu", "0").request("memory", "0").build();
    let (a, b) = (snap.node("a").unwrap(), snap.node("b").unwrap());
    assert_eq!(least_allocated(a, &requests(&p)), least_allocated(b, &requests(&p)));
    assert!(balanced_allocation(b, &requests(&p)) > balanced_allocation(a, &requests(&p)));
    assert_eq!(schedule(&p, &snap).unwrap(), "b");
}

#[test]
fn preferred_node_affinity_weights_decide() {
    let nodes = [
        node("a").label("disk", "hdd").build(),
        node("b").label("disk", "ssd").label("zone", "z1").build(),
        node("c").label("zone", "z1").build(),
    ];
    let snap = Snapshot::new(&nodes, &[], &[], &[]);
    let p = pod("p")
        .preferred_term(10, vec![expr("disk", "In", &["ssd"])])
        .preferred_term(5, vec![expr("zone", "Exists", &[])])
        .build();
    assert_eq!(schedule(&p, &snap).unwrap(), "b");
    let p = pod("p")
        .preferred_term(1, vec![expr("disk", "In", &["ssd"])])
        .preferred_term(50, vec![expr("disk", "In", &["hdd"])])
        .build();
    assert_eq!(schedule(&p, &snap).unwrap(), "a");
}

#[test]
fn prefer_no_schedule_taints_are_avoided_unless_tolerated() {
    let nodes = [node("a").taint("spot", "true", "PreferNoSchedule").build(), node("b").build()];
    let snap = Snapshot::new(&nodes, &[], &[], &[]);
    for i in 0..20 {
        assert_eq!(schedule(&pod(&format!("p{i}")).build(), &snap).unwrap(), "b");
    }
    // Tolerating it makes the nodes equal again; the tie-break then picks both over many pods.
    let picks: std::collections::BTreeSet<String> = (0..40)
        .map(|i| schedule(&pod(&format!("p{i}")).toleration("spot", "Exists", "", "").build(), &snap).unwrap())
        .collect();
    assert_eq!(picks.len(), 2);
}

#[test]
fn pods_of_one_owner_spread_across_nodes() {
    let other = pod("o").on("b").owner("other").request("cpu", "1").request("memory", "2Gi").build();
    let placed = [pod("r0").on("a").owner("rs").build(), pod("r1").on("a").owner("rs").build(), other];
    let snap = Snapshot::new(&[node("a").build(), node("b").build()], &placed, &[], &[]);
    // "b" is busier (least allocated prefers "a" by 20), but holds no pod of this owner.
    assert_eq!(schedule(&pod("r2").owner("rs").build(), &snap).unwrap(), "b");
}
