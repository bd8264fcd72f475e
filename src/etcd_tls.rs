//! Client TLS for the commands that call the etcd API (`member`, `status`, `snapshot save`,
//! and `server --join`), with etcdctl's flag names.
//!
//! - `https://` endpoints need `--cacert`; with `--client-cert-auth` on the replicas they
//!   also need `--cert` and `--key` of an admin (`system:masters`) or a replica.
//! - `--cert` and `--key` go together; any of the three with `http://` endpoints is an
//!   error rather than silently unused.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct EtcdTlsArgs {
    /// Verify https:// endpoints with this CA (PEM).
    #[arg(long, env = "FLOTILLA_CACERT", value_name = "FILE", global = true)]
    pub cacert: Option<PathBuf>,
    /// Present this client certificate (PEM) to https:// endpoints.
    #[arg(long, env = "FLOTILLA_CERT", value_name = "FILE", requires = "key", global = true)]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, env = "FLOTILLA_KEY", value_name = "FILE", requires = "cert", global = true)]
    pub key: Option<PathBuf>,
}

impl EtcdTlsArgs {
    /// `options` with TLS added when `endpoints` are `https://`.
    pub fn apply(&self, endpoints: &[String], options: ConnectOptions) -> anyhow::Result<ConnectOptions> {
        let https = crate::store_security::all_https("--endpoints", endpoints)?;
        let given = self.cacert.is_some() || self.cert.is_some();
        match (https, &self.cacert) {
            (false, _) if given => bail!("--cacert, --cert and --key need https:// endpoints"),
            (false, _) => Ok(options),
            (true, None) => bail!("https:// endpoints need --cacert"),
            (true, Some(ca)) => {
                let ca = read("--cacert", ca)?;
                let identity = match (&self.cert, &self.key) {
                    (Some(cert), Some(key)) => Some((read("--cert", cert)?, read("--key", key)?)),
                    _ => None,
                };
                Ok(options.with_tls(tls_options(&ca, identity)))
            }
        }
    }
}

/// Trust `ca`, present `identity` (certificate, key) if given; all PEM.
pub fn tls_options(ca: &str, identity: Option<(String, String)>) -> TlsOptions {
    let options = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
    match identity {
        Some((cert, key)) => options.identity(Identity::from_pem(cert, key)),
        None => options,
    }
}

fn read(flag: &str, path: &Path) -> anyhow::Result<String> {
    flotilla_pki::read_pem(path).with_context(|| flag.to_string())
}
