//! TLS on the store's two ports, with etcd's flags in mind: the peer port (Raft and leader
//! forwarding) and the etcd v3 client API.
//!
//! Data flow: [`PeerTls`] and [`ClientTls`] are built from PEM text once at start. The
//! servers accept through [`incoming`] (the shared handshake loop of
//! [`flotilla_pki::accept`]) and hand tonic [`TlsConn`]s, whose connect info carries the
//! verified client certificate's identity; [`Admission`] reads it on every request. The
//! peer client ([`connector`]) dials, handshakes and presents the replica's certificate.
//!
//! Invariants:
//! - **Peer port: mutual TLS.** A connection without a certificate signed by the peer CA
//!   fails the handshake; a request whose certificate lacks [`REPLICAS_GROUP`] gets
//!   `PERMISSION_DENIED` (so agents' and users' certificates from the same CA cannot speak
//!   Raft). A replica without such a certificate cannot join, vote or append.
//! - **Client port with client-certificate authentication: admins only.** The etcd API
//!   exposes every raw key (Secrets included), so only [`MASTERS_GROUP`] and
//!   [`REPLICAS_GROUP`] members pass; any other verified certificate gets
//!   `PERMISSION_DENIED` naming the rule. Without client-certificate authentication the port
//!   is encrypted but open, as etcd's `--client-cert-auth=false`.
//! - Both sides offer ALPN `h2` only (grpc-go refuses a TLS server without it).
//! - TLS is done here, not by tonic: the servers need the client certificate's identity
//!   and (on the client port) the authority fix inside TLS. Peer URLs stay `https://` in
//!   membership; tonic is handed the same URL as `http://` and [`connector`] does TLS.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use flotilla_pki::{CertIdentity, TlsIncoming, ALPN_H2, MASTERS_GROUP, REPLICAS_GROUP};
use futures::Stream;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsConnector;
use tonic::transport::server::Connected;

/// How long a peer's TLS handshake may take once its TCP connection is up.
const PEER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Mutual TLS between replicas: what the peer port serves and what the peer client presents.
#[derive(Clone)]
pub struct PeerTls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl PeerTls {
    /// From the replica's certificate and key and the CA that signs every replica's (PEM).
    pub fn from_pem(cert: &str, key: &str, ca: &str) -> flotilla_pki::Result<Self> {
        let server = flotilla_pki::server_config_mutual(cert, key, ca)?;
        let client = flotilla_pki::client_config(ca, Some((cert, key)))?;
        Ok(Self {
            server: Arc::new(flotilla_pki::with_alpn(server, ALPN_H2)),
            client: Arc::new(flotilla_pki::with_alpn(client, ALPN_H2)),
        })
    }

    /// Present the pair in `files` from now on, following renewals ([`flotilla_pki::reload`]).
    pub fn following(mut self, files: &Arc<flotilla_pki::CertFiles>) -> Self {
        self.server = Arc::new(files.serve((*self.server).clone()));
        self.client = Arc::new(files.present((*self.client).clone()));
        self
    }

    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client.clone()
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }
}

/// TLS on the etcd client API.
#[derive(Clone)]
pub struct ClientTls {
    server: Arc<rustls::ServerConfig>,
    /// Whether client certificates are required (and only admins and replicas admitted).
    client_cert_auth: bool,
}

impl ClientTls {
    /// Serve `cert`/`key`; with `client_ca`, require client certificates signed by it.
    pub fn from_pem(cert: &str, key: &str, client_ca: Option<&str>) -> flotilla_pki::Result<Self> {
        let server = match client_ca {
            Some(ca) => flotilla_pki::server_config_mutual(cert, key, ca)?,
            None => flotilla_pki::server_config(cert, key, None)?,
        };
        Ok(Self { server: Arc::new(flotilla_pki::with_alpn(server, ALPN_H2)), client_cert_auth: client_ca.is_some() })
    }

    /// Present the pair in `files` from now on, following renewals.
    pub fn following(mut self, files: &Arc<flotilla_pki::CertFiles>) -> Self {
        self.server = Arc::new(files.serve((*self.server).clone()));
        self
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }
}

/// TLS for a replica's ports; the default is plain TCP on both.
#[derive(Clone, Default)]
pub struct StoreTls {
    pub peer: Option<PeerTls>,
    pub client: Option<ClientTls>,
}

