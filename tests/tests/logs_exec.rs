//! `kubectl logs`, `kubectl exec` and `kubectl port-forward` end to end: a `flotilla up` cluster with one
//! process-runtime agent, the real kubectl, requests going kubectl → API server → the
//! agent's endpoint → host processes.

use std::io::Read;
use std::time::Duration;

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{free_port, http_get, wait_for, UpCluster};

const WAIT: Duration = Duration::from_secs(60);

fn cluster() -> (UpCluster, Kubectl) {
    flotilla_tests::require_etcdctl();
    let c = UpCluster::start_with(1, &["--agents", "1", "--agent-runtime", "process"]).expect("cluster starts");
    let k = Kubectl::new(&c.replicas[0].api_url);
    (c, k)
}

/// A pod running `script` under `sh -c` with `restartPolicy`.
fn run_pod(k: &Kubectl, name: &str, script: &str, restart_policy: &str) {
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": restart_policy, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "app", "image": "busybox", "command": ["sh", "-c", script]}]},
    });
    k.ok_with(&["apply", "-f", "-"], Some(&manifest.to_string()));
}

fn wait_running(k: &Kubectl, name: &str) {
    wait_for(WAIT, &format!("pod {name} Running"), || {
        (k.ok(&["get", "pod", name, "-o", "jsonpath={.status.phase}"]) == "Running").then_some(())
    });
}

#[test]
fn kubectl_logs_with_tail_timestamps_since_follow_and_previous() {
    let (_c, k) = cluster();
    run_pod(&k, "talker", "echo one; echo two; sleep 2; echo three; sleep 300", "Always");
    wait_running(&k, "talker");
    let all = wait_for(WAIT, "three lines", || {
        let out = k.run(&["logs", "talker"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.lines().count() == 3).then_some(text)
    });
    assert_eq!(all, "one\ntwo\nthree\n");
    assert_eq!(k.ok(&["logs", "talker", "--tail=1"]), "three\n");
    assert_eq!(k.ok(&["logs", "talker", "-c", "app", "--limit-bytes=5"]), "one\nt");
    let stamped = k.ok(&["logs", "talker", "--timestamps"]);
    let lines: Vec<(&str, &str)> = stamped.lines().map(|l| l.split_once(' ').expect("a timestamp")).collect();
    assert_eq!(lines.iter().map(|l| l.1).collect::<Vec<_>>(), ["one", "two", "three"]);
    assert!(lines.iter().all(|(t, _)| t.ends_with('Z') && t.contains('T')), "{stamped}");
    // Nothing is written after "three": a second later, --since=1s sees none of it.
    wait_for(WAIT, "--since=1s to leave out the old lines", || {
        k.ok(&["logs", "talker", "--since=1s"]).is_empty().then_some(())
    });
    assert_eq!(k.ok(&["logs", "talker", "--since=1h"]).lines().count(), 3);
    let err = k.fails(&["logs", "talker", "-c", "nosuch"]);
    assert!(err.contains("container nosuch is not valid for pod talker"), "{err}");

    // -f streams until the container exits.
    run_pod(&k, "counter", "sleep 1; for i in 1 2 3; do echo n$i; sleep 0.5; done", "Never");
    wait_running(&k, "counter");
    let mut follow = k.spawn(&["logs", "-f", "counter"]);
    let mut out = String::new();
    follow.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(follow.wait().unwrap().success());
    assert_eq!(out, "n1\nn2\nn3\n");

    // -p after a restart: the previous attempt's log.
    run_pod(&k, "crasher", "echo attempt $(date +%s%N); sleep 1; exit 1", "Always");
    wait_for(WAIT, "crasher restarted", || {
        let n = k.ok(&["get", "pod", "crasher", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]);
        (n.parse::<u32>().unwrap_or(0) >= 1).then_some(())
    });
    let previous = k.ok(&["logs", "crasher", "-p"]);
    assert!(previous.starts_with("attempt "), "{previous}");
}

#[test]
fn kubectl_exec_propagates_output_exit_codes_and_stdin() {
    let (_c, k) = cluster();
    run_pod(&k, "box", "sleep 300", "Never");
    wait_running(&k, "box");
    let out = k.run(&["exec", "box", "--", "sh", "-c", "echo hi; exit 3"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let echoed = k.ok_with(&["exec", "-i", "box", "--", "cat"], Some("piped in\n"));
    assert_eq!(echoed, "piped in\n");
}

/// `GET /hello.txt` over a fresh connection to 127.0.0.1:`port`; the whole response.
fn hello(port: u16) -> Option<String> {
    http_get(port, "/hello.txt", Duration::from_secs(5))
}

#[test]
fn kubectl_port_forward_reaches_the_pod() {
    let (_c, k) = cluster();
    // The process runtime's pod IP is the node's (127.0.0.1 under `flotilla up`).
    let (remote, local) = (free_port(), free_port());
    let web = tempfile::tempdir().expect("tempdir");
    std::fs::write(web.path().join("hello.txt"), "hello through port-forward\n").expect("write");
    let script = format!("cd {} && exec python3 -m http.server {remote} --bind 127.0.0.1", web.path().display());
    run_pod(&k, "web", &script, "Always");
    wait_running(&k, "web");
    let ports = format!("{local}:{remote}");
    let mut forward = k.spawn(&["port-forward", "pod/web", &ports]);
    let got = wait_for(WAIT, "an answer through the forwarded port", || {
        // kubectl port-forward exits at its first error (the pod's server not listening yet,
        // on a loaded machine): start it again, as a user would.
        if matches!(forward.try_wait(), Ok(Some(_))) {
            forward = k.spawn(&["port-forward", "pod/web", &ports]);
        }
        hello(local).filter(|r| r.contains("hello through port-forward"))
    });
    assert!(got.starts_with("HTTP/1.0 200"), "{got}");
    // Several connections over the one port-forward session.
    for _ in 0..3 {
        assert!(hello(local).is_some_and(|r| r.contains("hello through port-forward")));
    }
    let _ = forward.kill();
    let _ = forward.wait();
}
