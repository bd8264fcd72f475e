//! An agent given a single replica's URL (`flotilla agent --server <one>`) learns the others
//! from the `kubernetes` Service's Endpoints, and keeps its node alive and runs new pods
//! after that replica is killed with SIGKILL.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{flotilla_bin, wait_for, UpCluster};

const NODE: &str = "solo";

/// Kills the agent process when the test ends, however it ends.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n\
         spec: {{nodeName: {NODE}, containers: [{{name: app, image: busybox}}]}}\n"
    )
}

fn phase(k: &Kubectl, pod: &str) -> String {
    String::from_utf8_lossy(&k.run(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"], None).stdout).into_owned()
}

#[test]
fn an_agent_given_one_replica_carries_on_after_that_replica_dies() {
    let c = UpCluster::start(3).expect("cluster starts");
    let k = Kubectl::with_kubeconfig(&c.dir.path().join("kubeconfig"));
    // The agent's first look finds every replica only once each one is listed.
    wait_for(Duration::from_secs(30), "3 API addresses in the kubernetes endpoints", || {
        let ports = k.ok(&["get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[*].ports[*].port}"]);
        (ports.split_whitespace().count() == 3).then_some(())
    });
    let leader = c.leader();
    let data = tempfile::tempdir().expect("tempdir");
    let log = std::fs::File::create(c.dir.path().join("solo.log")).expect("agent log");
    let child = Command::new(flotilla_bin())
        .args(["agent", "--runtime", "fake", "--node-name", NODE, "--port", "0", "--address", "127.0.0.1"])
        .args(["--node-ip", "127.0.0.1", "--server", &c.replicas[leader].api_url, "--insecure-plaintext"])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start flotilla agent");
    let _agent = Agent(child);
    k.ok_with(&["apply", "-f", "-"], Some(&pod("before")));
    wait_for(Duration::from_secs(30), "pod before Running", || (phase(&k, "before") == "Running").then_some(()));

    c.kill9(leader); // the one replica the agent was given
    let renew = || k.run(&["get", "lease", "-n", "kube-node-lease", NODE, "-o", "jsonpath={.spec.renewTime}"], None);
    let killed_at = wait_for(Duration::from_secs(30), "the node lease after the kill", || {
        let out = renew();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    // Through the balancer, once the survivors have elected a leader.
    wait_for(Duration::from_secs(30), "pod after created", || {
        k.run(&["apply", "-f", "-"], Some(&pod("after"))).status.success().then_some(())
    });
    wait_for(Duration::from_secs(60), "pod after Running", || (phase(&k, "after") == "Running").then_some(()));
    wait_for(Duration::from_secs(60), "the node lease renewed", || {
        let out = renew();
        let now = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && now > killed_at).then_some(())
    });
}
