//! Helpers of the end-to-end tests with the docker runtime: a `flotilla up` cluster with two
//! docker agents, a kubectl, and the cleanup of the containers a test leaves.

use std::path::Path;
use std::process::Command;

use crate::kube::Kubectl;
use crate::{ensure_test_image, AgentProc, UpCluster};

/// Removes every container of `namespace` on drop (the agents normally do it; a failed
/// test must not leave containers behind).
pub struct Cleanup(String);

impl Cleanup {
    /// The cleanup of namespace `ns`'s containers.
    pub fn namespace(ns: &str) -> Self {
        Self(ns.to_string())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let filter = format!("label=io.flotilla.pod.namespace={}", self.0);
            let format = "{{.Names}}\t{{.Status}}\t{{.Image}}";
            let listing = Command::new("docker").args(["ps", "-a", "--filter", &filter, "--format", format]).output();
            let listing = listing.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            eprintln!("--- docker containers of namespace {}:\n{listing}", self.0);
        }
        let ids = docker(&["ps", "-aq", "--filter", &format!("label=io.flotilla.pod.namespace={}", self.0)]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).output();
        }
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker runs");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 3-replica cluster with two docker agents, a kubectl in namespace `ns`, and the cleanup.
/// The cleanup comes first so that, bound first, it is dropped last: after the cluster and
/// its agents are stopped, so no agent recreates what it removes.
pub fn cluster(ns: &str) -> (Cleanup, UpCluster, Kubectl) {
    ensure_test_image();
    let c = UpCluster::start_with(3, &["--agents", "2", "--agent-runtime", "docker"]).expect("cluster starts");
    let k = Kubectl::new(&c.replicas[1].api_url);
    k.ok(&["create", "namespace", ns]);
    (Cleanup(ns.to_string()), c, k)
}

/// Wait until the service table of `agent`, killed with SIGKILL, is gone: it cannot
/// remove it itself, the other agents on this host sweep it (their owner records show it
/// dead). A stale table would keep redirecting the cluster DNS of its pods' addresses,
/// which Docker hands to later pods of other tests.
pub fn wait_for_killed_agent_rules_swept(agent: &AgentProc) {
    let table = agent_table(agent);
    let sweep = flotilla_agent::services::sync::SWEEP_INTERVAL;
    crate::wait_for(sweep * 3, &format!("table {table} swept"), || {
        let out = Command::new("nft").args(["list", "tables", "ip"]).output().expect("nft runs");
        (!String::from_utf8_lossy(&out.stdout).lines().any(|l| l == format!("table ip {table}"))).then_some(())
    });
}

/// The nft table of `agent`'s service rules.
pub fn agent_table(agent: &AgentProc) -> String {
    let at = agent.argv.iter().position(|a| a == "--data-dir").expect("the agent's argv names its data dir");
    flotilla_agent::services::runner::agent_table(&agent.name, Path::new(&agent.argv[at + 1]))
        .expect("the data dir exists")
}

/// The objects of service table `table` as `nft list table` prints them (each chain, set
/// and map with its contents), without the node-specific ones (the `local-pods` set, and
/// `dns-redirect`, which names the agent's own DNS port); `None` when the table does not
/// exist. Two agents of one cluster have the same ones.
pub fn service_rules(table: &str) -> Option<std::collections::BTreeSet<String>> {
    let out = Command::new("nft").args(["list", "table", "ip", table]).output().expect("nft runs");
    if !out.status.success() {
        return None;
    }
    let mut objects = flotilla_agent::services::proxy::objects(&String::from_utf8_lossy(&out.stdout));
    objects.retain(|o| !o.starts_with("\tset local-pods {") && !o.starts_with("\tchain dns-redirect {"));
    Some(objects)
}
