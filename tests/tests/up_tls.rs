//! `flotilla up` is TLS by default: three replicas and an agent (process runtime) with
//! certificates from a CA made in `DIR/pki`, every URL in cluster.json `https://`, and the
//! kubeconfig as the admin. Through the load balancer kubectl works, including `logs`
//! (replica to agent over mutual TLS); without a certificate curl gets 401; etcdctl and
//! `flotilla status` work with the admin's certificate and are refused without one; plain
//! HTTP reaches nothing.

use std::process::Command;
use std::time::Duration;

use flotilla_tests::kube::{jsonpath, Kubectl};
use flotilla_tests::{etcdctl, flotilla_bin, wait_for, TlsFiles, UpCluster};

/// etcdctl (API v3) with `tls`'s CA and, if `admin`, the admin's certificate.
fn etcdctl_tls(endpoints: &str, tls: &TlsFiles, admin: bool, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3").env("ETCDCTL_CACERT", &tls.ca_file);
    if admin {
        cmd.env("ETCDCTL_CERT", &tls.cert_file).env("ETCDCTL_KEY", &tls.key_file);
    }
    cmd.args([&format!("--endpoints={endpoints}"), "--command-timeout=10s"]).args(args).output().expect("etcdctl runs")
}

#[test]
fn up_is_tls_everywhere_by_default() {
    flotilla_tests::require_etcdctl();
    let c = UpCluster::start_exactly(3, &["--agents", "1", "--agent-runtime", "process", "--no-demo"])
        .expect("cluster starts");
    let tls = c.tls.clone().expect("cluster.json names the cluster's CA and the admin's certificate");
    let lb = c.lb.as_ref().expect("a load balancer");
    for url in c.replicas.iter().flat_map(|r| [&r.client_url, &r.peer_url, &r.api_url]).chain([&lb.url]) {
        assert!(url.starts_with("https://"), "{url} in cluster.json");
    }

    // kubectl with up's kubeconfig, through the balancer: the agent's Node is Ready and a
    // pod's log comes back from the agent over mutual TLS.
    let k = Kubectl::with_kubeconfig(&c.dir.path().join("kubeconfig"));
    assert_eq!(k.ok(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]).trim(), "admin");
    k.ok(&["run", "hello", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo hello-from-tls; sleep 3600"]);
    wait_for(Duration::from_secs(60), "the pod's log through the balancer", || {
        let phase = jsonpath(&k, "default", &["pod", "hello"], "{.status.phase}");
        let logs = k.run(&["logs", "hello"], None);
        (phase == "Running" && String::from_utf8_lossy(&logs.stdout).contains("hello-from-tls")).then_some(())
    });

    // The same server and CA without a client certificate: 401. (kubectl would prompt for
    // a password instead of showing it.)
    let anonymous = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&tls.ca_file)
        .arg(format!("{}/api/v1/pods", lb.url))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout), "401");

    // etcdctl: served with the admin's certificate, refused without one.
    let endpoints = c.endpoints();
    let put = etcdctl_tls(&endpoints, &tls, true, &["put", "greeting", "hello"]);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let get = etcdctl_tls(&endpoints, &tls, true, &["get", "greeting", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "hello");
    let no_cert = etcdctl_tls(&endpoints, &tls, false, &["get", "greeting"]);
    assert!(!no_cert.status.success(), "etcdctl without a client certificate was served");
    let plain = etcdctl(&endpoints.replace("https://", "http://"), &["get", "greeting"], None).expect("etcdctl runs");
    assert!(!plain.status.success(), "plain etcdctl was served");

    // flotilla status with the variables up prints.
    let status = Command::new(flotilla_bin())
        .args(["status", "--endpoints", &endpoints, "-o", "json"])
        .env("FLOTILLA_CACERT", &tls.ca_file)
        .env("FLOTILLA_CERT", &tls.cert_file)
        .env("FLOTILLA_KEY", &tls.key_file)
        .output()
        .expect("flotilla status runs");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

    // Plain HTTP to the balancer gets no Kubernetes answer.
    let port: u16 = lb.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("the balancer's port");
    let answer = flotilla_tests::http_get(port, "/api/v1/namespaces", Duration::from_secs(5)).unwrap_or_default();
    assert!(!answer.contains("NamespaceList"), "plain HTTP was served: {answer}");
}
