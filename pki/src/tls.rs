//! rustls configurations built from PEM text.
//!
//! Every configuration gets the ring provider passed in explicitly, so nothing depends on
//! which crypto provider (if any) the process installed as its default, and rustls' safe
//! default protocol versions. ALPN is `http/1.1`, the only protocol the API server speaks.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::DigitallySignedStruct;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::encoding;
use crate::error::{PkiError, Result};

const ALPN_HTTP1: &[u8] = b"http/1.1";
/// HTTP/2, which gRPC clients (grpc-go among them) insist on being offered over TLS.
pub const ALPN_H2: &[u8] = b"h2";

/// `config` offering only `protocol` in ALPN (for a server or a client config).
pub fn with_alpn<C: AlpnProtocols>(mut config: C, protocol: &[u8]) -> C {
    *config.alpn_protocols() = vec![protocol.to_vec()];
    config
}

/// The configurations that carry an ALPN list.
pub trait AlpnProtocols {
    fn alpn_protocols(&mut self) -> &mut Vec<Vec<u8>>;
}

impl AlpnProtocols for ServerConfig {
    fn alpn_protocols(&mut self) -> &mut Vec<Vec<u8>> {
        &mut self.alpn_protocols
    }
}

impl AlpnProtocols for ClientConfig {
    fn alpn_protocols(&mut self) -> &mut Vec<Vec<u8>> {
        &mut self.alpn_protocols
    }
}

/// rustls server config: presents `cert_pem` (may hold a chain) with `key_pem`; ALPN "http/1.1".
/// With `client_ca_pem`, client certificates are verified against that CA but OPTIONAL
/// (a client without one may still authenticate with a bearer token; a client presenting a
/// certificate NOT signed by the CA fails the handshake). Without it, no client certs are asked for.
pub fn server_config(cert_pem: &str, key_pem: &str, client_ca_pem: Option<&str>) -> Result<ServerConfig> {
    let provider = provider();
    let verifier = match client_ca_pem {
        Some(ca) => WebPkiClientVerifier::builder_with_provider(roots(ca, "client CA")?, provider.clone())
            .allow_unauthenticated()
            .build()?,
        None => WebPkiClientVerifier::no_client_auth(),
    };
    build_server(cert_pem, key_pem, verifier, provider)
}

/// Same, but client certificates signed by `client_ca_pem` are REQUIRED (for peer/agent mTLS).
pub fn server_config_mutual(cert_pem: &str, key_pem: &str, client_ca_pem: &str) -> Result<ServerConfig> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(client_ca_pem, "client CA")?, provider.clone()).build()?;
    build_server(cert_pem, key_pem, verifier, provider)
}

/// rustls client config trusting only `ca_pem`, presenting `client` (cert_pem, key_pem) if
/// given; ALPN "http/1.1".
pub fn client_config(ca_pem: &str, client: Option<(&str, &str)>) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem, "server CA")?);
    let mut config = match client {
        Some((cert_pem, key_pem)) => builder.with_client_auth_cert(
            encoding::certificates(cert_pem, "client certificate")?,
            encoding::private_key(key_pem, "client private key")?,
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// `Ok` when `cert_pem`/`key_pem` would be accepted as a client certificate by a server
/// trusting `ca_pem` now: the key matches, the certificate chains to the CA, is valid today
/// and is for client authentication.
pub fn check_client_pair(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<()> {
    let pair = certified_key(cert_pem, key_pem)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem, "client CA")?, provider()).build()?;
    let (leaf, chain) = pair.cert.split_first().expect("certificates() returns at least one");
    verifier.verify_client_cert(leaf, chain, UnixTime::now())?;
    Ok(())
}

/// A certificate chain and its key as one rustls pair, checked to belong together.
pub(crate) fn certified_key(cert_pem: &str, key_pem: &str) -> Result<rustls::sign::CertifiedKey> {
    let chain = encoding::certificates(cert_pem, "certificate")?;
    let key = encoding::private_key(key_pem, "private key")?;
    rustls::sign::CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| PkiError::Certificate { what: "certificate and key", reason: e.to_string() })
}

/// rustls client config presenting `cert_pem`/`key_pem` to a server whose certificate it
/// does NOT verify against any CA (only that the server holds the key of the certificate it
/// shows). For the API servers calling agents, whose endpoint certificates are self-signed:
/// kube-apiserver's default without `--kubelet-certificate-authority`. What protects the
/// call is the other direction: the agent admits only replicas' certificates.
pub fn client_config_any_server(cert_pem: &str, key_pem: &str) -> Result<ClientConfig> {
    let mut config = any_server()?.with_client_auth_cert(
        encoding::certificates(cert_pem, "client certificate")?,
        encoding::private_key(key_pem, "client private key")?,
    )?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// rustls client config that verifies no server certificate and presents none: ONLY for a
/// first contact whose answer the caller checks by other means (a replica fetching the
/// cluster CA, whose hash its join token names).
pub fn client_config_unverified() -> Result<ClientConfig> {
    let mut config = any_server()?.with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// A client config builder that accepts any server certificate ([`AnyServer`]).
fn any_server() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>> {
    let provider = provider();
    let verifier = Arc::new(AnyServer(provider.clone()));
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier))
}

/// Accepts any server certificate, but checks the handshake signatures made with its key.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_server(
    cert_pem: &str,
    key_pem: &str,
    verifier: Arc<dyn ClientCertVerifier>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig> {
    // rustls checks that the key matches the end-entity certificate.
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            encoding::certificates(cert_pem, "server certificate")?,
            encoding::private_key(key_pem, "server private key")?,
        )?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// Trust anchors from every certificate in `pem` (a bundle holds old and new CA while a CA is
/// rotated).
fn roots(pem: &str, what: &'static str) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in encoding::certificates(pem, what)? {
        roots.add(cert).map_err(|e| PkiError::Certificate { what, reason: e.to_string() })?;
    }
    Ok(Arc::new(roots))
}

#[cfg(test)]
mod tests;
