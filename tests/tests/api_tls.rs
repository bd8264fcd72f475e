//! The Kubernetes API over TLS with authentication, end to end: certificates from
//! `flotilla pki`, one `flotilla server` with an https:// API, and the real kubectl as the
//! admin (kubeconfig with a client certificate), as a certificate user, with bearer tokens,
//! and without credentials.

use std::path::Path;
use std::process::Command;

use flotilla_tests::kube::Kubectl;
use flotilla_tests::solo::Solo;
use flotilla_tests::{flotilla_bin, free_port};

fn flotilla_ok(args: &[&str]) -> String {
    let out = Command::new(flotilla_bin()).args(args).output().expect("flotilla runs");
    assert!(out.status.success(), "flotilla {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A kubectl for `server` trusting the CA in `pki`, with `credentials` flags.
fn kubectl_as(server: &str, pki: &Path, credentials: &[String]) -> impl Fn(&[&str]) -> std::process::Output {
    let k = Kubectl::new(server);
    let mut base = vec![format!("--certificate-authority={}", pki.join("ca.crt").display())];
    base.extend_from_slice(credentials);
    move |args: &[&str]| {
        let mut all: Vec<&str> = base.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        k.run(&all, None)
    }
}

/// `GET path` over TLS without credentials, trusting the CA in `pki`: status and body.
fn https_get(server: &str, pki: &Path, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let ca = flotilla_pki::read_pem(&pki.join("ca.crt")).expect("the CA");
    let config = flotilla_pki::client_config(&ca, None).expect("a client config");
    let addr = server.strip_prefix("https://").expect("an https URL");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a server name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("a TLS client");
    let mut tls = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(addr).expect("connect"));
    write!(tls, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("request sent");
    let mut response = Vec::new();
    // A server closing without close_notify is fine here: the whole response is in.
    let _ = tls.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One replica with an https:// API: certificates from `flotilla pki` (admin, and jane in
/// groups dev and qa), bob's token, an audit log; with the admin's kubectl.
struct Secure {
    // Fields drop in order: the server stops before its directory goes.
    solo: Solo,
    admin: Kubectl,
    pki: std::path::PathBuf,
    audit: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Secure {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        let mut solo = Solo::new(dir.path());
        solo.api = format!("https://127.0.0.1:{}", free_port());
        flotilla_ok(&["pki", "init", "--dir", path(&pki), "--host", "127.0.0.1,localhost", "--server", &solo.api]);
        flotilla_ok(&["pki", "issue", "--dir", path(&pki), "--name", "jane", "--user", "jane", "--group", "dev,qa"]);
        let again = Command::new(flotilla_bin()).args(["pki", "init", "--dir", path(&pki)]).output().expect("runs");
        assert!(!again.status.success(), "a second init must not replace the CA");
        assert!(stderr(&again).contains("already holds a CA"), "{}", stderr(&again));
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(&tokens, "# bootstrap\nt0ken-bob,bob,uid-bob,\"ops\"\n").expect("token file");
        let audit = dir.path().join("audit.log");

        let admin = Kubectl::with_kubeconfig(&pki.join("admin.kubeconfig"));
        let flags = [
            format!("--tls-cert-file={}", pki.join("server.crt").display()),
            format!("--tls-private-key-file={}", pki.join("server.key").display()),
            format!("--client-ca-file={}", pki.join("ca.crt").display()),
            format!("--token-auth-file={}", tokens.display()),
            format!("--audit-log-path={}", audit.display()),
        ];
        solo.start_checked_by(&flags.iter().map(String::as_str).collect::<Vec<_>>(), &admin);
        Self { solo, admin, pki, audit, dir }
    }

    /// A kubectl as jane (her client certificate).
    fn jane(&self) -> impl Fn(&[&str]) -> std::process::Output {
        let pki = &self.pki;
        kubectl_as(
            &self.solo.api,
            pki,
            &[
                format!("--client-certificate={}", pki.join("jane.crt").display()),
                format!("--client-key={}", pki.join("jane.key").display()),
            ],
        )
    }

    /// A kubectl as bob (his bearer token).
    fn bob(&self) -> impl Fn(&[&str]) -> std::process::Output {
        kubectl_as(&self.solo.api, &self.pki, &["--token=t0ken-bob".to_string()])
    }
}

#[test]
fn kubectl_is_authenticated_by_certificate_or_token_and_refused_without_credentials() {
    let s = Secure::start();
    let (admin, pki, solo) = (&s.admin, &s.pki, &s.solo);
    // The admin's kubeconfig (client certificate, group system:masters) reads and writes.
    admin.ok(&["create", "namespace", "secure"]);
    assert_eq!(admin.ok(&["get", "namespace", "secure", "-o", "jsonpath={.metadata.name}"]), "secure");
    let whoami = admin.ok(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"]);
    assert_eq!(whoami, r#"admin ["system:masters","system:authenticated"]"#);
    let line = std::fs::read_to_string(&s.audit).expect("audit log");
    let created: serde_json::Value = serde_json::from_str(line.lines().next().expect("one line")).expect("JSON");
    assert_eq!(created["user"]["username"], "admin", "the audit log names the certificate's user: {created}");

    // A certificate user, and a token user.
    let jane = s.jane();
    // Every authenticated user may ask who it is (system:basic-user, bound once the default
    // roles exist, moments after the first start).
    let mut out = jane(&["auth", "whoami"]);
    let asked = flotilla_tests::eventually(std::time::Duration::from_secs(20), || {
        out = jane(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"]);
        out.status.success()
    });
    assert!(asked, "{}", stderr(&out));
    assert_eq!(stdout(&out), r#"jane ["dev","qa","system:authenticated"]"#, "{}", stderr(&out));
    let bob = s.bob();
    let out = bob(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.uid}"]);
    assert_eq!(stdout(&out), "bob uid-bob", "{}", stderr(&out));

    // A token that is not in the file: 401, which kubectl reports as such.
    let out = kubectl_as(&solo.api, pki, &["--token=guess".to_string()])(&["get", "namespaces"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("You must be logged in to the server"), "{}", stderr(&out));
    // No credentials at all (kubectl would stop to ask for a user name): 401 with upstream's
    // Status, but the health probes stay open to load balancers.
    let (code, body) = https_get(&solo.api, pki, "/api/v1/namespaces");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains(r#""reason":"Unauthorized""#), "{body}");
    assert_eq!(https_get(&solo.api, pki, "/readyz"), (200, "ok".to_string()));

    // A certificate from another CA fails the handshake; a client that does not trust the
    // cluster's CA refuses the server.
    let other = s.dir.path().join("other-pki");
    flotilla_ok(&["pki", "init", "--dir", path(&other)]);
    let stranger = kubectl_as(
        &solo.api,
        pki,
        &[
            format!("--client-certificate={}", other.join("admin.crt").display()),
            format!("--client-key={}", other.join("admin.key").display()),
        ],
    );
    let out = stranger(&["get", "namespaces"]);
    assert!(!out.status.success(), "a foreign certificate must not be served");
    // rustls refuses the signature it cannot verify with a decrypt_error alert.
    assert!(stderr(&out).contains("remote error: tls: error decrypting message"), "{}", stderr(&out));
    let untrusting = Kubectl::new(&solo.api).run(&["--token=t0ken-bob", "get", "namespaces"], None);
    assert!(stderr(&untrusting).contains("x509: certificate signed by unknown authority"), "{}", stderr(&untrusting));
}

#[test]
fn rbac_decides_what_each_user_may_do_and_who_may_impersonate() {
    let s = Secure::start();
    let (admin, jane, bob) = (&s.admin, s.jane(), s.bob());
    admin.ok(&["create", "namespace", "secure"]);
    // jane is authenticated as soon as the default roles let her ask who she is.
    wait_until_ok(&jane, &["auth", "whoami"]);
    // RBAC: jane may do nothing until a binding says so; then exactly what `view` allows, in
    // that namespace only.
    let out = jane(&["get", "namespaces"]);
    assert!(
        stderr(&out).contains(
            r#"namespaces is forbidden: User "jane" cannot list resource "namespaces" in API group "" at the cluster scope"#
        ),
        "{}",
        stderr(&out)
    );
    admin.ok(&["create", "rolebinding", "dev-view", "--clusterrole=view", "--group=dev", "-n", "secure"]);
    admin.ok(&["create", "role", "cm-maker", "--verb=create", "--resource=configmaps", "-n", "secure"]);
    admin.ok(&["create", "rolebinding", "bob-cm", "--role=cm-maker", "--user=bob", "-n", "secure"]);
    let out = jane(&["-n", "secure", "get", "pods"]);
    assert!(out.status.success(), "view lists pods: {}", stderr(&out));
    let out = jane(&["-n", "secure", "create", "configmap", "nope"]);
    assert!(stderr(&out).contains(r#"User "jane" cannot create resource "configmaps""#), "{}", stderr(&out));
    let out = jane(&["-n", "default", "get", "pods"]);
    assert!(stderr(&out).contains("forbidden"), "the binding is namespaced: {}", stderr(&out));
    let can_i = |who: &dyn Fn(&[&str]) -> std::process::Output, args: &[&str]| {
        let out = who(&[&["auth", "can-i"], args].concat());
        (stdout(&out).trim().to_string(), out.status.code())
    };
    assert_eq!(can_i(&jane, &["list", "pods", "-n", "secure"]), ("yes".to_string(), Some(0)));
    assert_eq!(can_i(&jane, &["create", "configmaps", "-n", "secure"]), ("no".to_string(), Some(1)));
    assert_eq!(can_i(&jane, &["get", "secrets", "-n", "secure"]), ("no".to_string(), Some(1)));
    let out = bob(&["-n", "secure", "create", "configmap", "made-by-bob"]);
    assert!(out.status.success(), "bob's Role lets him create ConfigMaps: {}", stderr(&out));
    // Server-side apply creates a missing object: only for those who may create.
    admin.ok(&["create", "role", "cm-patcher", "--verb=patch,get", "--resource=configmaps", "-n", "secure"]);
    admin.ok(&["create", "rolebinding", "jane-patch", "--role=cm-patcher", "--user=jane", "-n", "secure"]);
    let manifest = s.dir.path().join("by-apply.json");
    let cm = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "by-apply", "namespace": "secure"}}"#;
    std::fs::write(&manifest, cm).expect("manifest");
    let out = jane(&["apply", "--server-side", "-f", manifest.to_str().expect("UTF-8")]);
    assert!(
        stderr(&out).contains(r#"User "jane" cannot create resource "configmaps""#),
        "an apply patch may not create without create: {}",
        stderr(&out)
    );
    // Granting a role needs `bind` on it, changing roles `escalate`: an admin of the
    // namespace cannot hand out cluster-admin there.
    admin.ok(&["create", "rolebinding", "jane-admin", "--clusterrole=admin", "--user=jane", "-n", "secure"]);
    let out = jane(&["-n", "secure", "create", "rolebinding", "grab", "--clusterrole=cluster-admin", "--user=jane"]);
    assert!(stderr(&out).contains(r#"cannot bind resource "rolebindings""#), "{}", stderr(&out));
    admin.ok(&["delete", "rolebinding", "jane-admin", "-n", "secure"]);
    assert_eq!(can_i(&bob, &["delete", "configmaps", "-n", "secure"]), ("no".to_string(), Some(1)));
    assert_eq!(admin.ok(&["auth", "can-i", "*", "*", "--all-namespaces"]).trim(), "yes");

    // Impersonation: the admin acts as jane (with her group), jane may not act as anyone.
    let as_jane = ["--as=jane", "--as-group=dev"];
    assert_eq!(admin.ok(&[&as_jane[..], &["auth", "can-i", "list", "pods", "-n", "secure"]].concat()).trim(), "yes");
    let out = admin.run(&[&as_jane[..], &["auth", "can-i", "create", "configmaps", "-n", "secure"]].concat(), None);
    assert_eq!(stdout(&out).trim(), "no", "{}", stderr(&out));
    let whoami = admin.ok(&["--as=jane", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(whoami, "jane");
    // The audit log names both: the admin who asked, bob as whom the write was made.
    admin.ok(&["--as=bob", "-n", "secure", "create", "configmap", "via-admin"]);
    let log = std::fs::read_to_string(&s.audit).expect("audit log");
    let events: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let event = events
        .iter()
        .find(|e| e["objectRef"]["resource"] == "configmaps" && e["impersonatedUser"].is_object())
        .expect("the impersonated create is audited");
    assert_eq!(
        (event["user"]["username"].as_str(), event["impersonatedUser"]["username"].as_str()),
        (Some("admin"), Some("bob")),
        "{event}"
    );
    let out = jane(&["--as=admin", "get", "pods", "-n", "secure"]);
    assert!(
        stderr(&out).contains(r#"users "admin" is forbidden: User "jane" cannot impersonate resource "users""#),
        "{}",
        stderr(&out)
    );
}

/// Retry `args` until they succeed (at most 20 s).
fn wait_until_ok(k: &dyn Fn(&[&str]) -> std::process::Output, args: &[&str]) {
    let mut out = k(args);
    let ok = flotilla_tests::eventually(std::time::Duration::from_secs(20), || {
        out = k(args);
        out.status.success()
    });
    assert!(ok, "{args:?}: {}", stderr(&out));
}

#[test]
fn security_flags_without_https_or_a_key_stop_the_server_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let solo = Solo::new(dir.path());
    let run = |api: &str, extra: &[&str]| {
        let out = Command::new(flotilla_bin())
            .args(["server", "--name", "solo", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &solo.client, "--listen-peer-urls", &solo.peer, "--listen-api-url", api])
            .arg("--insecure-plaintext")
            .args(extra)
            .output()
            .expect("flotilla runs");
        assert!(!out.status.success(), "the server must refuse {extra:?}");
        stderr(&out)
    };
    let err = run(&solo.api, &["--token-auth-file=/tmp/tokens.csv"]);
    assert!(err.contains("--token-auth-file needs an https:// --listen-api-url"), "{err}");
    let https = solo.api.replace("http://", "https://");
    let err = run(&https, &[]);
    assert!(err.contains("needs --tls-cert-file and --tls-private-key-file"), "{err}");
}
