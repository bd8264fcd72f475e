//! Each filter on hand-built nodes: what passes, what fails, and the reason text it gives.

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeSpec, Pod, VolumeNodeAffinity,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

use super::*;
use crate::fixtures::{expr, labels, node, pod, pod_term, HOSTNAME};
use flotilla_apiserver::selector::toleration::NO_EXECUTE;

/// The reasons `pod` gets on `node` (empty: it fits).
fn reasons(pod: &Pod, snap: &Snapshot, node: &str) -> Vec<String> {
    let query = PodQuery::new(pod, snap).expect("no prefilter failure");
    let mut out = Vec::new();
    let slot = snap.nodes().find(|(_, n)| n.name == node).expect("node in snapshot").0;
    let fits = query.filter(slot, snap.node(node).expect("node in snapshot"), &mut out);
    assert_eq!(fits, out.is_empty());
    out.iter().map(|r| r.to_string()).collect()
}

fn snap(nodes: Vec<Node>, pods: Vec<Pod>) -> Snapshot {
    Snapshot::new(&nodes, &pods, &[], &[])
}

#[test]
fn cordoned_nodes_fail_unless_the_pod_tolerates_unschedulable() {
    let s = snap(vec![node("n1").unschedulable().taint("dedicated", "x", NO_SCHEDULE).build()], vec![]);
    // Filter order: NodeUnschedulable comes before TaintToleration, so only it is reported.
    assert_eq!(reasons(&pod("p").build(), &s, "n1"), ["node(s) were unschedulable"]);
    let tolerant = pod("p").toleration(TAINT_NODE_UNSCHEDULABLE, "Exists", "", NO_SCHEDULE).build();
    assert_eq!(reasons(&tolerant, &s, "n1"), ["node(s) had untolerated taint {dedicated: x}"]);
    let everything = pod("p").toleration("", "Exists", "", "").build();
    assert!(reasons(&everything, &s, "n1").is_empty());
}

#[test]
fn not_ready_nodes_fail_with_the_implied_taint() {
    let s = snap(vec![node("down").ready("False").build(), node("lost").ready("Unknown").build()], vec![]);
    let p = pod("p").build();
    assert_eq!(reasons(&p, &s, "down"), ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]);
    assert_eq!(reasons(&p, &s, "lost"), ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]);
    let daemon = pod("d").toleration("node.kubernetes.io/not-ready", "Exists", "", NO_SCHEDULE).build();
    assert!(reasons(&daemon, &s, "down").is_empty());
}

#[test]
fn taints_no_schedule_and_no_execute_filter_prefer_no_schedule_does_not() {
    let s = snap(
        vec![
            node("ns").taint("gpu", "true", NO_SCHEDULE).build(),
            node("ne").taint("gpu", "true", NO_EXECUTE).build(),
            node("soft").taint("gpu", "true", "PreferNoSchedule").build(),
        ],
        vec![],
    );
    let p = pod("p").build();
    assert_eq!(reasons(&p, &s, "ns"), ["node(s) had untolerated taint {gpu: true}"]);
    assert_eq!(reasons(&p, &s, "ne"), ["node(s) had untolerated taint {gpu: true}"]);
    assert!(reasons(&p, &s, "soft").is_empty());
    let tolerant = pod("p").toleration("gpu", "Equal", "true", "").build();
    assert!(reasons(&tolerant, &s, "ns").is_empty() && reasons(&tolerant, &s, "ne").is_empty());
    let wrong_value = pod("p").toleration("gpu", "Equal", "false", "").build();
    assert_eq!(reasons(&wrong_value, &s, "ns").len(), 1);
}

#[test]
fn a_pod_naming_a_node_fits_only_that_node() {
    let s = snap(vec![node("n1").build(), node("n2").build()], vec![]);
    let p = pod("p").on("n1").build();
    assert!(reasons(&p, &s, "n1").is_empty());
    assert_eq!(reasons(&p, &s, "n2"), ["node(s) didn't match the requested node name"]);
}

