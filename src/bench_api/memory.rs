//! Memory: resident set size of each replica process before and after creating many
//! realistic pods.
//!
//! RSS is `VmRSS` from `/proc/<pid>/status` ([`super::procfs`]), pids from `cluster.json`,
//! so the bench must run on the cluster's machine. "After" is read once every replica has answered a list of the
//! pods namespace (lists are linearizable, so each replica has applied every create by then).

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde::Serialize;

use super::client::Conn;
use super::objects::{path, realistic_pod};
use super::ops::{create_many, Fixture, OpReport};
use super::procfs::vm_rss_kib;
use crate::up::ReplicaInfo;

/// One replica's RSS at the three points of the run; one table row and JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub measure: &'static str,
    pub replica: String,
    pub pid: u32,
    pub pods: usize,
    /// Size of one pod as sent (before server-side defaulting).
    pub pod_bytes: usize,
    /// When the bench started, before any other measurement.
    pub rss_start_kib: u64,
    /// Just before the pods were created.
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// (after − before) / pods.
    pub bytes_per_pod: i64,
}

/// RSS of every replica, in `replicas` order.
pub fn snapshot(replicas: &[ReplicaInfo]) -> anyhow::Result<Vec<u64>> {
    replicas.iter().map(|r| vm_rss_kib(r.pid)).collect()
}

/// Creates `pods` realistic pods in `ns` and reports each replica's RSS around it, plus the
/// pod creates' latency.
pub async fn run(
    fx: &Arc<Fixture>,
    replicas: &[ReplicaInfo],
    rss_start: &[u64],
    ns: &str,
    pods: usize,
) -> anyhow::Result<(OpReport, Vec<MemoryReport>)> {
    let before = snapshot(replicas)?;
    let creates = create_many(fx, ns, "pods", pods, |i| realistic_pod(&format!("orders-{i:06}"))).await?;
    for r in replicas {
        let mut conn = Conn::connect(&r.api_url).await?;
        conn.call(Method::GET, &format!("{}?limit=1", path(ns, "pods", None)), None, StatusCode::OK).await?;
    }
    let after = snapshot(replicas)?;
    let pod_bytes = serde_json::to_vec(&realistic_pod("orders-000000"))?.len();
    let reports = replicas
        .iter()
        .enumerate()
        .map(|(i, r)| MemoryReport {
            measure: "memory",
            replica: r.name.clone(),
            pid: r.pid,
            pods,
            pod_bytes,
            rss_start_kib: rss_start[i],
            rss_before_kib: before[i],
            rss_after_kib: after[i],
            bytes_per_pod: (after[i] as i64 - before[i] as i64) * 1024 / pods.max(1) as i64,
        })
        .collect();
    Ok((creates, reports))
}
