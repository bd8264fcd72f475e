//! Kill -9 the leader replica while its controllers scale a Deployment from 3 to 30 pods:
//! the new leader's controllers finish the job, and the Deployment converges to exactly 30
//! pods with no pod created for a slot twice.
//!
//! The leader is killed as soon as its first new pod shows, while its controllers are
//! writing. A `kubectl get pods --watch` on a surviving replica records every pod that ever
//! existed. Pods are never deleted in this scenario (no agent runs them, nothing fails), so
//! every pod the ReplicaSet created beyond 30 would be a duplicate create: the deposed
//! leader's uncommitted creates must fail (fencing) and the new leader's caches must see
//! every create the old one committed (linearizable list after election).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{wait_for, UpCluster};

const LABEL: &str = "app=scale";

fn pod_count(k: &Kubectl) -> usize {
    k.ok(&["get", "pods", "-l", LABEL, "-o", "name"]).lines().count()
}

#[test]
fn a_scale_up_survives_kill9_of_the_leader_and_creates_each_pod_once() {
    flotilla_tests::require_etcdctl();
    let mut c = UpCluster::start(3).expect("cluster starts");
    let leader = c.leader();
    let survivor = (leader + 1) % 3;
    let k = Kubectl::new(&c.replicas[survivor].api_url);
    k.ok(&["create", "deployment", "scale", "--image=busybox", "--replicas=3"]);
    wait_for(Duration::from_secs(30), "3 pods", || (pod_count(&k) == 3).then_some(()));

    // Every pod name any watch event shows, from a replica that stays up, and the newest
    // resourceVersion the watch has delivered (events arrive in revision order).
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let newest = Arc::new(AtomicI64::new(0));
    let format = r#"jsonpath={.metadata.name} {.metadata.resourceVersion}{"\n"}"#;
    let mut watch = k.spawn(&["get", "pods", "-l", LABEL, "--watch", "-o", format]);
    let stdout = watch.stdout.take().expect("piped stdout");
    let (recorder, latest) = (seen.clone(), newest.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Some((name, rv)) = line.trim().split_once(' ') else { continue };
            recorder.lock().expect("seen lock").insert(name.to_string());
            latest.fetch_max(rv.parse().unwrap_or(0), Ordering::SeqCst);
        }
    });
    wait_for(Duration::from_secs(10), "the watch to list the 3 pods", || {
        (seen.lock().expect("seen lock").len() == 3).then_some(())
    });

    // Kill the leader as soon as the watch shows its controllers creating pods, so that the
    // new leader has to finish the scale-up.
    k.ok(&["scale", "deployment", "scale", "--replicas=30"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let at_kill = loop {
        let n = seen.lock().expect("seen lock").len();
        if n > 3 {
            break n;
        }
        assert!(Instant::now() < deadline, "the scale-up did not begin");
        std::thread::sleep(Duration::from_millis(1));
    };
    c.kill9(leader);
    eprintln!("killed the leader when the watch had shown {} of the 27 new pods", at_kill - 3);

    wait_for(Duration::from_secs(60), "the deployment to reach 30 pods", || {
        let ready = k.ok(&["get", "deployment", "scale", "-o", "jsonpath={.status.replicas}"]);
        (pod_count(&k) == 30 && ready == "30").then_some(())
    });
    // Flush the watch: write one of the pods and wait until the watch has delivered that
    // write, and with it every pod event committed before it.
    let first = k.ok(&["get", "pods", "-l", LABEL, "-o", "jsonpath={.items[0].metadata.name}"]);
    let flush = k.ok(&["label", "pod", &first, "flushed=yes", "-o", "jsonpath={.metadata.resourceVersion}"]);
    let flush: i64 = flush.trim().parse().expect("a resourceVersion");
    wait_for(Duration::from_secs(30), "the watch to deliver the flush write", || {
        (newest.load(Ordering::SeqCst) >= flush).then_some(())
    });
    assert_eq!(pod_count(&k), 30, "exactly 30 pods");
    let seen = seen.lock().expect("seen lock").clone();
    assert_eq!(seen.len(), 30, "every pod that ever existed: {seen:?}");
    let rs = k.ok(&["get", "rs", "-l", LABEL, "-o", "name"]);
    assert_eq!(rs.lines().count(), 1, "one ReplicaSet: {rs}");
    let _ = watch.kill();
    let _ = watch.wait();

    // The controllers moved off the dead replica, and the dead replica rejoins cleanly.
    let holder =
        k.ok(&["get", "lease", "-n", "kube-system", "flotilla-controllers", "-o", "jsonpath={.spec.holderIdentity}"]);
    assert_ne!(holder, c.replicas[leader].name);
    c.restart(leader).expect("restart with argv");
}
