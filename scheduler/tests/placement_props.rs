//! Property tests of the placement core against a plain model of the filters.
//!
//! Random small clusters (labels, taints, readiness, cordons, capacity, existing pods with
//! host ports and anti-affinity) receive a sequence of random pods; after each decision the
//! loop's `assume` is applied. Checked for every pod:
//! - a chosen node passes every filter, as an independent, deliberately naive model computes
//!   them from the raw object lists (not from the snapshot's running totals);
//! - node by node, the pod pinned there with `spec.nodeName` fits exactly when the model
//!   says it does, so the filters are neither too loose nor too strict;
//! - the scheduler fails only when the model finds no feasible node, and then every node
//!   contributes at least one reason to the message;
//! - the decision is deterministic: a snapshot rebuilt from scratch, from the lists in
//!   reverse order, gives the same node — which also shows that `assume` kept the cached
//!   totals equal to a fresh count.

use flotilla_scheduler::{schedule, FitError, Snapshot};
use k8s_openapi::api::core::v1::{Node, Pod};
use proptest::prelude::*;
use serde_json::{json, Value};

const TAINTS: [(&str, &str); 3] = [("dedicated", "NoSchedule"), ("evict", "NoExecute"), ("soft", "PreferNoSchedule")];
/// Tolerations a pod may carry, all `Exists`: (key, effect), empty = any.
const TOLERATIONS: [(&str, &str); 5] = [
    ("dedicated", ""),
    ("evict", "NoExecute"),
    ("node.kubernetes.io/not-ready", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ("", ""),
];
const APPS: [&str; 2] = ["web", "db"];
const ZONES: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone)]
struct NodeSpec {
    zone: Option<usize>,
    taints: Vec<bool>,
    ready: &'static str,
    cordoned: bool,
    milli_cpu: i64,
    memory_mi: i64,
    pods: i64,
}

#[derive(Debug, Clone)]
struct PodSpec {
    milli_cpu: i64,
    memory_mi: i64,
    host_port: Option<i32>,
    app: usize,
    avoid_app: Option<usize>,
    owner: Option<usize>,
    zone_selector: Option<usize>,
    zone_not_in: Option<usize>,
    tolerations: Vec<bool>,
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    let ready = prop_oneof![6 => Just("True"), 1 => Just("False"), 1 => Just("Unknown")];
    (
        proptest::option::of(0..2usize),
        proptest::collection::vec(proptest::bool::weighted(0.2), 3),
        ready,
        proptest::bool::weighted(0.15),
        0..4000i64,
        0..4096i64,
        0..6i64,
    )
        .prop_map(|(zone, taints, ready, cordoned, milli_cpu, memory_mi, pods)| NodeSpec {
            zone,
            taints,
            ready,
            cordoned,
            milli_cpu,
            memory_mi,
            pods,
        })
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        (0..1500i64, 0..1500i64, proptest::option::of(prop_oneof![Just(80), Just(443)])),
        (0..2usize, proptest::option::weighted(0.3, 0..2usize), proptest::option::of(0..2usize)),
        (proptest::option::weighted(0.2, 0..2usize), proptest::option::weighted(0.2, 0..2usize)),
        proptest::collection::vec(proptest::bool::weighted(0.2), 5),
    )
        .prop_map(
            |(
                (milli_cpu, memory_mi, host_port),
                (app, avoid_app, owner),
                (zone_selector, zone_not_in),
                tolerations,
            )| {
                PodSpec {
                    milli_cpu,
                    memory_mi,
                    host_port,
                    app,
                    avoid_app,
                    owner,
                    zone_selector,
                    zone_not_in,
                    tolerations,
                }
            },
        )
}

