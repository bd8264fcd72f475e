//! Throughput of the placement core: pods scheduled per second on a simulated cluster.
//!
//! ```text
//! cargo run --release -p flotilla-scheduler --example bench_core -- --nodes 5000 --pods 10000
//! ```
//!
//! Builds `--nodes` nodes (three zones, 30% with SSD labels, 5% GPU nodes tainted
//! `dedicated=gpu:NoSchedule`, 10% spot nodes tainted `PreferNoSchedule`; 4–32 cpu, 110
//! pods each) holding `--existing` pods (default: one per node) from 200 ReplicaSets, then
//! schedules `--pods` pods one after another, calling `assume` after each as the loop does.
//! Two workloads, each on a fresh snapshot:
//! - `basic`: identical pods with requests, one owner (like scheduler_perf SchedulingBasic);
//! - `mixed`: 50 owners; 10% with a nodeSelector, 10% with preferred zone affinity, 5% with
//!   required hostname anti-affinity, 5% tolerating the spot taint, 5% with a host port.
//!
//! `--only basic|mixed` runs one of them. Only the schedule+assume loop is timed; objects are built beforehand. Inputs come from a
//! fixed-seed generator, so runs are comparable.

use std::time::Instant;

use flotilla_scheduler::{schedule, Snapshot};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

/// xorshift64*: a fixed-seed generator, so every run builds the same cluster.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn build_node(i: usize, rng: &mut Rng) -> Node {
    let name = format!("node-{i:05}");
    let zone = ["zone-a", "zone-b", "zone-c"][i % 3];
    let mut labels =
        json!({ "kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone, "kubernetes.io/os": "linux" });
    if rng.chance(30) {
        labels["disk"] = json!("ssd");
    }
    let mut taints = Vec::new();
    let cpu = ["4", "8", "16", "32"][rng.below(4) as usize];
    let mut allocatable = json!({ "cpu": cpu, "memory": "64Gi", "pods": "110" });
    if rng.chance(5) {
        taints.push(json!({ "key": "dedicated", "value": "gpu", "effect": "NoSchedule" }));
        allocatable["nvidia.com/gpu"] = json!("8");
    } else if rng.chance(10) {
        taints.push(json!({ "key": "spot", "value": "true", "effect": "PreferNoSchedule" }));
    }
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "spec": { "taints": taints },
        "status": { "allocatable": allocatable, "capacity": allocatable, "conditions": [{ "type": "Ready", "status": "True" }] },
    }))
    .expect("valid node")
}

/// A pod of ReplicaSet `owner`; `extra` is merged into its spec.
fn build_pod(name: &str, owner: usize, cpu_m: u64, mem_mi: u64, node: Option<&str>, extra: Value) -> Pod {
    let mut spec = json!({
        "schedulerName": "default-scheduler",
        "containers": [{ "name": "app", "image": "registry.k8s.io/pause:3.10",
                         "resources": { "requests": { "cpu": format!("{cpu_m}m"), "memory": format!("{mem_mi}Mi") } } }],
    });
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "labels": { "app": format!("app-{owner}") },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("rs-{owner}"),
                                  "uid": format!("rs-uid-{owner}"), "controller": true }],
        },
        "spec": spec,
    }))
    .expect("valid pod")
}

fn mixed_extra(owner: usize, rng: &mut Rng) -> Value {
    match rng.below(100) {
        0..=9 => json!({ "nodeSelector": { "disk": "ssd" } }),
        10..=19 => json!({ "affinity": { "nodeAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [
            { "weight": 50, "preference": { "matchExpressions": [
                { "key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-b"] } ] } } ] } } }),
        20..=24 => json!({ "affinity": { "podAntiAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": [
            { "labelSelector": { "matchLabels": { "app": format!("app-{owner}") } },
              "topologyKey": "kubernetes.io/hostname" } ] } } }),
        25..=29 => json!({ "tolerations": [{ "key": "spot", "operator": "Exists" }] }),
        30..=34 => json!({ "containers": [{ "name": "app", "ports": [{ "containerPort": 9100, "hostPort": 9100 }],
                                            "resources": { "requests": { "cpu": "50m", "memory": "32Mi" } } }] }),
        _ => json!({}),
    }
}

struct Args {
    nodes: usize,
    pods: usize,
    existing: Option<usize>,
    /// `basic`, `mixed`, or both when absent.
    only: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args { nodes: 5000, pods: 10_000, existing: None, only: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--only" {
            args.only = it.next();
            continue;
        }
        let mut value = || it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--nodes" => args.nodes = value(),
            "--pods" => args.pods = value(),
            "--existing" => args.existing = Some(value()),
            other => panic!("unknown flag {other}; use --nodes N --pods N [--existing N] [--only basic|mixed]"),
        }
    }
    args
}

fn run(workload: &str, nodes: &[Node], existing: &[Pod], pods: &[Pod]) {
    let started = Instant::now();
    let mut snap = Snapshot::new(nodes, existing, &[], &[]);
    let build = started.elapsed();

    let started = Instant::now();
    let mut unschedulable = 0;
    for pod in pods {
        match schedule(pod, &snap) {
            Ok(node) => snap.assume(pod, &node),
            Err(_) => unschedulable += 1,
        }
    }
    let elapsed = started.elapsed();
    let rate = pods.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{workload:>5}: {} nodes, {} existing pods, {} pods in {:.3} s = {rate:.0} pods/s \
         ({:.1} µs/pod; snapshot built in {} ms; {unschedulable} unschedulable)",
        nodes.len(),
        existing.len(),
        pods.len(),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / pods.len() as f64,
        build.as_millis(),
    );
}

fn main() {
    let args = parse_args();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let nodes: Vec<Node> = (0..args.nodes).map(|i| build_node(i, &mut rng)).collect();
    let existing: Vec<Pod> = (0..args.existing.unwrap_or(args.nodes))
        .map(|i| {
            let node = format!("node-{:05}", rng.below(args.nodes as u64));
            build_pod(
                &format!("existing-{i}"),
                rng.below(200) as usize,
                100 + rng.below(900),
                128 + rng.below(1024),
                Some(&node),
                json!({}),
            )
        })
        .collect();

    let wanted = |workload: &str| args.only.as_deref().is_none_or(|o| o == workload);
    if wanted("basic") {
        let basic: Vec<Pod> =
            (0..args.pods).map(|i| build_pod(&format!("basic-{i}"), 1000, 100, 256, None, json!({}))).collect();
        run("basic", &nodes, &existing, &basic);
    }
    if !wanted("mixed") {
        return;
    }

    let mixed: Vec<Pod> = (0..args.pods)
        .map(|i| {
            let owner = 1000 + rng.below(50) as usize;
            let extra = mixed_extra(owner, &mut rng);
            build_pod(&format!("mixed-{i}"), owner, 50 + rng.below(450), 64 + rng.below(448), None, extra)
        })
        .collect();
    run("mixed", &nodes, &existing, &mixed);
}
