//! Where the Kubernetes API takes its connections: plain TCP (`--insecure-plaintext`
//! experiments and tests), or TLS with optional client certificates.
//!
//! Both listeners hand axum the same connection info, [`Peer`]: the client's address and,
//! over TLS, the identity of the client certificate it presented (already verified against
//! the client CA by rustls during the handshake).
//!
//! Invariants:
//! - A TLS handshake never holds up other clients: each runs in its own task, bounded by
//!   [`HANDSHAKE_TIMEOUT`]; at most [`MAX_HANDSHAKES`] run at once; only finished
//!   handshakes reach axum.
//! - A connection whose verified certificate carries no usable identity (no subject CN) is
//!   closed: it would otherwise be served as if it had presented nothing.
//! - Accept errors (e.g. out of file descriptors) never end the listener: it pauses and
//!   tries again, as axum's own TCP listener does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flotilla_pki::CertIdentity;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once; more connections wait to be accepted, so a flood of
/// idle connections cannot take every file descriptor of the process (which also serves
/// the store's peers and clients).
pub const MAX_HANDSHAKES: usize = 256;
/// Finished handshakes waiting for axum to take them.
const READY_QUEUE: usize = 64;
/// Pause after an accept error before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

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

/// TLS over TCP; handshakes run in the background (see the module doc).
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(Self { ready, local, accepting })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer::address(self.local))
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, ready: mpsc::Sender<(TlsStream<TcpStream>, Peer)>) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else { return };
        let (stream, addr) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                accept_failed(&e).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(permit);
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(client = %addr, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(client = %addr, "TLS handshake timed out"),
            };
            let Ok(cert) = client_identity(&tls) else {
                return tracing::warn!(client = %addr, "client certificate without a subject CN; connection closed");
            };
            let _ = ready.send((tls, Peer { addr, cert })).await;
        });
    }
}

/// The identity of the client certificate of `tls`, if one was presented.
fn client_identity(tls: &TlsStream<TcpStream>) -> Result<Option<CertIdentity>, flotilla_pki::PkiError> {
    match tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()) {
        Some(leaf) => flotilla_pki::cert_identity(leaf.as_ref()).map(Some),
        None => Ok(None),
    }
}

async fn accept_failed(e: &std::io::Error) {
    tracing::warn!(error = %e, "accepting a connection failed; retrying");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}
