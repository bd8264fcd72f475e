//! `flotilla agent --runtime fake --simulate 2` against a real `flotilla up` cluster, driven by
//! kubectl: the simulated Nodes register Ready with their Leases, a Deployment's pods are
//! scheduled onto them and reported Running with pod IPs, and deleting the Deployment makes
//! the agent stop the pods and remove the Pod objects.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{flotilla_bin, wait_for, UpCluster};

/// Kills the agent process when the test ends, however it ends.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(c: &UpCluster, data_dir: &std::path::Path) -> Agent {
    let servers: Vec<&str> = c.replicas.iter().map(|r| r.api_url.as_str()).collect();
    let child = Command::new(flotilla_bin())
        .args(["agent", "--runtime", "fake", "--simulate", "2", "--node-name-prefix", "sim-"])
        .args(["--server", &servers.join(","), "--insecure-plaintext"])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start flotilla agent");
    Agent(child)
}

#[test]
fn simulated_nodes_run_a_deployment_and_clean_up_deleted_pods() {
    flotilla_tests::require_etcdctl();
    let c = UpCluster::start(3).expect("cluster starts");
    let data = tempfile::tempdir().expect("tempdir");
    let _agent = start_agent(&c, data.path());
    let k = Kubectl::new(&c.replicas[1].api_url);

    wait_for(Duration::from_secs(30), "two Ready simulated nodes", || {
        let ready =
            k.ok(&["get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}"]);
        (ready.split_whitespace().filter(|s| *s == "True").count() == 2).then_some(())
    });
    let leases = k.ok(&["get", "leases", "-n", "kube-node-lease", "-o", "name"]);
    assert!(leases.contains("lease.coordination.k8s.io/sim-0") && leases.contains("sim-1"), "{leases}");

    k.ok(&["create", "deployment", "web", "--image=busybox", "--replicas=4"]);
    wait_for(Duration::from_secs(30), "4 Running pods with IPs", || {
        let phases = k.ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.phase}"]);
        let ips = k.ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.podIP}"]);
        let running = phases.split_whitespace().filter(|p| *p == "Running").count();
        (running == 4 && ips.split_whitespace().count() == 4).then_some(())
    });
    let ready = k.ok(&["get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}"]);
    assert_eq!(ready, "4", "the Ready condition the agent reports reaches the Deployment");

    k.ok(&["delete", "deployment", "web"]);
    wait_for(Duration::from_secs(60), "the agent to stop and remove the pods", || {
        k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]).trim().is_empty().then_some(())
    });
}
