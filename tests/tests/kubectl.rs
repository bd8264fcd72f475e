//! The real kubectl 1.32 against a 3-replica `flotilla up`: the everyday workflows from the
//! issue, first through a follower replica, then through a survivor after the leader
//! replica is killed with SIGKILL.
//!
//! kubectl on these machines is a dispatcher that picks the kubectl binary by the server's
//! reported minor version, so `version` showing a 1.32 client proves the real 1.32 binary ran.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{wait_for, UpCluster};

const DEPLOYMENT_V1: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
"#;

fn assert_has(out: &str, want: &str) {
    assert!(out.contains(want), "expected {want:?} in:\n{out}");
}

#[test]
fn kubectl_workflows_on_a_follower_and_after_the_leader_dies() {
    flotilla_tests::require_etcdctl();
    let c = UpCluster::start(3).expect("cluster starts");
    let l = c.leader();
    let follower = (l + 1) % 3;
    let mut k = Kubectl::new(&c.replicas[follower].api_url);
    assert_has(&k.ok(&["version"]), "Server Version: v1.32");
    assert_has(&k.ok(&["version"]), "Client Version: v1.32");
    workflow(&k, "team-a");

    c.kill9(l);
    let survivor = (l + 2) % 3;
    k.set_server(&c.replicas[survivor].api_url);
    wait_for(Duration::from_secs(30), "the survivors to serve", || {
        k.run(&["get", "--raw", "/readyz"], None).status.success().then_some(())
    });
    // What was written through the follower before the failover is all there.
    assert_has(&k.ok(&["get", "deployment", "web2", "-n", "team-a", "-o", "jsonpath={.spec.replicas}"]), "2");
    workflow(&k, "team-b");
}

fn workflow(k: &Kubectl, ns: &str) {
    assert_has(&k.ok(&["api-resources"]), "deployments");
    assert_has(&k.ok(&["get", "--raw", "/readyz"]), "ok");
    assert_has(&k.ok(&["create", "namespace", ns]), &format!("namespace/{ns} created"));
    let n = &["-n", ns][..];
    apply_and_reapply(k, n);
    generators(k, n);
    edits(k, n);
    output_formats(k, ns);
    nodes(k, ns);
    server_side_apply(k, n);
    watch(k, n);
    assert_has(
        &k.ok_with(&[&["delete", "-f", "-"], n].concat(), Some(DEPLOYMENT_V1)),
        "deployment.apps \"web\" deleted",
    );
    assert_has(&k.fails(&[&["get", "deployment", "web"], n].concat()), "deployments.apps \"web\" not found");
}

fn apply_and_reapply(k: &Kubectl, n: &[&str]) {
    let apply = [&["apply", "-f", "-"], n].concat();
    assert_has(&k.ok_with(&apply, Some(DEPLOYMENT_V1)), "deployment.apps/web created");
    let v2 = DEPLOYMENT_V1
        .replace("nginx:1.25", "nginx:1.26")
        .replace("replicas: 2", "replicas: 3")
        .replace("        - {name: B, value: \"2\"}\n", "");
    assert_has(&k.ok_with(&apply, Some(&v2)), "deployment.apps/web configured");
    let live: serde_json::Value =
        serde_json::from_str(&k.ok(&[&["get", "deployment", "web", "-o", "json"], n].concat())).expect("json");
    let c = &live["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.26");
    assert_eq!(live["spec"]["replicas"], 3);
    assert_eq!(c["env"], serde_json::json!([{"name": "A", "value": "1"}]));
    assert_eq!(live["metadata"]["generation"], 2);
    assert_has(&k.ok_with(&apply, Some(&v2)), "deployment.apps/web unchanged");
}

/// `kubectl create <generator>` sends protobuf bodies in 1.32.
fn generators(k: &Kubectl, n: &[&str]) {
    let create = |args: &[&str]| k.ok(&[&["create"], args, n].concat());
    assert_has(&create(&["deployment", "web2", "--image=nginx:1.27", "--replicas=2"]), "deployment.apps/web2 created");
    assert_has(&create(&["configmap", "cm1", "--from-literal=a=b"]), "configmap/cm1 created");
    assert_has(&create(&["secret", "generic", "s1", "--from-literal=k=v"]), "secret/s1 created");
    assert_has(&create(&["service", "clusterip", "svc1", "--tcp=80:8080"]), "service/svc1 created");
    assert_has(&create(&["job", "once", "--image=busybox"]), "job.batch/once created");
    let get = |args: &[&str]| k.ok(&[&["get"], args, n].concat());
    assert_eq!(get(&["configmap", "cm1", "-o", "jsonpath={.data.a}"]), "b");
    assert_eq!(get(&["secret", "s1", "-o", "jsonpath={.type}"]), "Opaque");
    assert_eq!(get(&["service", "svc1", "-o", "jsonpath={.spec.ports[0].targetPort}"]), "8080");
    assert_eq!(get(&["deployment", "web2", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]), "nginx:1.27");
    let dup = k.run(&[&["create", "configmap", "cm1", "--from-literal=a=c"], n].concat(), None);
    assert_has(&String::from_utf8_lossy(&dup.stderr), "configmaps \"cm1\" already exists");
}

