//! The node agent with the docker runtime, end to end: `flotilla up --agents 2
//! --agent-runtime docker`, the local busybox image (`scripts/make-test-image`), the real
//! kubectl and the real Docker engine.
//!
//! Each test works in its own namespace and removes the Docker containers of that
//! namespace when it ends, however it ends.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use flotilla_tests::docker::{cluster, docker, wait_for_killed_agent_rules_swept};
use flotilla_tests::kube::{jsonpath, running_pods};
use flotilla_tests::{http_get, wait_for, TEST_IMAGE};

#[test]
fn docker_pods_run_restart_exec_log_forward_and_clean_up() {
    let ns = "docker-basics";
    let (_cleanup, _c, k) = cluster(ns);
    k.ok(&[
        "-n",
        ns,
        "create",
        "deployment",
        "web",
        &format!("--image={TEST_IMAGE}"),
        "--replicas=3",
        "--",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done",
    ]);
    let pods = running_pods(&k, ns, "web", 3);
    let ips = jsonpath(&k, ns, &["pods", "-l", "app=web"], "{.items[*].status.podIP}");
    let mut ips: Vec<&str> = ips.split_whitespace().collect();
    ips.sort_unstable();
    ips.dedup();
    assert_eq!(ips.len(), 3, "three distinct pod IPs: {ips:?}");
    let nodes = jsonpath(&k, ns, &["pods", "-l", "app=web"], "{.items[*].spec.nodeName}");
    assert!(nodes.contains("agent-1") && nodes.contains("agent-2"), "spread over both agents: {nodes}");

    // exec and logs.
    let pod = &pods[0];
    assert_eq!(k.ok(&["-n", ns, "exec", pod, "--", "sh", "-c", "echo out; echo err >&2"]).trim(), "out");
    let code = k.run(&["-n", ns, "exec", pod, "--", "sh", "-c", "exit 7"], None).status.code();
    assert_eq!(code, Some(7), "the exec's exit code reaches kubectl");
    assert!(k.ok(&["-n", ns, "logs", pod, "--tail=1"]).starts_with("tick "));
    let mut follow = k.spawn(&["-n", ns, "logs", "-f", pod, "--tail=1"]);
    let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let first: u64 = tick(&lines.next().expect("a line").expect("readable"));
    let later: u64 = tick(&lines.next().expect("a second line").expect("readable"));
    assert!(later > first, "logs -f keeps following: {first} then {later}");
    let _ = follow.kill();
    let _ = follow.wait();

    // port-forward to a pod serving HTTP.
    k.ok(&[
        "-n",
        ns,
        "run",
        "srv",
        &format!("--image={TEST_IMAGE}"),
        "--image-pull-policy=Never",
        "--labels=app=srv",
        "--command",
        "--",
        "sh",
        "-c",
        "mkdir -p /www; echo served by $(hostname) > /www/index.html; exec httpd -f -p 8080 -h /www",
    ]);
    running_pods(&k, ns, "srv", 1);
    let local = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let mut forward = k.spawn(&["-n", ns, "port-forward", "pod/srv", &format!("{local}:8080")]);
    let page = wait_for(Duration::from_secs(30), "the page through port-forward", || {
        http_get(local, "/", Duration::from_secs(2)).filter(|body| body.contains("served by"))
    });
    assert!(page.contains("served by srv"), "{page}");
    let _ = forward.kill();
    let _ = forward.wait();

    // docker kill → restarted, restartCount 1.
    let uid = jsonpath(&k, ns, &["pod", pod], "{.metadata.uid}");
    let app = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=io.flotilla.pod.uid={uid}"),
        "--filter",
        "label=io.flotilla.container.name=busybox",
    ]);
    let app = app.split_whitespace().next().expect("the app container runs in docker").to_string();
    docker(&["kill", &app]);
    wait_for(Duration::from_secs(60), "the killed container restarted", || {
        let out = jsonpath(&k, ns, &["pod", pod], "{.status.containerStatuses[0].restartCount} {.status.phase}");
        (out == "1 Running").then_some(())
    });
    let last = jsonpath(&k, ns, &["pod", pod], "{.status.containerStatuses[0].lastState.terminated.exitCode}");
    assert_eq!(last, "137", "lastState shows the kill");

    // A deleted pod's containers are gone.
    k.ok(&["-n", ns, "delete", "pod", pod, "--wait=true"]);
    wait_for(Duration::from_secs(60), "the deleted pod's containers removed", || {
        docker(&["ps", "-aq", "--filter", &format!("label=io.flotilla.pod.uid={uid}")]).trim().is_empty().then_some(())
    });
}

fn tick(line: &str) -> u64 {
    line.trim().strip_prefix("tick ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not a tick: {line:?}"))
}

