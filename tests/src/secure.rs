//! One replica serving the Kubernetes API over TLS, with certificates from `flotilla pki`:
//! the admin's kubectl, and kubectls for more client certificates (users and groups of a
//! test's choosing, e.g. a node's `system:node:<name>` in `system:nodes`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kube::Kubectl;
use crate::solo::Solo;
use crate::{flotilla_bin, free_port};

/// `flotilla <args>`, which must succeed; its stdout.
pub fn flotilla_ok(args: &[&str]) -> String {
    let out = Command::new(flotilla_bin()).args(args).output().expect("flotilla runs");
    assert!(out.status.success(), "flotilla {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A replica with an https:// API, client certificates verified against the CA that
/// `flotilla pki init` made in `pki`.
pub struct SecureSolo {
    // Fields drop in order: the server stops before its directory goes.
    pub solo: Solo,
    /// The admin (group `system:masters`), through the kubeconfig `pki init` wrote.
    pub admin: Kubectl,
    pub pki: PathBuf,
    pub dir: tempfile::TempDir,
}

impl SecureSolo {
    /// Make the CA, start the replica with `extra` flags, return once the admin is answered.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_inner(extra, None)
    }

    /// Same, the replica also signing node certificates, valid for `duration` (e.g. `40s`),
    /// with the CA (`--cluster-signing-cert-file` and `--cluster-signing-key-file`).
    pub fn start_signing(duration: &str) -> Self {
        Self::start_inner(&[], Some(duration))
    }

    fn start_inner(extra: &[&str], signing: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        let mut solo = Solo::new(dir.path());
        solo.api = format!("https://127.0.0.1:{}", free_port());
        flotilla_ok(&["pki", "init", "--dir", utf8(&pki), "--host", "127.0.0.1,localhost", "--server", &solo.api]);
        let admin = Kubectl::with_kubeconfig(&pki.join("admin.kubeconfig"));
        let mut flags = vec![
            format!("--tls-cert-file={}", pki.join("server.crt").display()),
            format!("--tls-private-key-file={}", pki.join("server.key").display()),
            format!("--client-ca-file={}", pki.join("ca.crt").display()),
        ];
        if let Some(duration) = signing {
            flags.push(format!("--cluster-signing-cert-file={}", pki.join("ca.crt").display()));
            flags.push(format!("--cluster-signing-key-file={}", pki.join("ca.key").display()));
            flags.push(format!("--cluster-signing-duration={duration}"));
            flags.push("--enable-bootstrap-token-auth".into());
        }
        flags.extend(extra.iter().map(|f| f.to_string()));
        solo.start_checked_by(&flags.iter().map(String::as_str).collect::<Vec<_>>(), &admin);
        Self { solo, admin, pki, dir }
    }

    /// A kubectl for a new client certificate of `user` in `groups`: `pki/<name>.crt` and
    /// `.key`, and a kubeconfig naming them, `pki/<name>.kubeconfig`.
    pub fn client(&self, name: &str, user: &str, groups: &[&str]) -> Kubectl {
        let dir = utf8(&self.pki);
        let mut args = vec!["pki", "issue", "--dir", dir, "--name", name, "--user", user];
        let groups = groups.join(",");
        if !groups.is_empty() {
            args.extend(["--group", &groups]);
        }
        flotilla_ok(&args);
        let file = |ext: &str| self.pki.join(format!("{name}.{ext}")).display().to_string();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: flotilla\n  cluster:\n    server: {}\n    \
             certificate-authority: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: flotilla\n    user: {name}\n\
             current-context: {name}\nusers:\n- name: {name}\n  user:\n    client-certificate: {}\n    client-key: {}\n",
            self.solo.api,
            self.pki.join("ca.crt").display(),
            file("crt"),
            file("key"),
        );
        let path = self.pki.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, kubeconfig).expect("writing a kubeconfig");
        Kubectl::with_kubeconfig(&path)
    }
}
