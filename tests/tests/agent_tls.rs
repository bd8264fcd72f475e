//! An agent over TLS: one replica with an https:// API, a `flotilla agent` (process runtime)
//! authenticated by its node certificate (`system:node:agent-1` in `system:nodes`), under
//! node authorization. It registers its Node, renews its Lease and runs a pod that reads a
//! Secret and a ConfigMap; logs and exec reach it over mutual TLS, which its endpoint
//! refuses to a node's certificate; a certificate of another node is refused at start.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flotilla_tests::kube::jsonpath;
use flotilla_tests::secure::{flotilla_ok, SecureSolo};
use flotilla_tests::{flotilla_bin, wait_for};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `flotilla agent` for node `name` with certificate `cert` (in the fixture's pki directory).
fn agent(s: &SecureSolo, name: &str, cert: &str) -> Command {
    let file = |f: &str| s.pki.join(f).display().to_string();
    let mut cmd = Command::new(flotilla_bin());
    cmd.args(["agent", "--node-name", name, "--runtime", "process", "--port", "0", "--node-ip", "127.0.0.1"])
        .args(["--server", &s.solo.api, "--api-ca-file", &file("ca.crt")])
        .args(["--api-cert-file", &file(&format!("{cert}.crt")), "--api-key-file", &file(&format!("{cert}.key"))])
        .arg("--data-dir")
        .arg(s.dir.path().join(format!("{name}.data")))
        .stdout(Stdio::null());
    cmd
}

/// A pod that prints a Secret's and a ConfigMap's values: the agent reads both as the node.
const POD: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
 "spec": {"nodeName": "agent-1", "containers": [{"name": "app", "image": "busybox",
   "command": ["sh", "-c", "echo \"$SECRET $GREETING\"; sleep 3600"],
   "env": [{"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}},
           {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "greeting"}}}]}]}}"#;

#[test]
fn an_agent_with_a_node_certificate_runs_its_pods_over_tls() {
    let s = SecureSolo::start(&[]);
    let dir = s.pki.display().to_string();
    for node in ["agent-1", "agent-2"] {
        let user = format!("system:node:{node}");
        flotilla_ok(&["pki", "issue", "--dir", &dir, "--name", node, "--user", &user, "--group", "system:nodes"]);
    }

    // agent-2's certificate does not make agent-1.
    let wrong = agent(&s, "agent-1", "agent-2").stderr(Stdio::piped()).output().expect("agent runs");
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success() && err.contains("node \"agent-2\"'s certificate"), "{err}");

    let log = std::fs::File::create(s.dir.path().join("agent-1.log")).expect("log");
    let _agent = Agent(agent(&s, "agent-1", "agent-1").stderr(log).spawn().expect("agent starts"));
    let ready = wait_for(Duration::from_secs(60), "agent-1 Ready", || {
        let out = s
            .admin
            .run(&["get", "node", "agent-1", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"], None);
        let status = String::from_utf8_lossy(&out.stdout).into_owned();
        (status == "True").then_some(status)
    });
    assert_eq!(ready, "True");
    let holder = jsonpath(&s.admin, "kube-node-lease", &["lease", "agent-1"], "{.spec.holderIdentity}");
    assert_eq!(holder, "agent-1", "the agent renews its own Lease");

    s.admin.ok(&["create", "secret", "generic", "s1", "--from-literal=k=from-the-secret"]);
    s.admin.ok(&["create", "configmap", "cm", "--from-literal=greeting=hello-over-tls"]);
    s.admin.ok_with(&["create", "-f", "-"], Some(POD));
    wait_for(Duration::from_secs(60), "the pod runs and prints what it was given", || {
        let phase = jsonpath(&s.admin, "default", &["pod", "web"], "{.status.phase}");
        let logs = s.admin.run(&["logs", "web"], None);
        let logs = String::from_utf8_lossy(&logs.stdout).into_owned();
        (phase == "Running" && logs.contains("from-the-secret") && logs.contains("hello-over-tls")).then_some(())
    });
    // logs went API server -> agent endpoint over mutual TLS; exec does too.
    assert_eq!(s.admin.ok(&["exec", "web", "--", "echo", "exec-over-tls"]).trim(), "exec-over-tls");

    // The endpoint admits only replicas' and admins' certificates: not a node's, not none.
    let port = jsonpath(&s.admin, "", &["node", "agent-1"], "{.status.daemonEndpoints.kubeletEndpoint.Port}");
    let url = format!("https://127.0.0.1:{port}/healthz");
    let curl = |cert: Option<&str>| {
        let file = |f: String| s.pki.join(f).display().to_string();
        let mut cmd = Command::new("curl");
        cmd.args(["-sk", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(c) = cert {
            cmd.args(["--cert", &file(format!("{c}.crt")), "--key", &file(format!("{c}.key"))]);
        }
        String::from_utf8_lossy(&cmd.arg(&url).output().expect("curl runs").stdout).into_owned()
    };
    assert_eq!(curl(Some("admin")), "200", "an admin's certificate is served");
    assert_eq!(curl(Some("agent-2")), "000", "a node's certificate is refused");
    assert_eq!(curl(None), "000", "no certificate is refused");
}
