//! TLS flags of the store's ports (etcd's names), and what they resolve to.
//!
//! Rules (checked before anything listens; bad combinations are errors that name the flag):
//! - `https://` peer URLs (listen, advertise and every `--initial-cluster` member alike) need
//!   `--peer-cert-file`, `--peer-key-file` and `--peer-trusted-ca-file`: peers always
//!   authenticate each other, and only certificates in `system:flotilla-replicas` may speak
//!   Raft. `http://` peer URLs take none of these flags.
//! - `https://` client URLs (all of them, or none) need `--cert-file` and `--key-file`;
//!   `--client-cert-auth` with `--trusted-ca-file` then admits only admins
//!   (`system:masters`) and replicas. `http://` client URLs take none of these flags.
//! - Certificate files are followed: a renewed pair is presented to new connections within
//!   seconds, without a restart ([`flotilla_pki::reload`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use flotilla_store::tls::{ClientTls, PeerTls, StoreTls};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct StoreSecurityArgs {
    /// The replica's certificate on the peer port, also presented to its peers (PEM; it
    /// must carry the group system:flotilla-replicas). Needed for https:// peer URLs.
    #[arg(long, env = "FLOTILLA_PEER_CERT_FILE", value_name = "FILE")]
    pub peer_cert_file: Option<PathBuf>,
    /// The private key of --peer-cert-file (PEM).
    #[arg(long, env = "FLOTILLA_PEER_KEY_FILE", value_name = "FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// The CA that signs every replica's peer certificate (PEM).
    #[arg(long, env = "FLOTILLA_PEER_TRUSTED_CA_FILE", value_name = "FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// The certificate the etcd client API presents (PEM). Needed for https:// client URLs.
    #[arg(long, env = "FLOTILLA_CERT_FILE", value_name = "FILE")]
    pub cert_file: Option<PathBuf>,
    /// The private key of --cert-file (PEM).
    #[arg(long, env = "FLOTILLA_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The CA whose client certificates --client-cert-auth accepts (PEM).
    #[arg(long, env = "FLOTILLA_TRUSTED_CA_FILE", value_name = "FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Require client certificates on the etcd client API; only system:masters and
    /// replicas are then served (the API exposes every raw key).
    #[arg(long, env = "FLOTILLA_CLIENT_CERT_AUTH", default_value_t = false)]
    pub client_cert_auth: bool,
}

impl StoreSecurityArgs {
    /// The ports' TLS, given whether the peer URLs and the client URLs are `https`.
    pub fn resolve(&self, peer_https: bool, client_https: bool) -> anyhow::Result<StoreTls> {
        if self.client_cert_auth && !peer_https {
            // The peer port forwards writes to the leader and ships snapshots: left plain, it
            // would hand anyone what the etcd API guards.
            bail!("--client-cert-auth needs https:// peer URLs too (a plain peer port would bypass it)");
        }
        if peer_https && !client_https {
            tracing::warn!("plain http:// client URLs: anyone who reaches them may use the etcd API (every raw key)");
        }
        Ok(StoreTls { peer: self.peer(peer_https)?, client: self.client(client_https)? })
    }

    fn peer(&self, https: bool) -> anyhow::Result<Option<PeerTls>> {
        let files = [
            ("--peer-cert-file", &self.peer_cert_file),
            ("--peer-key-file", &self.peer_key_file),
            ("--peer-trusted-ca-file", &self.peer_trusted_ca_file),
        ];
        if !https {
            refuse_without_https(&files, "peer URLs")?;
            return Ok(None);
        }
        let [cert, key, ca] = files.map(|(flag, path)| read(flag, path.as_ref(), "https:// peer URLs"));
        let tls = PeerTls::from_pem(&cert?, &key?, &ca?)
            .context("--peer-cert-file, --peer-key-file and --peer-trusted-ca-file")?;
        Ok(Some(tls.following(&follow(&self.peer_cert_file, &self.peer_key_file)?)))
    }

    fn client(&self, https: bool) -> anyhow::Result<Option<ClientTls>> {
        if !https {
            refuse_without_https(
                &[
                    ("--cert-file", &self.cert_file),
                    ("--key-file", &self.key_file),
                    ("--trusted-ca-file", &self.trusted_ca_file),
                ],
                "client URLs",
            )?;
            if self.client_cert_auth {
                bail!("--client-cert-auth needs https:// client URLs");
            }
            return Ok(None);
        }
        let cert = read("--cert-file", self.cert_file.as_ref(), "https:// client URLs")?;
        let key = read("--key-file", self.key_file.as_ref(), "https:// client URLs")?;
        let ca = match (self.client_cert_auth, &self.trusted_ca_file) {
            (true, Some(path)) => Some(read("--trusted-ca-file", Some(path), "")?),
            (true, None) => bail!("--client-cert-auth needs --trusted-ca-file"),
            (false, Some(_)) => bail!("--trusted-ca-file takes effect only with --client-cert-auth"),
            (false, None) => {
                tracing::warn!("https:// client URLs without --client-cert-auth: anyone who reaches them may use the etcd API (every raw key)");
                None
            }
        };
        let tls =
            ClientTls::from_pem(&cert, &key, ca.as_deref()).context("--cert-file, --key-file and --trusted-ca-file")?;
        Ok(Some(tls.following(&follow(&self.cert_file, &self.key_file)?)))
    }
}

