//! The Kubernetes API listener's TLS and authentication flags (kube-apiserver's names), and
//! what they resolve to.
//!
//! Rules (checked before anything listens; bad combinations are errors that name the flag):
//! - An `https://` `--listen-api-url` needs `--tls-cert-file` and `--tls-private-key-file`;
//!   requests are then always authenticated (client certificates when `--client-ca-file`
//!   is given, bearer tokens from `--token-auth-file`, anonymous only with `--anonymous-auth`).
//! - An `http://` one takes none of these flags: plain HTTP has no authentication at all,
//!   so credentials would travel in clear for nothing.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use flotilla_apiserver::http::authn::Authenticator;
use flotilla_apiserver::http::node_certificate::Signer;
use flotilla_apiserver::serviceaccount::ServiceAccounts;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ApiSecurityArgs {
    /// The certificate the Kubernetes API presents (PEM; may hold the chain). Needed for an
    /// https:// --listen-api-url.
    #[arg(long, env = "FLOTILLA_TLS_CERT_FILE", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM, PKCS#8).
    #[arg(long, env = "FLOTILLA_TLS_PRIVATE_KEY_FILE", value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Authenticate clients that present a certificate signed by this CA (PEM): the user is
    /// the subject's CN, the groups its O values.
    #[arg(long, env = "FLOTILLA_CLIENT_CA_FILE", value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// Authenticate `Authorization: Bearer` tokens listed in this CSV file, one
    /// `token,user,uid,"group1,group2"` per line.
    #[arg(long, env = "FLOTILLA_TOKEN_AUTH_FILE", value_name = "FILE")]
    pub token_auth_file: Option<PathBuf>,
    /// Serve requests without credentials as system:anonymous (off: they get 401, except the
    /// health probes and /version).
    #[arg(long, env = "FLOTILLA_ANONYMOUS_AUTH", default_value_t = false)]
    pub anonymous_auth: bool,
    /// Authenticate bootstrap tokens (Secrets `kube-system/bootstrap-token-<id>`, made by
    /// `flotilla token create`), with which agents join and get node certificates.
    #[arg(long, env = "FLOTILLA_ENABLE_BOOTSTRAP_TOKEN_AUTH", default_value_t = false)]
    pub enable_bootstrap_token_auth: bool,
    /// The cluster CA's certificate (PEM), with --cluster-signing-key-file: this replica then
    /// signs the client certificates of agents that join with a bootstrap token
    /// (`flotilla token create`) or renew their own.
    #[arg(
        long,
        env = "FLOTILLA_CLUSTER_SIGNING_CERT_FILE",
        value_name = "FILE",
        requires = "cluster_signing_key_file"
    )]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// The cluster CA's private key (PEM, PKCS#8).
    #[arg(
        long,
        env = "FLOTILLA_CLUSTER_SIGNING_KEY_FILE",
        value_name = "FILE",
        requires = "cluster_signing_cert_file"
    )]
    pub cluster_signing_key_file: Option<PathBuf>,
    /// How long the node certificates this replica signs are valid (agents renew theirs when
    /// two thirds of it have passed).
    #[arg(long, env = "FLOTILLA_CLUSTER_SIGNING_DURATION", default_value = "8760h", value_parser = crate::bench_api::parse_duration)]
    pub cluster_signing_duration: std::time::Duration,
    /// Sign ServiceAccount tokens with this private key (PEM, PKCS#8, ECDSA P-256): pods then
    /// get a token mounted at /var/run/secrets/kubernetes.io/serviceaccount, and `kubectl
    /// create token` works. Every replica needs the same key.
    #[arg(long, env = "FLOTILLA_SERVICE_ACCOUNT_SIGNING_KEY_FILE", value_name = "FILE")]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// Accept ServiceAccount tokens signed by the keys in this file (PEM private or public
    /// keys); may be given more than once, to keep an old key's tokens working during a
    /// rotation. The signing key is always accepted.
    #[arg(long, env = "FLOTILLA_SERVICE_ACCOUNT_KEY_FILE", value_name = "FILE", value_delimiter = ',')]
    pub service_account_key_file: Vec<PathBuf>,
    /// The issuer (`iss`) of the ServiceAccount tokens this server signs and accepts.
    #[arg(long, env = "FLOTILLA_SERVICE_ACCOUNT_ISSUER", default_value = flotilla_apiserver::serviceaccount::DEFAULT_ISSUER)]
    pub service_account_issuer: String,
    /// The audiences this server identifies as (a token must name one); default: the issuer.
    #[arg(long, env = "FLOTILLA_API_AUDIENCES", value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// The longest lifetime of a ServiceAccount token this server signs (longer requests are
    /// cut to it); default: no bound.
    #[arg(long, env = "FLOTILLA_SERVICE_ACCOUNT_MAX_TOKEN_EXPIRATION", value_parser = crate::bench_api::parse_duration)]
    pub service_account_max_token_expiration: Option<std::time::Duration>,
    /// The CA certificate (PEM) published in every namespace as ConfigMap kube-root-ca.crt
    /// and mounted in pods as ca.crt, with which they verify the API; default:
    /// --client-ca-file.
    #[arg(long, env = "FLOTILLA_ROOT_CA_FILE", value_name = "FILE")]
    pub root_ca_file: Option<PathBuf>,
}