#[test]
fn node_selector_needs_every_label() {
    let s = snap(vec![node("n1").label("disk", "ssd").label("zone", "a").build(), node("n2").build()], vec![]);
    let p = pod("p").node_selector("disk", "ssd").node_selector("zone", "a").build();
    assert!(reasons(&p, &s, "n1").is_empty());
    assert_eq!(reasons(&p, &s, "n2"), ["node(s) didn't match Pod's node affinity/selector"]);
    let p = pod("p").node_selector("disk", "ssd").node_selector("zone", "b").build();
    assert_eq!(reasons(&p, &s, "n1"), ["node(s) didn't match Pod's node affinity/selector"]);
}

#[test]
fn required_node_affinity_terms_are_ored_and_anded_with_the_selector() {
    let s = snap(
        vec![node("a").label("zone", "a").build(), node("b").label("zone", "b").build(), node("c").build()],
        vec![],
    );
    let p = pod("p")
        .required_term(vec![expr("zone", "In", &["a"])])
        .required_term(vec![expr("zone", "In", &["b"])])
        .build();
    assert!(reasons(&p, &s, "a").is_empty() && reasons(&p, &s, "b").is_empty());
    assert_eq!(reasons(&p, &s, "c"), ["node(s) didn't match Pod's node affinity/selector"]);
    let p = pod("p").required_term(vec![expr("zone", "NotIn", &["a"])]).node_selector("zone", "b").build();
    assert!(reasons(&p, &s, "b").is_empty());
    assert_eq!(reasons(&p, &s, "a").len(), 1);
    assert_eq!(reasons(&p, &s, "c").len(), 1, "NotIn passes on c but the selector does not");
}

#[test]
fn host_ports_conflict_by_protocol_address_and_port() {
    let existing = pod("web").on("n1").host_port(80, Some("10.0.0.1"), None).build();
    let s = snap(vec![node("n1").build(), node("n2").build()], vec![existing]);
    let msg = "node(s) didn't have free ports for the requested pod ports";
    assert_eq!(reasons(&pod("p").host_port(80, None, None).build(), &s, "n1"), [msg]);
    assert_eq!(reasons(&pod("p").host_port(80, Some("10.0.0.1"), Some("TCP")).build(), &s, "n1"), [msg]);
    assert!(reasons(&pod("p").host_port(80, Some("10.0.0.2"), None).build(), &s, "n1").is_empty());
    assert!(reasons(&pod("p").host_port(80, None, Some("UDP")).build(), &s, "n1").is_empty());
    assert!(reasons(&pod("p").host_port(80, None, None).build(), &s, "n2").is_empty());
}

#[test]
fn resources_count_what_is_already_placed_and_report_every_shortfall() {
    let n = node("n1").allocatable("cpu", "2").allocatable("memory", "1Gi").allocatable("pods", "2");
    let n = n.allocatable("example.com/fpga", "1");
    let existing = pod("busy").on("n1").request("cpu", "1500m").request("memory", "512Mi").build();
    let s = snap(vec![n.build()], vec![existing]);
    assert!(reasons(&pod("p").request("cpu", "500m").request("memory", "512Mi").build(), &s, "n1").is_empty());
    assert_eq!(reasons(&pod("p").request("cpu", "501m").build(), &s, "n1"), ["Insufficient cpu"]);
    assert_eq!(reasons(&pod("p").request("memory", "513Mi").build(), &s, "n1"), ["Insufficient memory"]);
    let both = pod("p").request("cpu", "1").request("memory", "1Gi").request("example.com/fpga", "2").build();
    assert_eq!(reasons(&both, &s, "n1"), ["Insufficient cpu", "Insufficient memory", "Insufficient example.com/fpga"]);
    let storage = pod("p").request("ephemeral-storage", "1Gi").build();
    assert_eq!(reasons(&storage, &s, "n1"), ["Insufficient ephemeral-storage"], "node reports no ephemeral storage");
}