impl StoreSecurityArgs {
    /// How `--join` calls the cluster's etcd API: presenting the peer certificate, when
    /// there is one.
    pub fn join_tls(&self) -> anyhow::Result<Option<etcd_client::TlsOptions>> {
        let (Some(cert), Some(key), Some(ca)) = (&self.peer_cert_file, &self.peer_key_file, &self.peer_trusted_ca_file)
        else {
            return Ok(None);
        };
        let identity = (read("--peer-cert-file", Some(cert), "")?, read("--peer-key-file", Some(key), "")?);
        Ok(Some(crate::etcd_tls::tls_options(&read("--peer-trusted-ca-file", Some(ca), "")?, Some(identity))))
    }
}

/// The certificate files, followed for renewals (both paths are known to be set here).
fn follow(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> anyhow::Result<Arc<flotilla_pki::CertFiles>> {
    let (Some(cert), Some(key)) = (cert, key) else { bail!("a certificate and its key are needed") };
    flotilla_pki::CertFiles::load(cert, key).with_context(|| format!("{} and {}", cert.display(), key.display()))
}

fn refuse_without_https(files: &[(&str, &Option<PathBuf>)], urls: &str) -> anyhow::Result<()> {
    match files.iter().find(|(_, path)| path.is_some()) {
        Some((flag, _)) => bail!("{flag} needs https:// {urls}"),
        None => Ok(()),
    }
}

fn read(flag: &str, path: Option<&PathBuf>, needed_for: &str) -> anyhow::Result<String> {
    let path = path.with_context(|| format!("{needed_for} need {flag}"))?;
    flotilla_pki::read_pem(path).with_context(|| flag.to_string())
}

/// Whether all of `urls` are `https://` (`true`) or all `http://` (`false`); a mix is an error.
pub fn all_https<S: AsRef<str>>(what: &str, urls: &[S]) -> anyhow::Result<bool> {
    let https = urls.iter().filter(|u| u.as_ref().starts_with("https://")).count();
    match https {
        0 => Ok(false),
        n if n == urls.len() => Ok(true),
        _ => bail!("{what}: mixes http:// and https:// URLs; use one scheme"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_take_no_tls_flags() {
        assert!(StoreSecurityArgs::default().resolve(false, false).is_ok());
        let peer = StoreSecurityArgs { peer_cert_file: Some("p.crt".into()), ..Default::default() };
        let err = peer.resolve(false, false).err().expect("refused").to_string();
        assert!(err.contains("--peer-cert-file needs https:// peer URLs"), "{err}");
        let auth = StoreSecurityArgs { client_cert_auth: true, ..Default::default() };
        assert!(auth.resolve(false, false).is_err());
    }

    #[test]
    fn https_needs_the_files() {
        let err = format!("{:#}", StoreSecurityArgs::default().resolve(true, false).err().expect("refused"));
        assert!(err.contains("https:// peer URLs need --peer-cert-file"), "{err}");
        let err = format!("{:#}", StoreSecurityArgs::default().resolve(false, true).err().expect("refused"));
        assert!(err.contains("https:// client URLs need --cert-file"), "{err}");
    }

    #[test]
    fn client_certificate_authentication_needs_a_tls_peer_port() {
        let auth = StoreSecurityArgs {
            cert_file: Some("c.crt".into()),
            key_file: Some("c.key".into()),
            trusted_ca_file: Some("ca.crt".into()),
            client_cert_auth: true,
            ..Default::default()
        };
        let err = auth.resolve(false, true).err().expect("refused").to_string();
        assert!(err.contains("--client-cert-auth needs https:// peer URLs"), "{err}");
    }

    #[test]
    fn a_mix_of_schemes_is_refused() {
        assert!(!all_https("x", &["http://a:1", "http://b:1"]).expect("plain"));
        assert!(all_https("x", &["https://a:1"]).expect("tls"));
        assert!(all_https("--listen-client-urls", &["http://a:1", "https://b:1"]).is_err());
    }
}
