//! The objects `bench-scheduler` writes: simulated Nodes, their heartbeat Leases, and small
//! unbound Pods.
//!
//! No node agent exists yet, so a "node" is only a Node object with the status a kubelet
//! would report (Ready, generous allocatable) and a Lease in `kube-node-lease` that the bench
//! renews itself. Every object carries the run label, so one run never touches another's.
//! Capacity is sized so that every pod fits on every node many times over: the bench
//! measures placement and binding, not the scheduler giving up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Label carrying the run id on every object of a run.
pub const RUN_LABEL: &str = "bench.flotilla.dev/run";
/// Namespace of node heartbeat Leases.
pub const NODE_LEASE_NS: &str = "kube-node-lease";
/// What the Lease claims; upstream kubelets use 40 s.
pub const LEASE_DURATION_SECONDS: u64 = 40;

pub const NODES: &str = "/api/v1/nodes";
pub const NAMESPACES: &str = "/api/v1/namespaces";

pub fn node_leases() -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{NODE_LEASE_NS}/leases")
}

pub fn pods(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/pods")
}

pub fn node_name(run: &str, i: usize) -> String {
    format!("bench-{run}-node-{i:05}")
}

pub fn pod_name(i: usize) -> String {
    format!("p-{i}")
}

/// The pod index of a name made by [`pod_name`].
pub fn pod_index(name: &str) -> Option<usize> {
    name.strip_prefix("p-")?.parse().ok()
}

pub fn namespace(name: &str, run: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {RUN_LABEL: run}}})
}

/// A Ready node with room for far more than the bench's pods.
pub fn node(name: &str, run: &str) -> Value {
    let now = micro_time(SystemTime::now());
    let resources = json!({"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "500Gi"});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                RUN_LABEL: run
            }
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "simulated by flotilla bench-scheduler (no agent runs on this node)",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now
            }],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "operatingSystem": "linux", "architecture": "amd64"}
        }
    })
}

/// The node's heartbeat Lease, renewed now.
pub fn lease(node: &str, run: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": NODE_LEASE_NS, "labels": {RUN_LABEL: run}},
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": micro_time(SystemTime::now())
        }
    })
}

/// A one-container pod with small requests and no node.
pub fn pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name(i), "labels": {"app": "bench-scheduler"}},
        "spec": {
            "containers": [{
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}
            }]
        }
    })
}

/// `t` as a Kubernetes MicroTime (`2006-01-02T15:04:05.000000Z`), UTC.
pub fn micro_time(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:06}Z", since.subsec_micros())
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01: days are counted
/// in 400-year eras of 146,097 days whose years start on March 1, so the leap day is the
/// last day of its year and needs no special case.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_times() {
        let at = |s: u64, us: u64| UNIX_EPOCH + Duration::from_secs(s) + Duration::from_micros(us);
        assert_eq!(micro_time(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(micro_time(at(951_782_400, 7)), "2000-02-29T00:00:00.000007Z");
        assert_eq!(micro_time(at(1_798_761_599, 999_999)), "2026-12-31T23:59:59.999999Z");
        assert_eq!(micro_time(at(4_107_542_400, 0)), "2100-03-01T00:00:00.000000Z");
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(pod_index(&pod_name(4711)), Some(4711));
        assert_eq!(pod_index("q-1"), None);
        assert_eq!(node_name("ab", 7), "bench-ab-node-00007");
    }
}