#[test]
fn pod_count_is_checked_even_for_pods_without_requests() {
    let s = snap(vec![node("n1").allocatable("pods", "1").build()], vec![pod("a").on("n1").build()]);
    assert_eq!(reasons(&pod("p").build(), &s, "n1"), ["Too many pods"]);
    assert_eq!(reasons(&pod("p").request("cpu", "5").build(), &s, "n1"), ["Too many pods", "Insufficient cpu"]);
}

fn local_pv(name: &str, host: &str) -> PersistentVolume {
    let term = NodeSelectorTerm { match_expressions: Some(vec![expr(HOSTNAME, "In", &[host])]), match_fields: None };
    let mut pv = PersistentVolume::default();
    pv.metadata.name = Some(name.into());
    pv.spec = Some(PersistentVolumeSpec {
        node_affinity: Some(VolumeNodeAffinity { required: Some(NodeSelector { node_selector_terms: vec![term] }) }),
        ..Default::default()
    });
    pv
}

fn claim(name: &str, volume: Option<&str>) -> PersistentVolumeClaim {
    let mut pvc = PersistentVolumeClaim::default();
    pvc.metadata.name = Some(name.into());
    pvc.metadata.namespace = Some("default".into());
    pvc.spec = Some(PersistentVolumeClaimSpec { volume_name: volume.map(str::to_string), ..Default::default() });
    pvc
}

#[test]
fn bound_local_volumes_pin_the_pod_to_their_node() {
    let pvcs = [claim("data", Some("pv-1")), claim("fresh", None), claim("orphan", Some("pv-gone"))];
    let s = Snapshot::new(&[node("n1").build(), node("n2").build()], &[], &[local_pv("pv-1", "n1")], &pvcs);
    let p = pod("p").claim("v", "data").build();
    assert!(reasons(&p, &s, "n1").is_empty());
    assert_eq!(reasons(&p, &s, "n2"), ["node(s) had volume node affinity conflict"]);
    let unbound = pod("p").claim("v", "fresh").build();
    assert!(reasons(&unbound, &s, "n2").is_empty(), "an unbound claim is provisioned where the pod goes");
    let orphan = pod("p").claim("v", "orphan").build();
    assert_eq!(
        reasons(&orphan, &s, "n1"),
        ["node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"]
    );
}

#[test]
fn missing_or_deleted_claims_fail_before_any_node() {
    let mut deleting = claim("old", None);
    deleting.metadata.deletion_timestamp = Some(Time(Default::default()));
    let s = Snapshot::new(&[node("n1").build()], &[], &[], &[deleting]);
    let err = |p: &Pod| PodQuery::new(p, &s).map(|_| ()).unwrap_err();
    assert_eq!(err(&pod("p").claim("v", "nope").build()), "persistentvolumeclaim \"nope\" not found");
    assert_eq!(err(&pod("p").claim("v", "old").build()), "persistentvolumeclaim \"old\" is being deleted");
}

#[test]
fn pod_anti_affinity_keeps_matching_pods_apart_per_topology_domain() {
    let nodes = vec![
        node("n1").label("zone", "a").build(),
        node("n2").label("zone", "a").build(),
        node("n3").label("zone", "b").build(),
    ];
    let s = snap(nodes, vec![pod("web-0").label("app", "web").on("n1").build()]);
    let host = pod("web-1").label("app", "web").anti_affinity(pod_term("app", "web", HOSTNAME)).build();
    assert_eq!(reasons(&host, &s, "n1"), ["node(s) didn't match pod anti-affinity rules"]);
    assert!(reasons(&host, &s, "n2").is_empty());
    let zone = pod("web-1").anti_affinity(pod_term("app", "web", "zone")).build();
    assert_eq!(reasons(&zone, &s, "n2"), ["node(s) didn't match pod anti-affinity rules"]);
    assert!(reasons(&zone, &s, "n3").is_empty());
    // The term's namespace defaults to the pod's own: a pod in another namespace is not named.
    let elsewhere = pod("web-1").namespace("other").anti_affinity(pod_term("app", "web", HOSTNAME)).build();
    assert!(reasons(&elsewhere, &s, "n1").is_empty());
}

