//! Certificate renewal without downtime: a replica serving the Kubernetes API over TLS gets
//! its server certificate renewed on disk (`flotilla pki issue` over the same files), and
//! presents the new one to new connections within seconds, while kubectl keeps working.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use flotilla_tests::secure::{flotilla_ok, SecureSolo};
use flotilla_tests::wait_for;

/// The SHA-256 fingerprint of a PEM certificate (openssl's output line).
fn fingerprint(pem: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    child.stdin.take().expect("stdin").write_all(pem).expect("write");
    let out = child.wait_with_output().expect("openssl x509 output");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The fingerprint of the certificate the server at `host:port` presents to a new connection.
fn presented(addr: &str) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", "127.0.0.1"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----").expect("a certificate in the handshake");
    let end = text.find("-----END CERTIFICATE-----").expect("its end") + "-----END CERTIFICATE-----".len();
    fingerprint(text[begin..end].as_bytes())
}

#[test]
fn a_renewed_server_certificate_is_presented_without_a_restart() {
    let s = SecureSolo::start(&[]);
    let addr = s.solo.api.trim_start_matches("https://").to_string();
    let file = s.pki.join("server.crt");
    let before = fingerprint(&std::fs::read(&file).expect("read"));
    assert_eq!(presented(&addr), before, "the certificate from pki init");

    let dir = s.pki.display().to_string();
    flotilla_ok(&[
        "pki",
        "issue",
        "--dir",
        &dir,
        "--name",
        "server",
        "--host",
        "127.0.0.1,localhost",
        "--group",
        "system:flotilla-replicas",
        "--validity",
        "48h",
    ]);
    let after = fingerprint(&std::fs::read(&file).expect("read"));
    assert_ne!(after, before, "a new certificate was written");
    wait_for(Duration::from_secs(30), "the renewed certificate is presented", || {
        (presented(&addr) == after).then_some(())
    });
    // No restart, no failed request: the same process answers with the new certificate.
    s.admin.ok(&["get", "namespaces"]);
}
