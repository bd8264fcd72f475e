//! Accepting TLS connections: the handshake loop every TLS listener of a replica shares (the
//! Kubernetes API, the etcd client API and the peer port).
//!
//! Data flow: [`TlsIncoming::new`] spawns an accept loop; each accepted TCP connection gets
//! its own handshake task; finished handshakes wait in a bounded queue until the server
//! takes them with [`TlsIncoming::accept`], as an [`Accepted`] that carries the verified
//! client certificate's identity.
//!
//! Invariants:
//! - A TLS handshake never holds up other clients: each runs in its own task, bounded by
//!   [`HANDSHAKE_TIMEOUT`]; at most [`MAX_HANDSHAKES`] run at once, and at most
//!   [`MAX_HANDSHAKES_PER_CLIENT`] from one IP address (more are closed at once, so one
//!   client cannot take every slot); only finished handshakes reach the server.
//! - A connection whose verified certificate carries no usable identity (no subject CN) is
//!   closed: it would otherwise be served as if it had presented nothing. So is one whose
//!   identity the listener's [`Admit`] refuses (logged), before the server ever sees it.
//! - Accept errors (e.g. out of file descriptors) never end the loop: it pauses and tries
//!   again, as axum's own TCP listener does.
//! - Dropping the [`TlsIncoming`] stops the loop.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::CertIdentity;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once; more connections wait to be accepted, so a flood of
/// idle connections cannot take every file descriptor of the process (which also serves
/// the store's peers and clients).
pub const MAX_HANDSHAKES: usize = 256;
/// TLS handshakes in progress at once from one IP address.
pub const MAX_HANDSHAKES_PER_CLIENT: usize = 32;
/// Finished handshakes waiting for the server to take them.
const READY_QUEUE: usize = 64;
/// Pause after an accept error before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A connection whose TLS handshake finished.
pub struct Accepted {
    pub stream: TlsStream<TcpStream>,
    pub addr: SocketAddr,
    /// The verified client certificate's identity, if the client presented one.
    pub cert: Option<CertIdentity>,
}

/// Which verified client identities (`None`: no certificate) a listener serves.
pub type Admit = fn(Option<&CertIdentity>) -> bool;

/// Every client, with or without a certificate (authentication is the server's job).
pub fn everyone(_: Option<&CertIdentity>) -> bool {
    true
}

/// TLS connections accepted from a TCP listener (see the module doc).
pub struct TlsIncoming {
    ready: mpsc::Receiver<Accepted>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsIncoming {
    /// Start accepting on `listener` with `config`, serving the clients `admit` lets in.
    /// Needs a tokio runtime.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>, admit: Admit) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), admit, tx));
        Ok(Self { ready, local, accepting })
    }

    /// The next finished handshake; waits forever once the loop has ended (it ends only when
    /// this is dropped).
    pub async fn accept(&mut self) -> Accepted {
        match self.ready.recv().await {
            Some(conn) => conn,
            None => std::future::pending().await,
        }
    }

    /// [`Self::accept`] for a poll-based stream.
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Option<Accepted>> {
        self.ready.poll_recv(cx)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Handshakes in progress per client address.
#[derive(Clone, Default)]
struct PerClient(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One client's handshake slot, given back when dropped.
struct Slot {
    clients: PerClient,
    ip: IpAddr,
}

impl PerClient {
    fn take(&self, ip: IpAddr) -> Option<Slot> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_default();
        if *count >= MAX_HANDSHAKES_PER_CLIENT {
            return None;
        }
        *count += 1;
        Some(Slot { clients: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.clients.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, admit: Admit, ready: mpsc::Sender<Accepted>) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    let clients = PerClient::default();
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
        let Some(slot) = clients.take(addr.ip()) else {
            tracing::debug!(client = %addr, "too many TLS handshakes from one address; connection closed");
            continue;
        };
        // Small requests and replies must not wait for delayed ACKs (a 40 ms stall each).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop((permit, slot));
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(client = %addr, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(client = %addr, "TLS handshake timed out"),
            };
            let Ok(cert) = client_identity(&tls) else {
                return tracing::warn!(client = %addr, "client certificate without a subject CN; connection closed");
            };
            if !admit(cert.as_ref()) {
                return tracing::warn!(client = %addr, ?cert, "client certificate not admitted here; connection closed");
            }
            let _ = ready.send(Accepted { stream: tls, addr, cert }).await;
        });
    }
}

/// The identity of the client certificate of `tls`, if one was presented.
fn client_identity(tls: &TlsStream<TcpStream>) -> crate::Result<Option<CertIdentity>> {
    match tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()) {
        Some(leaf) => crate::cert_identity(leaf.as_ref()).map(Some),
        None => Ok(None),
    }
}

/// Log an accept error and pause before the next accept.
pub async fn accept_failed(e: &std::io::Error) {
    tracing::warn!(error = %e, "accepting a connection failed; retrying");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_gets_a_bounded_share_of_the_handshakes() {
        let clients = PerClient::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut held: Vec<Slot> = (0..MAX_HANDSHAKES_PER_CLIENT).map(|_| clients.take(a).expect("a slot")).collect();
        assert!(clients.take(a).is_none(), "the client's share is used up");
        assert!(clients.take(b).is_some(), "another client is unaffected");
        held.pop();
        assert!(clients.take(a).is_some(), "a finished handshake gives its slot back");
        drop(held);
        assert!(clients.0.lock().unwrap().len() <= 1, "idle clients are forgotten");
    }
}
