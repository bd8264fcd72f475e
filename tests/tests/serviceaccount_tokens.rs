//! ServiceAccount tokens on a `flotilla up` cluster (TLS, one docker agent): a new namespace
//! gets its `default` ServiceAccount and `kube-root-ca.crt`; `kubectl create token` (a
//! protobuf TokenRequest) gives a token kubectl can use, which RBAC then confines; a pod
//! finds its own token, the CA and its namespace at the standard path, and that token stops
//! working once the pod is gone. Pods naming a missing ServiceAccount are refused, and
//! `automountServiceAccountToken: false` mounts nothing.

use std::path::Path;
use std::time::Duration;

use flotilla_tests::docker::Cleanup;
use flotilla_tests::kube::{jsonpath, Kubectl};
use flotilla_tests::{ensure_test_image, wait_for, UpCluster, TEST_IMAGE};

const NS: &str = "tokens";
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A kubectl that authenticates with bearer token `token` only (no client certificate).
fn kubectl_with_token(dir: &Path, server: &str, ca: &Path, token: &str) -> (tempfile::TempDir, Kubectl) {
    let home = tempfile::tempdir_in(dir).expect("a directory for the kubeconfig");
    let path = home.path().join("kubeconfig");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
         certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: x\n  \
         context:\n    cluster: c\n    user: u\n    namespace: {NS}\ncurrent-context: x\n",
        ca.display()
    );
    std::fs::write(&path, config).expect("kubeconfig written");
    let k = Kubectl::with_kubeconfig(&path);
    (home, k)
}

fn whoami(k: &Kubectl) -> Result<String, String> {
    let out = k.run(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"], None);
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[test]
fn pods_and_kubectl_get_service_account_tokens() {
    ensure_test_image();
    let _cleanup = Cleanup::namespace(NS);
    let c = UpCluster::start_exactly(3, &["--agents", "1", "--agent-runtime", "docker", "--no-demo"])
        .expect("cluster starts");
    let tls = c.tls.clone().expect("a TLS cluster");
    let server = &c.lb.as_ref().expect("a load balancer").url;
    let admin = Kubectl::with_kubeconfig(&c.dir.path().join("kubeconfig"));
    admin.ok(&["create", "namespace", NS]);
    // A pod created at once: its namespace's `default` ServiceAccount may not exist yet, and
    // the agent waits for it.
    admin.ok(&["run", "reader", "-n", NS, &format!("--image={TEST_IMAGE}"), "--restart=Never", "--", "sleep", "3600"]);

    // The namespace's objects, made by the leader's controller.
    wait_for(Duration::from_secs(30), "the namespace's default ServiceAccount", || {
        admin.run(&["get", "serviceaccount", "default", "-n", NS], None).status.success().then_some(())
    });
    let ca = std::fs::read_to_string(&tls.ca_file).expect("the cluster's CA");
    let published = wait_for(Duration::from_secs(30), "kube-root-ca.crt", || {
        let out =
            admin.run(&["get", "configmap", "kube-root-ca.crt", "-n", NS, "-o", "jsonpath={.data.ca\\.crt}"], None);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(published.trim(), ca.trim());

    // kubectl create token (protobuf on the wire): kubectl then works as the account, and
    // RBAC, which grants it nothing, refuses its reads.
    let token = admin.ok(&["create", "token", "default", "-n", NS, "--duration=20m"]);
    let (_home, as_account) = kubectl_with_token(c.dir.path(), server, &tls.ca_file, token.trim());
    assert_eq!(whoami(&as_account).as_deref(), Ok("system:serviceaccount:tokens:default"));
    let refused = as_account.fails(&["get", "pods"]);
    assert!(refused.contains("forbidden"), "{refused}");
    let short = admin.fails(&["create", "token", "default", "-n", NS, "--duration=5m"]);
    assert!(short.contains("less than 10 minutes"), "{short}");

    // The pod's own token, CA and namespace.
    wait_for(Duration::from_secs(90), "the pod running", || {
        (jsonpath(&admin, NS, &["pod", "reader"], "{.status.phase}") == "Running").then_some(())
    });
    let read = |file: &str| admin.ok(&["exec", "reader", "-n", NS, "--", "cat", &format!("{MOUNT}/{file}")]);
    assert_eq!(read("namespace"), NS);
    assert_eq!(read("ca.crt").trim(), ca.trim());
    let pod_token = read("token");
    let (_home2, as_pod) = kubectl_with_token(c.dir.path(), server, &tls.ca_file, &pod_token);
    assert_eq!(whoami(&as_pod).as_deref(), Ok("system:serviceaccount:tokens:default"));

    // The pod's token is bound to it: gone with the pod.
    admin.ok(&["delete", "pod", "reader", "-n", NS, "--wait=true", "--timeout=60s"]);
    // (Within seconds: a check that passed stands for 5 s.)
    let after = wait_for(Duration::from_secs(15), "the pod's token refused", || whoami(&as_pod).err());
    assert!(after.contains("Unauthorized") || after.contains("provide credentials"), "{after}");

    // Admission: a missing ServiceAccount is refused; automount off mounts nothing.
    let image = format!("--image={TEST_IMAGE}");
    let missing =
        admin.fails(&["run", "x", "-n", NS, &image, "--overrides", r#"{"spec":{"serviceAccountName":"nope"}}"#]);
    assert!(missing.contains(r#"serviceaccount "nope" not found"#), "{missing}");
    let off = admin.ok(&[
        "run",
        "quiet",
        "-n",
        NS,
        &image,
        "--dry-run=server",
        "-o",
        "jsonpath={.spec.volumes}",
        "--overrides",
        r#"{"spec":{"automountServiceAccountToken":false}}"#,
    ]);
    assert_eq!(off.trim(), "", "no token volume");
    let on = admin.ok(&["run", "loud", "-n", NS, &image, "--dry-run=server", "-o", "jsonpath={.spec.volumes[0].name}"]);
    assert!(on.starts_with("kube-api-access-"), "{on}");
}
