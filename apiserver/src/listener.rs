//! Where the Kubernetes API takes its connections: plain TCP (`--insecure-plaintext`
//! experiments and tests), or TLS with optional client certificates.
//!
//! Both listeners hand axum the same connection info, [`Peer`]: the client's address and,
//! over TLS, the identity of the client certificate it presented (already verified against
//! the client CA by rustls during the handshake).
//!
//! Handshakes run in the background, never holding up other clients, and accept errors
//! never end a listener: see [`flotilla_pki::accept`], whose invariants both keep.

use std::net::SocketAddr;
use std::sync::Arc;

use flotilla_pki::accept::accept_failed;
use flotilla_pki::{Accepted, CertIdentity, TlsIncoming};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The verified client certificate's identity, if the client presented one.
    pub cert: Option<CertIdentity>,
}

impl Peer {
    pub fn address(addr: SocketAddr) -> Self {
        Self { addr, cert: None }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, PlainListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, PlainListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Plain TCP.
pub struct PlainListener(pub TcpListener);

impl axum::serve::Listener for PlainListener {
    type Io = TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => return (stream, Peer::address(addr)),
                Err(e) => accept_failed(&e).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr().map(Peer::address)
    }
}

/// TLS over TCP; handshakes run in the background ([`TlsIncoming`]).
pub struct TlsListener(TlsIncoming);

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        TlsIncoming::new(listener, config, flotilla_pki::accept::everyone).map(Self)
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let Accepted { stream, addr, cert } = self.0.accept().await;
        (stream, Peer { addr, cert })
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer::address(self.0.local_addr()))
    }
}
