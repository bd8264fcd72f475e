//! The endpoint over mutual TLS, when the agent speaks TLS to the API servers: only the
//! API servers may call it (upstream: the kubelet's `--client-ca-file`).
//!
//! - The client must present a certificate signed by the cluster CA (the agent's
//!   `--api-ca-file`) in group `system:flotilla-replicas` (a replica's) or `system:masters`
//!   (an admin's). Anything else fails the handshake or is closed right after it, so a node's
//!   certificate cannot reach another node's pods.
//! - The endpoint's own certificate is self-signed, made at start for the node's address:
//!   the API servers do not verify it, as kube-apiserver does not verify kubelets' without
//!   `--kubelet-certificate-authority`. What they send is safe with anyone: the request
//!   path and the token, which the mutual TLS makes redundant.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flotilla_pki::{Ca, CertIdentity, TlsIncoming, MASTERS_GROUP, REPLICAS_GROUP};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::api::ApiTls;
use crate::error::AgentError;

/// How long the self-signed endpoint certificate is valid (the agent makes a new one at
/// every start).
const ENDPOINT_CERT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The endpoint's TLS: a new self-signed certificate for `address`, and client
/// certificates required from the CA of `api`.
pub fn endpoint_config(api: &ApiTls, node: &str, address: &str) -> Result<Arc<rustls::ServerConfig>, AgentError> {
    let config = |e: flotilla_pki::PkiError| AgentError::Config(format!("the endpoint's TLS: {e}"));
    let own = Ca::generate(&format!("{node}-endpoint"), ENDPOINT_CERT_VALIDITY).map_err(config)?;
    let cert = own.issue_server(node, &[], &[address.to_string()], ENDPOINT_CERT_VALIDITY).map_err(config)?;
    let server = flotilla_pki::server_config_mutual(&cert.cert_pem, &cert.key_pem, &api.ca_pem).map_err(config)?;
    Ok(Arc::new(server))
}

/// Whether a verified client certificate may call the endpoint.
pub fn admitted(cert: Option<&CertIdentity>) -> bool {
    cert.is_some_and(|id| id.in_any(&[REPLICAS_GROUP, MASTERS_GROUP]))
}

/// TLS connections of admitted clients ([`admitted`]), for axum.
pub struct TlsListener(TlsIncoming);

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        TlsIncoming::new(listener, config, admitted).map(Self)
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let conn = self.0.accept().await;
        (conn.stream, conn.addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_replicas_and_admins_are_admitted() {
        let id =
            |groups: &[&str]| CertIdentity { user: "u".into(), groups: groups.iter().map(|g| g.to_string()).collect() };
        assert!(admitted(Some(&id(&[REPLICAS_GROUP]))));
        assert!(admitted(Some(&id(&["dev", MASTERS_GROUP]))));
        assert!(!admitted(Some(&id(&["system:nodes"]))), "a node's certificate");
        assert!(!admitted(Some(&id(&[]))));
        assert!(!admitted(None), "no certificate");
    }
}