#[test]
fn existing_pods_anti_affinity_is_checked_symmetrically() {
    let loner = pod("db-0").label("app", "db").anti_affinity(pod_term("app", "web", HOSTNAME)).on("n1").build();
    let s = snap(vec![node("n1").build(), node("n2").build()], vec![loner]);
    let web = pod("web").label("app", "web").build();
    assert_eq!(reasons(&web, &s, "n1"), ["node(s) didn't satisfy existing pods anti-affinity rules"]);
    assert!(reasons(&web, &s, "n2").is_empty());
    assert!(reasons(&pod("other").label("app", "cache").build(), &s, "n1").is_empty());
}

#[test]
fn namespace_lists_and_selectors_widen_a_term() {
    let s = snap(vec![node("n1").build()], vec![pod("x").namespace("team-a").label("app", "web").on("n1").build()]);
    let mut listed = pod_term("app", "web", HOSTNAME);
    listed.namespaces = Some(vec!["team-a".into()]);
    assert_eq!(reasons(&pod("p").anti_affinity(listed).build(), &s, "n1").len(), 1);
    let mut by_name = pod_term("app", "web", HOSTNAME);
    by_name.namespace_selector = Some(LabelSelector {
        match_labels: Some(labels(&[("kubernetes.io/metadata.name", "team-a")])),
        ..Default::default()
    });
    assert_eq!(reasons(&pod("p").anti_affinity(by_name).build(), &s, "n1").len(), 1);
    let mut all = pod_term("app", "web", HOSTNAME);
    all.namespace_selector = Some(LabelSelector::default());
    assert_eq!(reasons(&pod("p").anti_affinity(all).build(), &s, "n1").len(), 1, "empty selector: all namespaces");
}

#[test]
fn pod_affinity_needs_a_matching_pod_in_the_domain_unless_it_starts_the_group() {
    let nodes = vec![
        node("n1").label("zone", "a").build(),
        node("n2").label("zone", "a").build(),
        node("n3").label("zone", "b").build(),
        node("bare").build(),
    ];
    let s = snap(nodes.clone(), vec![pod("db").label("app", "db").on("n1").build()]);
    let p = pod("p").pod_affinity(pod_term("app", "db", "zone")).build();
    assert!(reasons(&p, &s, "n2").is_empty());
    assert_eq!(reasons(&p, &s, "n3"), ["node(s) didn't match pod affinity rules"]);
    assert_eq!(reasons(&p, &s, "bare"), ["node(s) didn't match pod affinity rules"], "no topology label");
    // Nobody matches yet, and the pod matches its own term: it may go anywhere the key exists.
    let empty = snap(nodes, vec![]);
    let first = pod("cache-0").label("app", "cache").pod_affinity(pod_term("app", "cache", "zone")).build();
    assert!(reasons(&first, &empty, "n3").is_empty());
    assert_eq!(reasons(&first, &empty, "bare").len(), 1);
    let stranger = pod("p").pod_affinity(pod_term("app", "cache", "zone")).build();
    assert_eq!(reasons(&stranger, &empty, "n3").len(), 1, "does not match its own term");
}

#[test]
fn generic_ephemeral_volumes_wait_for_their_claim() {
    use k8s_openapi::api::core::v1::{EphemeralVolumeSource, Volume};
    let mut p = pod("p").build();
    let scratch =
        Volume { name: "scratch".into(), ephemeral: Some(EphemeralVolumeSource::default()), ..Default::default() };
    p.spec.as_mut().unwrap().volumes = Some(vec![scratch]);
    let s = Snapshot::new(&[node("n1").build()], &[], &[], &[]);
    let err = PodQuery::new(&p, &s).map(|_| ()).unwrap_err();
    assert_eq!(err, "waiting for ephemeral volume controller to create the persistentvolumeclaim \"p-scratch\"");
    let s = Snapshot::new(&[node("n1").build()], &[], &[], &[claim("p-scratch", None)]);
    assert!(reasons(&p, &s, "n1").is_empty());
}