fn node_json(i: usize, n: &NodeSpec) -> Node {
    let name = format!("n{i}");
    let mut labels = json!({ "kubernetes.io/hostname": name });
    if let Some(z) = n.zone {
        labels["zone"] = json!(ZONES[z]);
    }
    let taints: Vec<Value> = TAINTS
        .iter()
        .zip(&n.taints)
        .filter(|(_, on)| **on)
        .map(|((key, effect), _)| json!({ "key": key, "value": "v", "effect": effect }))
        .collect();
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "spec": { "taints": taints, "unschedulable": n.cordoned },
        "status": {
            "allocatable": { "cpu": format!("{}m", n.milli_cpu), "memory": format!("{}Mi", n.memory_mi), "pods": n.pods.to_string() },
            "conditions": [{ "type": "Ready", "status": n.ready }],
        },
    }))
    .expect("valid node")
}

fn pod_json(name: &str, p: &PodSpec, node: Option<&str>) -> Pod {
    let mut container = json!({ "name": "c", "resources": { "requests": {} } });
    if p.milli_cpu > 0 {
        container["resources"]["requests"]["cpu"] = json!(format!("{}m", p.milli_cpu));
    }
    if p.memory_mi > 0 {
        container["resources"]["requests"]["memory"] = json!(format!("{}Mi", p.memory_mi));
    }
    if let Some(port) = p.host_port {
        container["ports"] = json!([{ "containerPort": port, "hostPort": port }]);
    }
    let tolerations: Vec<Value> = TOLERATIONS
        .iter()
        .zip(&p.tolerations)
        .filter(|(_, on)| **on)
        .map(|((key, effect), _)| json!({ "key": key, "operator": "Exists", "effect": effect }))
        .collect();
    let mut spec = json!({ "containers": [container], "tolerations": tolerations, "affinity": {} });
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    if let Some(z) = p.zone_selector {
        spec["nodeSelector"] = json!({ "zone": ZONES[z] });
    }
    if let Some(z) = p.zone_not_in {
        let term = json!({ "matchExpressions": [{ "key": "zone", "operator": "NotIn", "values": [ZONES[z]] }] });
        spec["affinity"]["nodeAffinity"] =
            json!({ "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [term] } });
    }
    if let Some(a) = p.avoid_app {
        let term =
            json!({ "labelSelector": { "matchLabels": { "app": APPS[a] } }, "topologyKey": "kubernetes.io/hostname" });
        spec["affinity"]["podAntiAffinity"] = json!({ "requiredDuringSchedulingIgnoredDuringExecution": [term] });
    }
    let owners: Vec<Value> = p.owner.iter().map(|o| json!({ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("rs{o}"), "uid": format!("rs-uid-{o}"), "controller": true })).collect();
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": { "app": APPS[p.app] }, "ownerReferences": owners },
        "spec": spec,
    }))
    .expect("valid pod")
}

