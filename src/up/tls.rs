//! The certificates of a cluster `flotilla up` runs, which is TLS everywhere unless
//! `--insecure-plaintext`: `DIR/pki` holds a CA made for this cluster, the replicas'
//! certificate (127.0.0.1 and localhost, group `system:flotilla-replicas`; used for the
//! Kubernetes API, the etcd API and Raft) and the admin's client certificate
//! (`system:masters`), which the kubeconfig, `up` itself and the printed commands use.
//! Agents join as a real install's would: with a bootstrap token `up` creates (24 h), each
//! gets its node certificate from the replicas, which hold the CA key
//! (`--cluster-signing-key-file`), and renews it itself.
//!
//! The replicas also sign ServiceAccount tokens with `DIR/pki/sa.key`, so pods find a token
//! at /var/run/secrets/kubernetes.io/serviceaccount and `kubectl create token` works.
//!
//! Every listener then requires a certificate from this CA: the etcd API admits only the
//! admin and the replicas (`--client-cert-auth`), Raft only the replicas, the Kubernetes API
//! authenticates by certificate and refuses anonymous requests, and the agents' endpoints
//! admit only replicas and admins.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::dial::ClientTls;

/// The hosts the replicas' certificate covers: `up` binds every port on loopback.
const HOSTS: [&str; 2] = ["127.0.0.1", "localhost"];

/// `cluster.json`'s `"tls"`: where a client finds what it needs to talk to the cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TlsInfo {
    /// The cluster's CA: verify the replicas' certificates with it.
    pub ca_file: PathBuf,
    /// The admin's client certificate (user `admin`, group `system:masters`).
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
    /// The bootstrap token the agents join with.
    #[serde(default)]
    pub join_token: String,
}

impl TlsInfo {
    fn dir(&self) -> &Path {
        self.ca_file.parent().unwrap_or(Path::new("."))
    }

    /// A CA and the replicas' and the admin's certificates in `dir`, and a join token. A CA
    /// already there (from an `up` that failed before it wrote cluster.json) is kept; the
    /// certificates are issued again.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        let hosts: Vec<String> = HOSTS.iter().map(|h| h.to_string()).collect();
        let ca = if dir.join("ca.crt").exists() {
            flotilla_pki::Ca::load(dir).context("the CA left in DIR/pki")?
        } else {
            crate::pki::new_ca(dir)?
        };
        crate::pki::issue_replicas_and_admin(&ca, dir, &hosts, VALIDITY)?;
        crate::pki::service_account_key(dir)?;
        Ok(Self {
            ca_file: dir.join("ca.crt"),
            cert_file: dir.join("admin.crt"),
            key_file: dir.join("admin.key"),
            join_token: crate::token::generate(),
        })
    }

    /// TLS as the admin, for `up`'s own requests.
    pub fn client(&self) -> anyhow::Result<ClientTls> {
        ClientTls::from_files(&self.ca_file, Some((&self.cert_file, &self.key_file)))
    }

    /// The same for the etcd API.
    pub fn etcd_options(&self) -> anyhow::Result<etcd_client::TlsOptions> {
        let read = |p: &Path| flotilla_pki::read_pem(p).with_context(|| format!("reading {}", p.display()));
        let identity = (read(&self.cert_file)?, read(&self.key_file)?);
        Ok(crate::etcd_tls::tls_options(&read(&self.ca_file)?, Some(identity)))
    }

    /// A replica's flags: every port TLS with the replicas' certificate, clients checked
    /// against the CA.
    pub fn replica_flags(&self) -> Vec<String> {
        let (ca, cert, key) =
            (path(&self.ca_file), path(&self.dir().join("server.crt")), path(&self.dir().join("server.key")));
        let pairs = [
            ("--cert-file", &cert),
            ("--key-file", &key),
            ("--trusted-ca-file", &ca),
            ("--peer-cert-file", &cert),
            ("--peer-key-file", &key),
            ("--peer-trusted-ca-file", &ca),
            ("--tls-cert-file", &cert),
            ("--tls-private-key-file", &key),
            ("--client-ca-file", &ca),
            ("--cluster-signing-cert-file", &ca),
            ("--cluster-signing-key-file", &path(&self.dir().join("ca.key"))),
        ];
        let mut flags: Vec<String> = pairs.iter().flat_map(|(f, v)| [f.to_string(), v.to_string()]).collect();
        flags.extend(["--client-cert-auth".into(), "--enable-bootstrap-token-auth".into()]);
        // A cluster made before `up` made this key resumes without ServiceAccount tokens.
        let sa_key = self.dir().join(crate::pki::SERVICE_ACCOUNT_KEY);
        if sa_key.exists() {
            flags.extend(["--service-account-signing-key-file".into(), path(&sa_key)]);
        }
        flags
    }

    /// An agent's flags: the CA to verify the replicas with. The join token goes in its
    /// environment ([`TlsInfo::agent_env`]), not on its command line, which every user of
    /// the machine can read.
    pub fn agent_flags(&self) -> Vec<String> {
        vec!["--api-ca-file".into(), path(&self.ca_file)]
    }

    /// An agent's environment: the join token, which it needs until it has a certificate.
    pub fn agent_env(&self) -> Vec<(String, String)> {
        vec![("FLOTILLA_TOKEN".into(), self.join_token.clone())]
    }
}

/// How long `up`'s certificates are valid (`flotilla pki`'s default).
const VALIDITY: std::time::Duration = crate::pki::VALIDITY;

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The scheme of every URL `up` plans.
pub fn scheme(tls: Option<&TlsInfo>) -> &'static str {
    if tls.is_some() {
        "https"
    } else {
        "http"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_replica_port_gets_a_certificate_and_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsInfo::create(dir.path()).unwrap();
        let flags = tls.replica_flags();
        let flagged = ["--cert-file", "--peer-cert-file", "--tls-cert-file", "--client-ca-file", "--client-cert-auth"];
        for flag in flagged.into_iter().chain(["--cluster-signing-key-file", "--service-account-signing-key-file"]) {
            assert!(flags.iter().any(|f| f == flag), "{flag} missing from {flags:?}");
        }
        for file in flags.iter().filter(|f| f.starts_with('/')) {
            assert!(Path::new(file).exists(), "{file}");
        }
        assert!(!tls.agent_flags().contains(&tls.join_token), "the token is not on the command line");
        assert_eq!(tls.agent_env(), [("FLOTILLA_TOKEN".to_string(), tls.join_token.clone())]);
        let id = |name: &str| {
            let pem = std::fs::read_to_string(dir.path().join(name)).unwrap();
            flotilla_pki::cert_identity(&flotilla_pki::certificates_der(&pem).unwrap()[0]).unwrap()
        };
        assert!(id("admin.crt").in_any(&[flotilla_pki::MASTERS_GROUP]));
        assert!(id("server.crt").in_any(&[flotilla_pki::REPLICAS_GROUP]));
        use std::os::unix::fs::PermissionsExt;
        let sa_key = dir.path().join(crate::pki::SERVICE_ACCOUNT_KEY);
        assert_eq!(std::fs::metadata(&sa_key).unwrap().permissions().mode() & 0o777, 0o600);
        // A second run over the same directory keeps the CA and the token key.
        let (ca_before, sa_before) = (std::fs::read(&tls.ca_file).unwrap(), std::fs::read(&sa_key).unwrap());
        TlsInfo::create(dir.path()).unwrap();
        assert_eq!(std::fs::read(&tls.ca_file).unwrap(), ca_before);
        assert_eq!(std::fs::read(&sa_key).unwrap(), sa_before);
    }
}