/// Who may call a server: checked on every request against the connection's certificate.
#[derive(Clone, Copy, Debug)]
pub enum Admission {
    /// Plain TCP, or TLS without client certificates: everyone.
    Open,
    /// Replicas only (the peer port).
    Replicas,
    /// Admins and replicas (the client port with client-certificate authentication).
    Admins,
}

impl Admission {
    pub fn for_peers(tls: Option<&PeerTls>) -> Self {
        if tls.is_some() {
            Self::Replicas
        } else {
            Self::Open
        }
    }

    pub fn for_clients(tls: Option<&ClientTls>) -> Self {
        match tls {
            Some(t) if t.client_cert_auth => Self::Admins,
            _ => Self::Open,
        }
    }

    /// The groups admitted; `None` admits everyone.
    fn groups(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Open => None,
            Self::Replicas => Some(&[REPLICAS_GROUP]),
            Self::Admins => Some(&[MASTERS_GROUP, REPLICAS_GROUP]),
        }
    }

    /// Whether a connection with `cert` is admitted.
    pub fn admits(self, cert: Option<&CertIdentity>) -> bool {
        match (self.groups(), cert) {
            (None, _) => true,
            (Some(allowed), Some(id)) => id.in_any(allowed),
            (Some(_), None) => false,
        }
    }

    /// Whether the request's connection may make it.
    pub fn check(self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let cert = request.extensions().get::<ConnInfo>().and_then(|c| c.cert.as_ref());
        if self.admits(cert) {
            return Ok(request);
        }
        let allowed = self.groups().unwrap_or_default().join(" or ");
        match cert {
            Some(id) => Err(tonic::Status::permission_denied(format!(
                "certificate of {:?} (groups {:?}) is not in {allowed}",
                id.user, id.groups
            ))),
            None => Err(tonic::Status::unauthenticated("a client certificate is required")),
        }
    }
}

impl tonic::service::Interceptor for Admission {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        self.check(request)
    }
}

/// What a TLS connection tells the servers about its client.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub cert: Option<CertIdentity>,
}

/// An accepted TLS connection, as tonic serves it.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    info: ConnInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// TLS connections accepted on `listener`, for `serve_with_incoming`. On the peer port
/// ([`Admission::Replicas`]) a connection whose certificate is not a replica's is closed
/// at once, so that it holds no HTTP/2 connection open; elsewhere every request is checked
/// and refused with a message instead.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    admission: Admission,
) -> io::Result<impl Stream<Item = io::Result<TlsConn>>> {
    let admit: flotilla_pki::accept::Admit = match admission {
        Admission::Replicas => |cert| Admission::Replicas.admits(cert),
        Admission::Open | Admission::Admins => flotilla_pki::accept::everyone,
    };
    let mut accepted = TlsIncoming::new(listener, config, admit)?;
    Ok(futures::stream::poll_fn(move |cx| {
        accepted
            .poll_accept(cx)
            .map(|a| a.map(|a| Ok(TlsConn { stream: a.stream, info: ConnInfo { remote: a.addr, cert: a.cert } })))
    }))
}

/// A tonic connector that dials the URI's host and port and speaks TLS with `config`,
/// checking the server's certificate against the host (an IP literal or a DNS name) and
/// for [`REPLICAS_GROUP`].
pub fn connector(
    config: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
) -> impl tower::Service<
    http::Uri,
    Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Error = io::Error,
    Future = impl Send,
> + Clone
       + Send {
    let tls = TlsConnector::from(config);
    tower::service_fn(move |uri: http::Uri| {
        let tls = tls.clone();
        async move {
            let host = uri.host().ok_or_else(|| invalid(format!("peer URL {uri} has no host")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().ok_or_else(|| invalid(format!("peer URL {uri} has no port")))?;
            let name = ServerName::try_from(host.clone()).map_err(|e| invalid(format!("peer host {host:?}: {e}")))?;
            let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect((host.as_str(), port)))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {uri} timed out")))??;
            tcp.set_nodelay(true)?;
            let stream =
                tokio::time::timeout(PEER_HANDSHAKE_TIMEOUT, tls.connect(name, tcp)).await.map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, format!("TLS handshake with {uri} timed out"))
                })??;
            // The CA signed it for this address; it must also be a replica's.
            let leaf = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first());
            match leaf.map(|der| flotilla_pki::cert_identity(der.as_ref())) {
                Some(Ok(id)) if Admission::Replicas.admits(Some(&id)) => Ok(TokioIo::new(stream)),
                _ => Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{uri} presented a certificate outside {REPLICAS_GROUP}"),
                )),
            }
        }
    })
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
