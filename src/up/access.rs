//! How clients reach the cluster `flotilla up` runs: a load balancer (`flotilla lb`) in front
//! of every replica's Kubernetes API, and a kubeconfig whose default context goes through it,
//! with one more context per replica for clients that pick a replica themselves.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::ReplicaInfo;

/// The load balancer `up` started (`cluster.json`'s `"lb"`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LbInfo {
    pub name: String,
    pub pid: u32,
    pub argv: Vec<String>,
    /// The URL clients use: `http://127.0.0.1:<port>`.
    pub url: String,
}

/// A balancer on a free loopback port over every replica's API, in the replicas' order.
pub fn plan_lb(replicas: &[ReplicaInfo]) -> anyhow::Result<LbInfo> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let servers: Vec<&str> = replicas.iter().map(|r| r.api_url.as_str()).filter(|u| !u.is_empty()).collect();
    let listen = format!("127.0.0.1:{port}");
    let argv = vec![exe, "lb".into(), "--listen".into(), listen.clone(), "--server".into(), servers.join(",")];
    Ok(LbInfo { name: "lb".into(), pid: 0, argv, url: format!("http://{listen}") })
}

/// The context `kubectl` uses by default (through the balancer).
pub const CONTEXT: &str = "flotilla";

/// The context that talks to `replica` only.
pub fn replica_context(replica: &ReplicaInfo) -> String {
    format!("{CONTEXT}-{}", replica.name)
}

/// A kubeconfig with context [`CONTEXT`] through `lb` (the current one) and one context per
/// replica (see [`replica_context`]).
pub fn write_kubeconfig(path: &Path, lb: &LbInfo, replicas: &[ReplicaInfo]) -> anyhow::Result<()> {
    let mut entries = vec![(CONTEXT.to_string(), lb.url.clone())];
    entries.extend(replicas.iter().filter(|r| !r.api_url.is_empty()).map(|r| (replica_context(r), r.api_url.clone())));
    std::fs::write(path, kubeconfig(&entries)).with_context(|| format!("writing {}", path.display()))
}

/// One cluster and one context per `(name, server)`, the first current; no credentials (the
/// API is plain HTTP without authentication until issue 9).
fn kubeconfig(entries: &[(String, String)]) -> String {
    let mut clusters = String::new();
    let mut contexts = String::new();
    for (name, server) in entries {
        clusters.push_str(&format!("- name: {name}\n  cluster:\n    server: {server}\n"));
        contexts.push_str(&format!("- name: {name}\n  context:\n    cluster: {name}\n    user: {CONTEXT}\n"));
    }
    let current = entries.first().map_or(CONTEXT, |(name, _)| name.as_str());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{contexts}current-context: {current}\n\
         users:\n- name: {CONTEXT}\n  user: {{}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_context_is_the_first_and_every_one_has_its_cluster() {
        let text = kubeconfig(&[
            ("flotilla".into(), "http://127.0.0.1:1".into()),
            ("flotilla-r1".into(), "http://127.0.0.1:2".into()),
        ]);
        assert!(text.contains("current-context: flotilla\n"));
        assert!(text.contains("- name: flotilla-r1\n  cluster:\n    server: http://127.0.0.1:2\n"));
        assert!(text.contains("- name: flotilla-r1\n  context:\n    cluster: flotilla-r1\n    user: flotilla\n"));
        assert_eq!(text.matches("server: ").count(), 2);
    }
}
