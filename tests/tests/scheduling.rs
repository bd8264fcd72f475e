//! The scheduler runs on the Raft leader of a real `flotilla up` cluster and moves with it:
//! a pod is bound to a fitting node, an unfittable pod shows a FailedScheduling event in
//! `kubectl describe`, and after `kill -9` of the leader replica the new leader binds new
//! pods. (No agent runs here: Node objects are created by hand, pods stay Pending.)

use std::time::Duration;

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{wait_for, UpCluster};

const NODE: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: worker-1
  labels: {kubernetes.io/hostname: worker-1}
status:
  allocatable: {cpu: "2", memory: 4Gi, pods: "110"}
  capacity: {cpu: "2", memory: 4Gi, pods: "110"}
  conditions:
  - {type: Ready, status: "True"}
"#;

fn node_of(k: &Kubectl, pod: &str) -> String {
    let out = k.run(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_bound(k: &Kubectl, pod: &str) {
    wait_for(Duration::from_secs(30), &format!("pod {pod} bound to worker-1"), || {
        (node_of(k, pod) == "worker-1").then_some(())
    });
}

#[test]
fn the_scheduler_binds_pods_on_the_leader_and_follows_it() {
    flotilla_tests::require_etcdctl();
    let c = UpCluster::start(3).expect("cluster starts");
    let l = c.leader();
    let mut k = Kubectl::new(&c.replicas[(l + 1) % 3].api_url);
    k.ok_with(&["apply", "-f", "-"], Some(NODE));
    k.ok(&["run", "small", "--image=busybox"]);
    wait_bound(&k, "small");
    let big = r#"{"spec":{"containers":[{"name":"big","image":"busybox","resources":{"requests":{"cpu":"4"}}}]}}"#;
    k.ok(&["run", "big", "--image=busybox", &format!("--overrides={big}")]);
    wait_for(Duration::from_secs(30), "a FailedScheduling event for the big pod", || {
        let d = k.ok(&["describe", "pod", "big"]);
        d.contains("0/1 nodes are available: 1 Insufficient cpu.").then_some(())
    });
    assert_eq!(node_of(&k, "big"), "");

    c.kill9(l);
    let survivor = (l + 2) % 3;
    k.set_server(&c.replicas[survivor].api_url);
    wait_for(Duration::from_secs(30), "the survivors to serve", || {
        k.run(&["get", "--raw", "/readyz"], None).status.success().then_some(())
    });
    k.ok(&["run", "after", "--image=busybox"]);
    wait_bound(&k, "after");
    let holder =
        k.ok(&["get", "lease", "-n", "kube-system", "flotilla-controllers", "-o", "jsonpath={.spec.holderIdentity}"]);
    assert_ne!(holder, c.replicas[l].name, "the controllers lease moved off the dead leader");
}
