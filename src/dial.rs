//! Connections from flotilla's own clients (`up`, `lb`'s health checks, the benchmarks) to a
//! Kubernetes API URL, plain or TLS.
//!
//! Rules: an `https://` URL needs a [`ClientTls`] (the server is verified against its CA and
//! the URL's host), an `http://` URL takes none; a mismatch is an error rather than a
//! silent downgrade or an unused certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Bound on the TCP connect and, separately, on the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A byte stream to a server, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How to speak TLS to a cluster's API: the CA that signed its servers' certificates and,
/// usually, a client certificate to present.
#[derive(Clone)]
pub struct ClientTls(Arc<rustls::ClientConfig>);

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    /// Trust the CA in `ca`; present `identity` (certificate file, key file) when given.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> anyhow::Result<Self> {
        let read = |p: &Path| flotilla_pki::read_pem(p).with_context(|| format!("reading {}", p.display()));
        let ca = read(ca)?;
        let identity = match identity {
            Some((cert, key)) => Some((read(cert)?, read(key)?)),
            None => None,
        };
        let pair = identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str()));
        let config = flotilla_pki::client_config(&ca, pair).context("client TLS configuration")?;
        Ok(Self(Arc::new(config)))
    }
}

impl ClientTls {
    /// Trust the CA in `ca_pem`, presenting no certificate.
    pub fn from_pem(ca_pem: &str) -> anyhow::Result<Self> {
        let config = flotilla_pki::client_config(ca_pem, None).context("client TLS configuration")?;
        Ok(Self(Arc::new(config)))
    }

    /// Verify no server at all: ONLY for a first contact whose answer the caller checks by
    /// other means (a replica fetching the CA its join token names by hash).
    pub fn unverified() -> anyhow::Result<Self> {
        Ok(Self(Arc::new(flotilla_pki::client_config_unverified()?)))
    }
}

/// Where a URL points: its socket address, its host (for the certificate check) and whether
/// it is `https`.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    host: String,
    tls: Option<ClientTls>,
}

impl Target {
    /// `url` (`http://` or `https://host:port`), with `tls` for an https one.
    pub fn new(url: &str, tls: Option<&ClientTls>) -> anyhow::Result<Self> {
        let (addr, https) = crate::urls::socket_addr_tls(url)?;
        let tls = match (https, tls) {
            (true, Some(tls)) => Some(tls.clone()),
            (true, None) => bail!("{url}: an https URL needs the cluster's CA (and usually a client certificate)"),
            (false, Some(_)) => bail!("{url}: TLS settings were given for a plain http URL"),
            (false, None) => None,
        };
        Ok(Self { addr, host: crate::urls::host(url).to_string(), tls })
    }

    /// A connection, its TLS handshake done.
    pub async fn dial(&self) -> anyhow::Result<Box<dyn Io>> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .with_context(|| format!("connecting to {} timed out", self.addr))??;
        tcp.set_nodelay(true)?;
        let Some(ClientTls(config)) = &self.tls else { return Ok(Box::new(tcp)) };
        let name = ServerName::try_from(self.host.clone()).with_context(|| format!("server name {:?}", self.host))?;
        let tls =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp))
                .await
                .with_context(|| format!("TLS handshake with {} timed out", self.addr))?
                .with_context(|| format!("TLS handshake with {}", self.addr))?;
        Ok(Box::new(tls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_needs_tls_settings_and_http_refuses_them() {
        let dir = tempfile::tempdir().unwrap();
        let ca = flotilla_pki::Ca::generate("test-ca", Duration::from_secs(3600)).unwrap();
        ca.save(dir.path()).unwrap();
        let tls = ClientTls::from_files(&dir.path().join("ca.crt"), None).unwrap();
        assert!(Target::new("https://127.0.0.1:1", None).unwrap_err().to_string().contains("needs the cluster's CA"));
        assert!(Target::new("http://127.0.0.1:1", Some(&tls)).unwrap_err().to_string().contains("plain http"));
        assert!(Target::new("https://127.0.0.1:1", Some(&tls)).is_ok());
        assert!(Target::new("http://127.0.0.1:1", None).is_ok());
    }
}
