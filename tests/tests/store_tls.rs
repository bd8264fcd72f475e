//! The store's ports over TLS with the real binary: three replicas on mutual-TLS peer URLs
//! and an admins-only etcd API (certificates from `flotilla pki init`); `flotilla status`,
//! `member` and `snapshot save` with etcdctl's `--cacert/--cert/--key`; a fourth replica
//! joins with its peer certificate; a replica whose certificate another CA signed cannot.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use flotilla_tests::{flotilla_bin, free_port, require_etcdctl, spawn_logged, wait_for, Proc};

struct Member {
    name: String,
    peer: String,
    client: String,
}

fn member(name: &str) -> Member {
    Member {
        name: name.into(),
        peer: format!("https://127.0.0.1:{}", free_port()),
        client: format!("https://127.0.0.1:{}", free_port()),
    }
}

/// `flotilla server` for `m` with the certificates in `pki` and `extra` flags.
fn server(dir: &Path, pki: &Path, m: &Member, extra: &[&str]) -> Proc {
    let file = |name: &str| pki.join(name).display().to_string();
    let mut cmd = Command::new(flotilla_bin());
    cmd.args(["server", "--name", &m.name, "--data-dir"])
        .arg(dir.join(&m.name))
        .args(["--listen-api-url", &format!("http://127.0.0.1:{}", free_port()), "--insecure-plaintext"])
        .args(["--listen-peer-urls", &m.peer, "--listen-client-urls", &m.client])
        .args(["--peer-cert-file", &file("server.crt"), "--peer-key-file", &file("server.key")])
        .args(["--peer-trusted-ca-file", &file("ca.crt")])
        .args(["--cert-file", &file("server.crt"), "--key-file", &file("server.key")])
        .args(["--trusted-ca-file", &file("ca.crt"), "--client-cert-auth"])
        .args(["--heartbeat-interval", "50", "--election-timeout", "1000"])
        .args(extra);
    spawn_logged(cmd, &dir.join(format!("{}.log", m.name)))
}

fn pki_init(dir: &Path, name: &str) -> PathBuf {
    let pki = dir.join(name);
    let out = Command::new(flotilla_bin())
        .args(["pki", "init", "--dir"])
        .arg(&pki)
        .args(["--host", "127.0.0.1"])
        .output()
        .expect("flotilla pki init");
    assert!(out.status.success(), "pki init: {}", String::from_utf8_lossy(&out.stderr));
    pki
}

/// `flotilla <args> --endpoints E` with the credentials of `cert` (`None`: the CA only).
fn cli(pki: &Path, endpoints: &str, cert: Option<&str>, args: &[&str]) -> Output {
    let file = |name: &str| pki.join(name).display().to_string();
    let mut cmd = Command::new(flotilla_bin());
    cmd.args(args).args(["--endpoints", endpoints, "--cacert", &file("ca.crt")]);
    if let Some(cert) = cert {
        cmd.args(["--cert", &file(&format!("{cert}.crt")), "--key", &file(&format!("{cert}.key"))]);
    }
    cmd.output().expect("run flotilla")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn tls_cluster_serves_admins_joins_replicas_and_refuses_strangers() {
    require_etcdctl();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let pki = pki_init(dir, "pki");
    let members: Vec<Member> = ["n1", "n2", "n3"].iter().map(|n| member(n)).collect();
    let cluster: Vec<String> = members.iter().map(|m| format!("{}={}", m.name, m.peer)).collect();
    let cluster = cluster.join(",");
    let _procs: Vec<Proc> = members.iter().map(|m| server(dir, &pki, m, &["--initial-cluster", &cluster])).collect();
    let endpoints = members.iter().map(|m| m.client.as_str()).collect::<Vec<_>>().join(",");

    let status = wait_for(Duration::from_secs(30), "a leader over TLS", || {
        let out = cli(&pki, &endpoints, Some("admin"), &["status", "-o", "json"]);
        out.status.success().then(|| text(&out))
    });
    assert!(status.contains("\"leader\""), "{status}");

    // The etcd API: the admin's certificate is served; a user's is refused by name; none at all
    // fails the handshake.
    let file = |name: &str| pki.join(name).display().to_string();
    let etcdctl = |cert: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3").arg(format!("--endpoints={endpoints}")).arg(format!("--cacert={}", file("ca.crt")));
        if let Some(c) = cert {
            cmd.arg(format!("--cert={}", file(&format!("{c}.crt"))))
                .arg(format!("--key={}", file(&format!("{c}.key"))));
        }
        cmd.args(["--dial-timeout=3s", "--command-timeout=5s"]).args(args).output().expect("etcdctl")
    };
    let put = etcdctl(Some("admin"), &["put", "k", "v"]);
    assert!(put.status.success(), "admin put: {}", text(&put));
    let issued = Command::new(flotilla_bin())
        .args(["pki", "issue", "--dir"])
        .arg(&pki)
        .args(["--name", "dev", "--user", "jane", "--group", "dev"])
        .output()
        .expect("pki issue");
    assert!(issued.status.success(), "{}", text(&issued));
    let denied = etcdctl(Some("dev"), &["get", "k"]);
    assert!(!denied.status.success() && text(&denied).contains("system:masters"), "jane: {}", text(&denied));
    assert!(!etcdctl(None, &["get", "k"]).status.success(), "no certificate, no answer");

    // flotilla's own clients: the CA alone is not enough; snapshot save with the admin's.
    let anonymous = cli(&pki, &endpoints, None, &["member", "list"]);
    assert!(!anonymous.status.success(), "{}", text(&anonymous));
    let snap = dir.join("backup.db").display().to_string();
    let saved = cli(&pki, &endpoints, Some("admin"), &["snapshot", "save", &snap]);
    assert!(saved.status.success(), "snapshot save: {}", text(&saved));

    // A fourth replica joins with its peer certificate (the etcd API admits replicas).
    let n4 = member("n4");
    let _n4 = server(dir, &pki, &n4, &["--join", &endpoints]);
    wait_for(Duration::from_secs(40), "n4 joins and is promoted", || {
        let out = cli(&pki, &endpoints, Some("admin"), &["member", "list"]);
        let list = text(&out);
        (out.status.success() && list.lines().any(|l| l.contains("voter") && l.contains(" n4 "))).then_some(())
    });

    // A replica with a certificate of another CA cannot, even one that trusts the cluster's CA
    // (so that only the cluster's refusal stops it).
    let stranger_pki = pki_init(dir, "stranger");
    std::fs::copy(pki.join("ca.crt"), stranger_pki.join("ca.crt")).expect("trust the cluster's CA");
    let n5 = member("n5");
    let mut rogue = server(dir, &stranger_pki, &n5, &["--join", &endpoints]);
    let exited = wait_for(Duration::from_secs(30), "the stranger gives up", || rogue.0.try_wait().expect("wait"));
    assert!(!exited.success(), "the stranger's --join fails");
    let log = std::fs::read_to_string(dir.join("n5.log")).expect("log");
    assert!(log.contains("--join"), "{log}");
    let list = text(&cli(&pki, &endpoints, Some("admin"), &["member", "list"]));
    assert!(!list.contains("n5") && !list.contains(&n5.peer), "the stranger is not a member: {list}");
    let get = etcdctl(Some("admin"), &["get", "k", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "v", "{}", text(&get));
}
