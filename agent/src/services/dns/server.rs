//! The transport: one port for UDP and TCP, every query in a task of its own, all tasks
//! tracked so that shutdown waits for them.
//!
//! A TCP connection is served one query at a time, in order (clients that pipeline still
//! get every answer, just not out of order), and closed when idle.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::forward::{Forwarder, UPSTREAM_TIMEOUT};
use super::reply::{self, Transport};
use super::zone::Zone;
use super::DnsConfig;
use crate::error::AgentError;
use crate::services::model::Snapshot;

/// Queries handled at once, UDP and TCP together. Answers from the snapshot take
/// microseconds; the bound matters when upstreams are slow and each forwarded query holds
/// its slot for up to [`UPSTREAM_TIMEOUT`] per upstream. Past it, UDP queries wait in the
/// socket buffer (the kernel drops them when it is full, and clients retry).
const MAX_IN_FLIGHT: usize = 256;
/// TCP connections served at once; more wait in the listen backlog.
const MAX_TCP_CONNECTIONS: usize = 64;
/// How long a TCP connection may sit idle, or take to send a query, before it is closed.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest UDP query read; real queries, even with EDNS options, are far smaller.
const MAX_UDP_QUERY: usize = 4096;
/// Tries at finding a port free for both UDP and TCP when the caller asks for port 0.
const BIND_ATTEMPTS: usize = 16;
/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A running cluster DNS server. Dropping it stops it too, without waiting.
pub struct DnsServer {
    local_addr: SocketAddr,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// What every query needs, shared by the tasks.
struct Handler {
    zone: Zone,
    forwarder: Forwarder,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    in_flight: Arc<Semaphore>,
}

impl DnsServer {
    /// Serve UDP and TCP on `bind` (port 0 picks a free port, the same for both), answering
    /// from the latest snapshot. Fails with [`AgentError::Config`] when the configuration is
    /// invalid, [`AgentError::Services`] when the address cannot be bound.
    pub async fn start(
        bind: SocketAddr,
        config: DnsConfig,
        snapshot: watch::Receiver<Arc<Snapshot>>,
    ) -> Result<DnsServer, AgentError> {
        let zone = Zone::new(&config.domain, config.ttl)?;
        let cannot_bind = |e: io::Error| AgentError::Services(format!("cluster DNS cannot listen on {bind}: {e}"));
        let (udp, tcp) = bind_both(bind).await.map_err(cannot_bind)?;
        let local_addr = udp.local_addr().map_err(cannot_bind)?;
        let handler = Arc::new(Handler {
            zone,
            forwarder: Forwarder::new(config.upstreams, local_addr, UPSTREAM_TIMEOUT),
            snapshots: snapshot,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        });
        let (cancel, tasks) = (CancellationToken::new(), TaskTracker::new());
        tasks.spawn(serve_udp(Arc::new(udp), handler.clone(), tasks.clone(), cancel.clone()));
        tasks.spawn(serve_tcp(tcp, handler, tasks.clone(), cancel.clone()));
        Ok(DnsServer { local_addr, cancel, tasks })
    }

    /// The address served, UDP and TCP alike.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop listening, abandon queries in flight, and wait until every task has ended.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A UDP socket and a TCP listener on the same address.
async fn bind_both(bind: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let attempts = if bind.port() == 0 { BIND_ATTEMPTS } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(bind).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one attempt was made"))
}

async fn serve_udp(socket: Arc<UdpSocket>, handler: Arc<Handler>, tasks: TaskTracker, cancel: CancellationToken) {
    let mut buf = vec![0u8; MAX_UDP_QUERY];
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            permit = handler.in_flight.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (len, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster DNS: UDP receive failed");
                    continue;
                }
            },
        };
        let raw = buf[..len].to_vec();
        let (socket, handler, cancel) = (socket.clone(), handler.clone(), cancel.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let Some(Some(reply)) = cancel.run_until_cancelled(handler.handle(&raw, Transport::Udp)).await else {
                return;
            };
            if let Err(e) = socket.send_to(&reply, peer).await {
                tracing::debug!(%peer, error = %e, "cluster DNS: UDP send failed");
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>, tasks: TaskTracker, cancel: CancellationToken) {
    let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster DNS: TCP accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let (handler, cancel) = (handler.clone(), cancel.clone());
        tasks.spawn(async move {
            let _permit = permit;
            cancel.run_until_cancelled(serve_connection(stream, handler)).await;
        });
    }
}

/// Length-prefixed queries in, answers out, until the client closes or idles.
async fn serve_connection(mut stream: TcpStream, handler: Arc<Handler>) {
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_u16()).await else { return };
        let mut raw = vec![0; usize::from(len)];
        let Ok(Ok(_)) = tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut raw)).await else { return };
        let reply = {
            let _permit = handler.in_flight.acquire().await.expect("the semaphore is never closed");
            handler.handle(&raw, Transport::Tcp).await
        };
        let Some(reply) = reply else { continue };
        let len = u16::try_from(reply.len()).expect("replies are encoded within the TCP limit");
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

impl Handler {
    /// The reply to the query `raw` came as, or nothing when it must not be answered.
    async fn handle(&self, raw: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let Ok(request) = Message::from_vec(raw) else { return reply::format_error(raw) };
        if request.message_type() != MessageType::Query {
            return None;
        }
        let limit = reply::size_limit(&request, transport);
        let refuse = |code| reply::encode(&reply::response_to(&request, code), limit);
        if request.op_code() != OpCode::Query {
            return refuse(ResponseCode::NotImp);
        }
        let [query] = request.queries() else { return refuse(ResponseCode::FormErr) };
        let snapshot = self.snapshots.borrow().clone();
        if let Some(answer) = self.zone.answer(&snapshot, query) {
            return reply::encode(&reply::authoritative(&request, answer), limit);
        }
        match self.forwarder.forward(&request, raw, transport).await {
            Some(bytes) if bytes.len() <= limit => Some(bytes),
            Some(bytes) => reply::encode(&Message::from_vec(&bytes).ok()?, limit),
            None => refuse(ResponseCode::ServFail),
        }
    }
}