const PROBED: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, file.txt: one}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: probed, labels: {app: probed}}
spec:
  containers:
  - name: main
    image: flotilla/busybox:latest
    imagePullPolicy: Never
    command: [sh, -c, 'echo "greeting=$GREETING password=$PASSWORD from=$SETTINGS_greeting"; touch /tmp/alive; exec sleep 3600']
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: settings, key: greeting}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    envFrom:
    - prefix: SETTINGS_
      configMapRef: {name: settings}
    volumeMounts:
    - {name: config, mountPath: /config}
    livenessProbe:
      exec: {command: [test, -f, /tmp/alive]}
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      exec: {command: [test, -f, /tmp/ready]}
      periodSeconds: 1
  volumes:
  - name: config
    configMap: {name: settings}
"#;

#[test]
fn docker_probes_env_and_config_volumes() {
    let ns = "docker-probes";
    let (_cleanup, _c, k) = cluster(ns);
    k.ok_with(&["-n", ns, "apply", "-f", "-"], Some(PROBED));
    running_pods(&k, ns, "probed", 1);
    let logs = k.ok(&["-n", ns, "logs", "probed"]);
    assert!(logs.contains("greeting=hello password=s3cret from=hello"), "env from ConfigMap and Secret: {logs}");

    // Readiness gates Ready, both ways.
    let ready = || jsonpath(&k, ns, &["pod", "probed"], "{.status.conditions[?(@.type==\"Ready\")].status}");
    assert_eq!(ready(), "False", "not ready before the readiness file exists");
    k.ok(&["-n", ns, "exec", "probed", "--", "touch", "/tmp/ready"]);
    wait_for(Duration::from_secs(30), "Ready True", || (ready() == "True").then_some(()));
    k.ok(&["-n", ns, "exec", "probed", "--", "rm", "/tmp/ready"]);
    wait_for(Duration::from_secs(30), "Ready False again", || (ready() == "False").then_some(()));

    // The configMap volume follows the ConfigMap.
    assert_eq!(k.ok(&["-n", ns, "exec", "probed", "--", "cat", "/config/file.txt"]), "one");
    k.ok(&["-n", ns, "patch", "configmap", "settings", "-p", r#"{"data":{"file.txt":"two"}}"#]);
    wait_for(Duration::from_secs(90), "the volume file updated", || {
        (k.ok(&["-n", ns, "exec", "probed", "--", "cat", "/config/file.txt"]) == "two").then_some(())
    });

    // A failing liveness probe restarts the container.
    k.ok(&["-n", ns, "exec", "probed", "--", "rm", "/tmp/alive"]);
    wait_for(Duration::from_secs(60), "a restart after the liveness probe failed", || {
        let n = jsonpath(&k, ns, &["pod", "probed"], "{.status.containerStatuses[0].restartCount}");
        (n.parse::<u32>().unwrap_or(0) >= 1).then_some(())
    });
}

const TOLERANT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: keep}
spec:
  replicas: 2
  selector: {matchLabels: {app: keep}}
  template:
    metadata: {labels: {app: keep}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      containers:
      - {name: main, image: flotilla/busybox:latest, imagePullPolicy: Never, command: [sleep, "3600"]}
"#;

#[test]
fn a_dead_agent_is_replaced_and_a_dead_api_replica_is_left() {
    let ns = "docker-loss";
    let (_cleanup, mut c, k) = cluster(ns);
    k.ok_with(&["-n", ns, "apply", "-f", "-"], Some(TOLERANT));
    running_pods(&k, ns, "keep", 2);

    // Kill the API replica the agents use first: they move on and keep reporting.
    let renew = |node: &str| jsonpath(&k, "kube-node-lease", &["lease", node], "{.spec.renewTime}");
    c.kill9(0);
    let before = renew("agent-2");
    wait_for(Duration::from_secs(40), "agent-2 renewing its Lease through another replica", || {
        (renew("agent-2") != before).then_some(())
    });
    k.ok(&["-n", ns, "scale", "deployment", "keep", "--replicas=3"]);
    running_pods(&k, ns, "keep", 3);
    c.restart(0).expect("replica restarts");

    // Kill agent-1: its node turns NotReady, and its pods are replaced on agent-2.
    let victim = c.agents.iter().find(|a| a.name == "agent-1").expect("agent-1").clone();
    // SAFETY: kill(2) on a pid from cluster.json; no memory effects.
    unsafe { libc::kill(victim.pid as libc::pid_t, libc::SIGKILL) };
    wait_for_killed_agent_rules_swept(&victim);
    let node_ready = || jsonpath(&k, ns, &["node", "agent-1"], "{.status.conditions[?(@.type==\"Ready\")].status}");
    wait_for(Duration::from_secs(45), "agent-1 NotReady", || (node_ready() != "True").then_some(()));
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let out = jsonpath(
            &k,
            ns,
            &["pods", "-l", "app=keep"],
            "{range .items[*]}{.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        );
        let live: Vec<&str> = out.lines().filter(|l| l.split_whitespace().count() == 2).collect();
        if live.len() == 3 && live.iter().all(|l| l.trim() == "agent-2 Running") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "pods not all replaced on agent-2 after 90 s:\n{out}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