/// What the Kubernetes API listener does with its connections.
pub struct ApiSecurity {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub authn: Option<Arc<Authenticator>>,
    /// Towards the agents' endpoints, presenting --tls-cert-file (which they require).
    pub node_tls: Option<Arc<rustls::ClientConfig>>,
    /// Signs agents' certificates (--cluster-signing-cert-file and -key-file).
    pub signer: Option<Arc<Signer>>,
    /// How ServiceAccount tokens are issued and checked (none: they are not).
    pub service_accounts: Option<Arc<ServiceAccounts>>,
    /// The CA that pods verify the API with (--root-ca-file, else --client-ca-file).
    pub root_ca: Option<String>,
}

impl ApiSecurityArgs {
    /// The listener's TLS and authentication for a listen URL served over `https` or not.
    pub fn resolve(&self, https: bool) -> anyhow::Result<ApiSecurity> {
        if !https {
            let given = [
                ("--tls-cert-file", self.tls_cert_file.is_some()),
                ("--tls-private-key-file", self.tls_private_key_file.is_some()),
                ("--client-ca-file", self.client_ca_file.is_some()),
                ("--token-auth-file", self.token_auth_file.is_some()),
                ("--anonymous-auth", self.anonymous_auth),
                ("--cluster-signing-cert-file", self.cluster_signing_cert_file.is_some()),
                ("--enable-bootstrap-token-auth", self.enable_bootstrap_token_auth),
                ("--service-account-signing-key-file", self.service_account_signing_key_file.is_some()),
                ("--service-account-key-file", !self.service_account_key_file.is_empty()),
                ("--root-ca-file", self.root_ca_file.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                bail!("{flag} needs an https:// --listen-api-url (plain HTTP is not authenticated)");
            }
            return Ok(ApiSecurity {
                tls: None,
                authn: None,
                node_tls: None,
                signer: None,
                service_accounts: None,
                root_ca: None,
            });
        }
        let (Some(cert_path), Some(key_path)) = (&self.tls_cert_file, &self.tls_private_key_file) else {
            bail!("an https:// --listen-api-url needs --tls-cert-file and --tls-private-key-file");
        };
        let read = |flag: &str, path: &PathBuf| flotilla_pki::read_pem(path).with_context(|| flag.to_string());
        let cert = read("--tls-cert-file", cert_path)?;
        let key = read("--tls-private-key-file", key_path)?;
        let client_ca = self.client_ca_file.as_ref().map(|p| read("--client-ca-file", p)).transpose()?;
        let tls = flotilla_pki::server_config(&cert, &key, client_ca.as_deref())
            .context("--tls-cert-file, --tls-private-key-file and --client-ca-file")?;
        let authn = Authenticator::new(self.token_auth_file.as_deref(), self.anonymous_auth)
            .map_err(|e| anyhow::anyhow!("--token-auth-file {e}"))?
            .with_bootstrap_tokens(self.enable_bootstrap_token_auth);
        if self.anonymous_auth {
            tracing::warn!("--anonymous-auth: requests without credentials are served as system:anonymous");
        }
        let node_tls = flotilla_pki::client_config_any_server(&cert, &key).context("--tls-cert-file")?;
        // Renewed certificate files are presented from then on, without a restart.
        let files =
            flotilla_pki::CertFiles::load(cert_path, key_path).context("--tls-cert-file and --tls-private-key-file")?;
        let (tls, node_tls) = (files.serve(tls), files.present(node_tls));
        Ok(ApiSecurity {
            tls: Some(Arc::new(tls)),
            authn: Some(Arc::new(authn)),
            node_tls: Some(Arc::new(node_tls)),
            signer: self.signer()?.map(Arc::new),
            service_accounts: self.service_accounts()?.map(Arc::new),
            root_ca: match &self.root_ca_file {
                Some(path) => Some(read("--root-ca-file", path)?),
                None => client_ca,
            },
        })
    }

    /// The `--service-account-*` flags' keys and settings, if a key is given.
    fn service_accounts(&self) -> anyhow::Result<Option<ServiceAccounts>> {
        use flotilla_pki::jwt::{JwtSigner, VerifyingKey};
        let signer = match &self.service_account_signing_key_file {
            Some(path) => Some(
                JwtSigner::from_pem(&flotilla_pki::read_pem(path)?)
                    .with_context(|| format!("--service-account-signing-key-file {}", path.display()))?,
            ),
            None => None,
        };
        let mut keys: Vec<VerifyingKey> = signer.iter().map(|s| s.verifying_key().clone()).collect();
        for path in &self.service_account_key_file {
            let found = VerifyingKey::from_pem(&flotilla_pki::read_pem(path)?)
                .with_context(|| format!("--service-account-key-file {}", path.display()))?;
            keys.extend(found);
        }
        if keys.is_empty() {
            return Ok(None);
        }
        if self.service_account_issuer.is_empty() {
            bail!("--service-account-issuer must not be empty");
        }
        let audiences = match self.api_audiences.iter().filter(|a| !a.is_empty()).cloned().collect::<Vec<_>>() {
            none if none.is_empty() => vec![self.service_account_issuer.clone()],
            given => given,
        };
        let max_expiration = self.service_account_max_token_expiration;
        if max_expiration.is_some_and(|m| m < flotilla_apiserver::serviceaccount::MIN_EXPIRATION) {
            bail!("--service-account-max-token-expiration must be at least 10m");
        }
        tracing::info!(
            issuer = %self.service_account_issuer,
            keys = keys.len(),
            signing = signer.is_some(),
            "service account tokens are checked"
        );
        Ok(Some(ServiceAccounts {
            issuer: self.service_account_issuer.clone(),
            audiences,
            signer,
            keys,
            max_expiration,
        }))
    }

    /// The CA of --cluster-signing-cert-file and -key-file, if given.
    fn signer(&self) -> anyhow::Result<Option<Signer>> {
        let (Some(cert), Some(key)) = (&self.cluster_signing_cert_file, &self.cluster_signing_key_file) else {
            return Ok(None);
        };
        let read = |flag: &str, path: &PathBuf| flotilla_pki::read_pem(path).with_context(|| flag.to_string());
        let ca = flotilla_pki::Ca::from_pem(
            &read("--cluster-signing-cert-file", cert)?,
            &read("--cluster-signing-key-file", key)?,
        )
        .context("--cluster-signing-cert-file and --cluster-signing-key-file")?;
        Ok(Some(Signer { ca, validity: self.cluster_signing_duration }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_takes_no_security_flags() {
        let none = ApiSecurityArgs::default().resolve(false).expect("plain");
        assert!(none.tls.is_none() && none.authn.is_none());
        let tokens = ApiSecurityArgs { token_auth_file: Some("t.csv".into()), ..Default::default() };
        let err = tokens.resolve(false).err().expect("refused").to_string();
        assert!(err.contains("--token-auth-file needs an https://"), "{err}");
        let anonymous = ApiSecurityArgs { anonymous_auth: true, ..Default::default() };
        assert!(anonymous.resolve(false).is_err());
    }

    #[test]
    fn https_needs_a_certificate_and_its_key() {
        let err = ApiSecurityArgs::default().resolve(true).err().expect("refused").to_string();
        assert!(err.contains("needs --tls-cert-file and --tls-private-key-file"), "{err}");
        let missing = ApiSecurityArgs {
            tls_cert_file: Some("/nonexistent/api.crt".into()),
            tls_private_key_file: Some("/nonexistent/api.key".into()),
            ..Default::default()
        };
        let err = format!("{:#}", missing.resolve(true).err().expect("refused"));
        assert!(err.contains("--tls-cert-file") && err.contains("/nonexistent/api.crt"), "{err}");
    }
}
