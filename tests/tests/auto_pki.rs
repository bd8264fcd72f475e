//! `flotilla server --auto-pki` with the real binary: plain HTTP is refused without
//! `--insecure-plaintext`; the first replica, given https:// URLs and no certificate flags,
//! makes the cluster's CA, certificates, admin kubeconfig and server token; a second replica joins with the
//! token and gets the CA from it; a replica with a wrong secret, or with a token naming
//! another CA, gets nothing and stops. The joined replica's server certificate (45 s here)
//! is renewed by the replica itself, and its API still answers after the first certificate
//! has expired.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{flotilla_bin, free_port, spawn_logged, wait_for, Proc};

struct Replica {
    name: &'static str,
    api: String,
    client: String,
}

/// `flotilla server --auto-pki` named `name` in `dir`, with `extra` flags.
fn server(dir: &Path, name: &'static str, extra: &[&str]) -> (Replica, Proc) {
    let r = Replica {
        name,
        api: format!("https://127.0.0.1:{}", free_port()),
        client: format!("https://127.0.0.1:{}", free_port()),
    };
    let mut cmd = Command::new(flotilla_bin());
    cmd.args(["server", "--name", name, "--auto-pki-validity", "45s", "--data-dir"])
        .arg(dir.join(name))
        .args(["--listen-api-url", &r.api, "--listen-client-urls", &r.client])
        .args(["--listen-peer-urls", &format!("https://127.0.0.1:{}", free_port())])
        .args(["--heartbeat-interval", "50", "--election-timeout", "1000"])
        .args(extra);
    (r, spawn_logged(cmd, &dir.join(format!("{name}.log"))))
}

fn members(pki: &Path, endpoints: &str) -> String {
    let file = |n: &str| pki.join(n).display().to_string();
    let out = Command::new(flotilla_bin())
        .args(["member", "list", "--endpoints", endpoints, "--cacert", &file("ca.crt")])
        .args(["--cert", &file("admin.crt"), "--key", &file("admin.key")])
        .output()
        .expect("flotilla member list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Start a replica that must fail to get the PKI; its log.
fn refused(dir: &Path, name: &'static str, api: &str, token: &str) -> String {
    let (_, mut p) = server(dir, name, &["--auto-pki", "--join-api-url", api, "--server-token", token]);
    let exit = wait_for(Duration::from_secs(30), "the replica gives up", || p.0.try_wait().expect("wait"));
    assert!(!exit.success());
    assert!(!dir.join(name).join("pki/ca.crt").exists(), "{name} got no CA");
    std::fs::read_to_string(dir.join(format!("{name}.log"))).expect("log")
}

#[test]
fn replicas_make_share_and_renew_the_clusters_pki() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // Plain HTTP is refused without --insecure-plaintext, and says why.
    let plain = Command::new(flotilla_bin())
        .args(["server", "--name", "plain", "--data-dir"])
        .arg(dir.join("plain"))
        .args(["--listen-api-url", &format!("http://127.0.0.1:{}", free_port())])
        .output()
        .expect("flotilla runs");
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(!plain.status.success() && said.contains("--insecure-plaintext"), "{said}");

    // The first replica: https:// URLs and no certificate flags mean --auto-pki.
    let (n1, _p1) = server(dir, "n1", &[]);
    let pki = dir.join("n1/pki");
    let admin = Kubectl::with_kubeconfig(&pki.join("admin.kubeconfig"));
    wait_for(Duration::from_secs(30), "the admin's kubeconfig works", || {
        admin.run(&["get", "namespaces"], None).status.success().then_some(())
    });
    let token = std::fs::read_to_string(pki.join("server-token")).expect("the server token");
    let token = token.trim();
    assert!(token.starts_with("F10") && token.contains("::"), "{token}");

    // The second replica joins with the token, over TLS it never had files for.
    let token_file = pki.join("server-token").display().to_string();
    let joining = ["--auto-pki", "--join", &n1.client, "--join-api-url", &n1.api, "--server-token-file", &token_file];
    let (n2, _p2) = server(dir, "n2", &joining);
    wait_for(Duration::from_secs(60), "n2 joined as a voter", || {
        let list = members(&pki, &n1.client);
        list.lines().any(|l| l.contains(n2.name) && l.contains("voter")).then_some(())
    });
    let n2_pki = dir.join("n2/pki");
    assert_eq!(std::fs::read(n2_pki.join("ca.crt")).unwrap(), std::fs::read(pki.join("ca.crt")).unwrap());
    assert!(!n2_pki.join("admin.key").exists(), "only the first replica makes an admin");
    let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777;
    for key in ["ca.key", "sa.key", "server.key", "server-token"] {
        assert_eq!(mode(&n2_pki.join(key)), 0o600, "{key}");
    }
    assert_eq!(
        admin.ok(&["--server", &n2.api, "get", "namespace", "default", "-o", "name"]).trim(),
        "namespace/default"
    );

    // A wrong secret is refused by the member; a token naming another CA never sends it.
    let (hash, _) = token.split_once("::").unwrap();
    let log = refused(dir, "n3", &n1.api, &format!("{hash}::wrong"));
    assert!(log.contains("HTTP 401"), "{log}");
    let other = format!("F10{}::{}", "0".repeat(64), token.split_once("::").unwrap().1);
    let log = refused(dir, "n4", &n1.api, &other);
    assert!(log.contains("not the one the server token names"), "{log}");

    // Renewal: n2 replaces its 45 s certificate by itself; once the first has expired, its
    // API still answers, with the new one.
    let first = std::fs::read_to_string(n2_pki.join("server.crt")).unwrap();
    let (_, expires) = flotilla_pki::validity(&first).expect("a certificate");
    wait_for(Duration::from_secs(60), "n2's certificate renewed", || {
        (std::fs::read_to_string(n2_pki.join("server.crt")).unwrap() != first).then_some(())
    });
    let past_expiry = expires.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_secs(2);
    std::thread::sleep(past_expiry);
    assert_eq!(
        admin.ok(&["--server", &n2.api, "get", "namespace", "default", "-o", "name"]).trim(),
        "namespace/default"
    );
}
