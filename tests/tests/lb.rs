//! The load balancer `flotilla up` starts (`flotilla lb`, listed in cluster.json) and the
//! kubeconfig it writes: the default context goes through the balancer, one context per
//! replica reaches that replica. kubectl with the default context keeps working when the
//! replica the balancer forwards to is killed with SIGKILL.

use std::time::Duration;

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{wait_for, UpCluster};

/// The name of the replica that answers `kubectl get --raw /ui/api/cluster` (the dashboard's
/// view of the answering replica), or None if the request failed.
fn answering_replica(k: &Kubectl, context: Option<&str>) -> Option<String> {
    let mut args = vec!["get", "--raw", "/ui/api/cluster"];
    if let Some(c) = context {
        args.extend(["--context", c]);
    }
    let out = k.run(&args, None);
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    view["replica"]["name"].as_str().map(str::to_string)
}

#[test]
fn kubectl_through_the_balancer_outlives_the_replica_it_used() {
    let c = UpCluster::start(3).expect("cluster starts");
    let lb = c.lb.clone().expect("cluster.json lists the load balancer");
    assert!(lb.argv.iter().any(|a| a == "lb"), "{:?}", lb.argv);
    let k = Kubectl::with_kubeconfig(&c.dir.path().join("kubeconfig"));
    let server = k.ok(&["config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"]);
    assert_eq!(server, lb.url, "the current context goes through the balancer");

    // One context per replica, each answered by its own replica.
    for r in &c.replicas {
        let context = format!("flotilla-{}", r.name);
        assert_eq!(answering_replica(&k, Some(&context)).as_deref(), Some(r.name.as_str()), "context {context}");
    }

    k.ok(&["create", "configmap", "before", "--from-literal=a=b"]);
    let used = answering_replica(&k, None).expect("the balancer forwards");
    let i = c.replicas.iter().position(|r| r.name == used).expect("a replica of this cluster");
    c.kill9(i);
    let dead = format!("flotilla-{used}");
    wait_for(Duration::from_secs(10), "the killed replica to refuse", || {
        (!k.run(&["--context", &dead, "get", "namespaces"], None).status.success()).then_some(())
    });

    // The same kubeconfig, unchanged: reads and writes go on through another replica (after
    // an election, if the killed one led).
    wait_for(Duration::from_secs(30), "a write through the balancer", || {
        k.run(&["create", "configmap", "after", "--from-literal=a=b"], None).status.success().then_some(())
    });
    let names = k.ok(&["get", "configmaps", "-o", "name"]);
    assert!(names.contains("configmap/before") && names.contains("configmap/after"), "{names}");
    let now = answering_replica(&k, None).expect("the balancer forwards");
    assert_ne!(now, used, "another replica answers");
}