/// The model: does `pod` fit on node `i`, given the pods `placed` (spec, node index)?
fn model_fits(pod: &PodSpec, i: usize, node: &NodeSpec, placed: &[(PodSpec, usize)]) -> bool {
    let tolerates = |key: &str, effect: &str| {
        TOLERATIONS
            .iter()
            .zip(&pod.tolerations)
            .any(|((k, e), on)| *on && (k.is_empty() || *k == key) && (e.is_empty() || *e == effect))
    };
    if node.cordoned && !tolerates("node.kubernetes.io/unschedulable", "NoSchedule") {
        return false;
    }
    let blocking_taint = TAINTS
        .iter()
        .zip(&node.taints)
        .any(|((key, effect), on)| *on && *effect != "PreferNoSchedule" && !tolerates(key, effect));
    let readiness_taint = match node.ready {
        "False" => Some("node.kubernetes.io/not-ready"),
        "Unknown" => Some("node.kubernetes.io/unreachable"),
        _ => None,
    };
    if blocking_taint || readiness_taint.is_some_and(|k| !tolerates(k, "NoSchedule")) {
        return false;
    }
    if pod.zone_selector.is_some_and(|z| node.zone != Some(z)) || pod.zone_not_in.is_some_and(|z| node.zone == Some(z))
    {
        return false;
    }
    let here: Vec<&PodSpec> = placed.iter().filter(|(_, n)| *n == i).map(|(p, _)| p).collect();
    if pod.host_port.is_some() && here.iter().any(|p| p.host_port == pod.host_port) {
        return false;
    }
    let used_cpu: i64 = here.iter().map(|p| p.milli_cpu).sum();
    let used_mem: i64 = here.iter().map(|p| p.memory_mi).sum();
    if here.len() as i64 + 1 > node.pods
        || (pod.milli_cpu > 0 && used_cpu + pod.milli_cpu > node.milli_cpu)
        || (pod.memory_mi > 0 && used_mem + pod.memory_mi > node.memory_mi)
    {
        return false;
    }
    let repelled = pod.avoid_app.is_some_and(|a| here.iter().any(|p| p.app == a));
    let refused = here.iter().any(|p| p.avoid_app == Some(pod.app));
    !repelled && !refused
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn chosen_nodes_pass_every_filter_and_decisions_are_deterministic(
        nodes in proptest::collection::vec(node_spec(), 1..6),
        existing in proptest::collection::vec((pod_spec(), 0..6usize), 0..8),
        incoming in proptest::collection::vec(pod_spec(), 1..8),
    ) {
        let node_objs: Vec<Node> = nodes.iter().enumerate().map(|(i, n)| node_json(i, n)).collect();
        // Existing pods land wherever generated, even overcommitted: the model counts them too.
        let mut placed: Vec<(PodSpec, usize)> = existing.into_iter().map(|(p, n)| (p, n % nodes.len())).collect();
        let mut pod_objs: Vec<Pod> = placed.iter().enumerate().map(|(k, (p, n))| pod_json(&format!("e{k}"), p, Some(&format!("n{n}")))).collect();
        let mut snap = Snapshot::new(&node_objs, &pod_objs, &[], &[]);

        for (k, spec) in incoming.iter().enumerate() {
            let pod = pod_json(&format!("p{k}"), spec, None);
            let feasible: Vec<usize> = (0..nodes.len()).filter(|&i| model_fits(spec, i, &nodes[i], &placed)).collect();
            let decision = schedule(&pod, &snap);

            // Per node, exactly: the same pod pinned to node i (`spec.nodeName`, which only
            // adds the NodeName filter) fits iff the model says node i is feasible.
            for i in 0..nodes.len() {
                let name = format!("n{i}");
                let mut pinned = pod.clone();
                pinned.spec.as_mut().expect("built with a spec").node_name = Some(name.clone());
                let fits = schedule(&pinned, &snap).is_ok();
                prop_assert_eq!(fits, feasible.contains(&i), "node {}: scheduler vs model", name);
            }

            let (rev_nodes, rev_pods): (Vec<Node>, Vec<Pod>) = (node_objs.iter().rev().cloned().collect(), pod_objs.iter().rev().cloned().collect());
            let rebuilt = Snapshot::new(&rev_nodes, &rev_pods, &[], &[]);
            prop_assert_eq!(&schedule(&pod, &rebuilt), &decision, "a rebuilt snapshot decides the same");

            match decision {
                Ok(name) => {
                    let i: usize = name[1..].parse().expect("node names are n<i>");
                    prop_assert!(feasible.contains(&i), "chose {} but the model finds only {:?}", name, feasible);
                    snap.assume(&pod, &name);
                    pod_objs.push(pod_json(&format!("p{k}"), spec, Some(&name)));
                    placed.push((spec.clone(), i));
                }
                Err(FitError::Unschedulable { num_all_nodes, reasons }) => {
                    prop_assert!(feasible.is_empty(), "refused but the model finds {:?}: {:?}", feasible, reasons);
                    prop_assert_eq!(num_all_nodes, nodes.len());
                    prop_assert!(reasons.values().sum::<usize>() >= nodes.len(), "every node gives a reason");
                }
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }
    }
}