fn edits(k: &Kubectl, n: &[&str]) {
    let run = |args: &[&str]| k.ok(&[args, n].concat());
    assert_has(&run(&["scale", "deployment", "web2", "--replicas=5"]), "deployment.apps/web2 scaled");
    assert_eq!(run(&["get", "deployment", "web2", "-o", "jsonpath={.spec.replicas}"]), "5");
    assert_has(&run(&["label", "deployment", "web2", "tier=front"]), "deployment.apps/web2 labeled");
    assert_has(&run(&["annotate", "deployment", "web2", "note=hello"]), "deployment.apps/web2 annotated");
    assert_eq!(run(&["get", "deployments", "-l", "tier=front", "-o", "name"]).trim(), "deployment.apps/web2");
    assert_has(&run(&["patch", "deployment", "web2", "-p", r#"{"spec":{"replicas":1}}"#]), "patched");
    assert_has(&run(&["patch", "deployment", "web2", "--type=merge", "-p", r#"{"spec":{"replicas":3}}"#]), "patched");
    let json_patch = r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#;
    assert_has(&run(&["patch", "deployment", "web2", "--type=json", "-p", json_patch]), "patched");
    assert_eq!(run(&["get", "deployment", "web2", "-o", "jsonpath={.spec.replicas}"]), "2");
    let yaml = run(&["get", "configmap", "cm1", "-o", "yaml"]);
    assert_has(&yaml, "kind: ConfigMap");
    let changed = yaml.replace("a: b", "a: replaced");
    assert_has(&k.ok_with(&[&["replace", "-f", "-"], n].concat(), Some(&changed)), "configmap/cm1 replaced");
    assert_eq!(run(&["get", "configmap", "cm1", "-o", "jsonpath={.data.a}"]), "replaced");
    // The replaced body carried the old resourceVersion: replaying it now is a conflict.
    let stale = k.run(&[&["replace", "-f", "-"], n].concat(), Some(&changed));
    assert_has(&String::from_utf8_lossy(&stale.stderr), "the object has been modified");
}

fn output_formats(k: &Kubectl, ns: &str) {
    let wide = k.ok(&["get", "deployments", "-n", ns, "-o", "wide"]);
    for col in ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR", "web2"] {
        assert_has(&wide, col);
    }
    let all = k.ok(&["get", "configmaps", "-A"]);
    assert_has(&all, "NAMESPACE");
    assert!(all.lines().any(|l| l.starts_with(ns) && l.contains("cm1")), "{all}");
    assert_has(&k.ok(&["get", "services", "-n", ns]), "ClusterIP");
    assert_has(&k.ok(&["get", "secrets", "-n", ns]), "Opaque");
    assert_has(&k.ok(&["get", "jobs", "-n", ns, "-o", "wide"]), "once");
    assert_has(&k.ok(&["get", "namespaces"]), "kube-system");
    assert_has(&k.ok(&["describe", "deployment", "web2", "-n", ns]), "Replicas:");
    assert_has(&k.ok(&["describe", "configmap", "cm1", "-n", ns]), "replaced");
    assert_has(&k.ok(&["get", "deployment", "web2", "-n", ns, "-o", "yaml"]), "apiVersion: apps/v1");
    for kind in
        ["pods", "endpoints", "events", "serviceaccounts", "pvc", "leases", "replicasets", "statefulsets", "daemonsets"]
    {
        let out = k.run(&["get", kind, "-n", ns, "-o", "wide"], None);
        assert!(out.status.success(), "get {kind}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for kind in ["nodes", "pv", "storageclasses", "namespaces"] {
        let out = k.run(&["get", kind, "-o", "wide"], None);
        assert!(out.status.success(), "get {kind}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn nodes(k: &Kubectl, ns: &str) {
    let node = format!("node-{ns}");
    let manifest = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n  labels: {{kubernetes.io/hostname: {node}}}\n"
    );
    assert_has(&k.ok_with(&["apply", "-f", "-"], Some(&manifest)), &format!("node/{node} created"));
    assert_has(&k.ok(&["cordon", &node]), &format!("node/{node} cordoned"));
    assert_eq!(k.ok(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"]), "true");
    assert_has(&k.ok(&["get", "nodes", "-o", "wide"]), "SchedulingDisabled");
    assert_has(&k.ok(&["uncordon", &node]), &format!("node/{node} uncordoned"));
    assert_eq!(k.ok(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"]), "");
    assert_has(&k.ok(&["describe", "node", &node]), &format!("Name:               {node}"));
}

fn server_side_apply(k: &Kubectl, n: &[&str]) {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  x: \"1\"\n";
    let apply = [&["apply", "--server-side", "-f", "-"], n].concat();
    assert_has(&k.ok_with(&apply, Some(cm)), "configmap/ssa serverside-applied");
    assert_has(&k.ok_with(&apply, Some(&cm.replace("\"1\"", "\"2\""))), "configmap/ssa serverside-applied");
    assert_eq!(k.ok(&[&["get", "configmap", "ssa", "-o", "jsonpath={.data.x}"], n].concat()), "2");
}

/// `kubectl get -w` sees a configmap added, modified and deleted.
fn watch(k: &Kubectl, n: &[&str]) {
    let mut child = k.spawn(&[&["get", "configmaps", "-w", "--output-watch-events"], n].concat());
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The watch is live once the initial list (which shows cm1) has been printed.
    expect_line(&rx, |l| l.contains("cm1"));
    k.ok(&[&["create", "configmap", "watched", "--from-literal=a=1"], n].concat());
    expect_line(&rx, |l| l.contains("ADDED") && l.contains("watched"));
    k.ok(&[&["label", "configmap", "watched", "seen=yes"], n].concat());
    expect_line(&rx, |l| l.contains("MODIFIED") && l.contains("watched"));
    k.ok(&[&["delete", "configmap", "watched"], n].concat());
    expect_line(&rx, |l| l.contains("DELETED") && l.contains("watched"));
    let _ = child.kill();
    let _ = child.wait();
}

fn expect_line(rx: &mpsc::Receiver<String>, want: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if want(&line) => return,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("kubectl get -w did not print the expected line; it printed:\n{}", seen.join("\n"));
}
