//! An agent joins with a bootstrap token: `flotilla token create` makes one; the agent
//! (`--api-ca-file` and `--token`, no certificate) gets a node certificate for its own key
//! from the replica, which signs with the cluster CA, and renews it before it expires
//! (`--cluster-signing-duration 40s` here), carrying on after the first certificate has
//! expired. A wrong token gets no certificate; a token's user may do nothing else; a node
//! may renew only its own certificate.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use flotilla_tests::kube::{jsonpath, Kubectl};
use flotilla_tests::secure::{flotilla_ok, SecureSolo};
use flotilla_tests::{flotilla_bin, wait_for};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(s: &SecureSolo, token: &str) -> Command {
    let mut cmd = Command::new(flotilla_bin());
    cmd.args(["agent", "--node-name", "agent-1", "--runtime", "fake", "--port", "0", "--node-ip", "127.0.0.1"])
        .args(["--server", &s.solo.api, "--api-ca-file", &s.pki.join("ca.crt").display().to_string()])
        .args(["--token", token])
        .arg("--data-dir")
        .arg(s.dir.path().join("agent-1.data"))
        .stdout(Stdio::null());
    cmd
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `curl` to the replica's API presenting `cert`/`key`, POSTing `body` to `path`: the status.
fn curl_post(s: &SecureSolo, cert: &Path, key: &Path, path: &str, body: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(s.pki.join("ca.crt"))
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .args(["-H", "Content-Type: application/json", "-d", body, &format!("{}{path}", s.solo.api)])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_agent_joins_with_a_bootstrap_token_and_renews_its_certificate() {
    let s = SecureSolo::start_signing("40s");
    let kubeconfig = s.pki.join("admin.kubeconfig").display().to_string();
    let token = flotilla_ok(&["token", "create", "--kubeconfig", &kubeconfig, "--ttl", "10m"]).trim().to_string();
    let (id, _) = token.split_once('.').expect("a token is id.secret");
    let kind = jsonpath(&s.admin, "kube-system", &["secret", &format!("bootstrap-token-{id}")], "{.type}");
    assert_eq!(kind, "bootstrap.kubernetes.io/token");

    // A wrong secret: no certificate, and the agent says why.
    let wrong = agent(&s, &format!("{id}.aaaaaaaaaaaaaaaa")).stderr(Stdio::piped()).output().expect("agent runs");
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success() && err.contains("401"), "{err}");

    // The token itself authenticates, for nothing but joining.
    let as_token = Kubectl::new(&s.solo.api);
    let ca = format!("--certificate-authority={}", s.pki.join("ca.crt").display());
    let refused = as_token.fails(&[&ca, &format!("--token={token}"), "get", "secrets", "-A"]);
    assert!(refused.contains(&format!("system:bootstrap:{id}")) && refused.contains("forbidden"), "{refused}");

    let log = std::fs::File::create(s.dir.path().join("agent-1.log")).expect("log");
    let _agent = Agent(agent(&s, &token).stderr(log).spawn().expect("agent starts"));
    let pki = s.dir.path().join("agent-1.data/pki");
    let first = wait_for(Duration::from_secs(30), "the agent's node certificate", || {
        Some(read(&pki.join("node.crt"))).filter(|pem| !pem.is_empty())
    });
    let der = flotilla_pki::certificates_der(&first).expect("PEM");
    let id = flotilla_pki::cert_identity(&der[0]).expect("identity");
    assert_eq!(
        (id.user.as_str(), id.groups.as_slice()),
        ("system:node:agent-1", ["system:nodes".to_string()].as_slice())
    );
    wait_for(Duration::from_secs(60), "agent-1 Ready", || {
        let ready = "{.status.conditions[?(@.type==\"Ready\")].status}";
        (jsonpath(&s.admin, "", &["node", "agent-1"], ready) == "True").then_some(())
    });

    // A node may renew only its own certificate.
    let (cert, key) = (pki.join("node.crt"), pki.join("node.key"));
    let other = r#"{"nodeName": "agent-2", "request": "not read: the caller is checked first"}"#;
    assert_eq!(curl_post(&s, &cert, &key, "/flotilla/v1/node-certificate", other), "403");

    // Renewed two thirds into its 40 s, before the first one expires.
    let (_, first_expires) = flotilla_pki::validity(&first).expect("validity");
    let renewed = wait_for(Duration::from_secs(60), "a renewed certificate", || {
        Some(read(&pki.join("node.crt"))).filter(|pem| !pem.is_empty() && *pem != first)
    });
    assert!(SystemTime::now() < first_expires, "renewed only after the first certificate expired");
    let (_, renewed_expires) = flotilla_pki::validity(&renewed).expect("validity");
    assert!(renewed_expires > first_expires);

    // Past the first certificate's expiry the agent still renews its Lease: its requests
    // carry the renewed certificate.
    let wait = first_expires.duration_since(SystemTime::now()).unwrap_or_default();
    std::thread::sleep(wait + Duration::from_secs(1));
    let renew_time = || jsonpath(&s.admin, "kube-node-lease", &["lease", "agent-1"], "{.spec.renewTime}");
    let before = renew_time();
    wait_for(Duration::from_secs(30), "a Lease renewal after the first certificate expired", || {
        (renew_time() != before).then_some(())
    });
}
