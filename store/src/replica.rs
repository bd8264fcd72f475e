//! [`Replica`]: a [`StoreNode`] together with its two gRPC servers — the peer service
//! (Raft and forwarding) and the etcd v3 client API — on listeners the caller bound.
//!
//! The binary runs one replica per process; the in-process cluster tests run three in one.
//! Client connections go through [`AuthorityFix`] (etcdctl 3.4 sends URLs as `:authority`);
//! the peer port, spoken only by Flotilla itself, does not. Either port may be TLS
//! ([`StoreTls`]); every request passes its port's [`Admission`] first.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::service::InterceptorLayer;
use tonic::transport::server::{Connected, Router};
use tower::layer::util::{Identity, Stack};

use crate::config::Config;
use crate::error::StoreError;
use crate::etcd::authority::AuthorityFix;
use crate::node::{Bootstrap, StoreNode};
use crate::raft::network::{GrpcTransport, LinkControl};
use crate::tls::{self, Admission, PeerTls, StoreTls};
use crate::types::Node;

type ServerResult = Result<(), tonic::transport::Error>;

pub struct Replica {
    pub node: Arc<StoreNode>,
    pub peer_addr: SocketAddr,
    pub client_addrs: Vec<SocketAddr>,
    cancel: CancellationToken,
    servers: JoinSet<ServerResult>,
}

impl Replica {
    /// Open the node and start serving. `me.peer_url` must reach `peer` (`https://` exactly
    /// when `tls.peer` is set).
    pub async fn start(
        cfg: Config,
        me: Node,
        bootstrap: Bootstrap,
        peer: TcpListener,
        clients: Vec<TcpListener>,
        links: LinkControl,
        tls: StoreTls,
    ) -> Result<Self, StoreError> {
        let peer_addr = peer.local_addr().map_err(StoreError::storage)?;
        let client_addrs =
            clients.iter().map(|l| l.local_addr()).collect::<Result<Vec<_>, _>>().map_err(StoreError::storage)?;
        let transport = Arc::new(GrpcTransport::new(tls.peer.as_ref().map(PeerTls::client_config)));
        let node = StoreNode::open_with_transport(cfg, me, bootstrap, links, transport).await?;
        let cancel = CancellationToken::new();
        let mut servers = JoinSet::new();
        let admission = Admission::for_peers(tls.peer.as_ref());
        let peer_router = admitted(admission).add_service(node.peer_server());
        let stop = cancel.clone();
        match &tls.peer {
            None => servers.spawn(serve(peer_router, plain(peer), stop)),
            Some(t) => {
                servers.spawn(serve(peer_router, tls::incoming(peer, t.server_config(), admission).map_err(io)?, stop))
            }
        };
        for listener in clients {
            let admission = Admission::for_clients(tls.client.as_ref());
            let router = admitted(admission).add_routes(crate::etcd::routes(node.clone()));
            let stop = cancel.clone();
            match &tls.client {
                None => servers.spawn(serve(router, plain(listener).map(|c| c.map(AuthorityFix::new)), stop)),
                Some(t) => {
                    let incoming = tls::incoming(listener, t.server_config(), admission).map_err(io)?;
                    servers.spawn(serve(router, incoming.map(|c| c.map(AuthorityFix::new)), stop))
                }
            };
        }
        Ok(Self { node, peer_addr, client_addrs, cancel, servers })
    }

    /// Stop serving and shut the node down. Servers get [`DRAIN_TIMEOUT`] to finish open
    /// calls (long-lived watch streams would otherwise hold them forever), then are aborted.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        self.node.shutdown().await;
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while let Some(r) = self.servers.join_next().await {
                report(r);
            }
        })
        .await;
        if drained.is_err() {
            self.servers.abort_all();
            while self.servers.join_next().await.is_some() {}
        }
    }
}

/// A server whose every request passes `admission` first.
fn admitted(admission: Admission) -> tonic::transport::Server<Stack<InterceptorLayer<Admission>, Identity>> {
    tonic::transport::Server::builder().layer(InterceptorLayer::new(admission))
}

async fn serve<IO>(
    router: Router<Stack<InterceptorLayer<Admission>, Identity>>,
    incoming: impl Stream<Item = std::io::Result<IO>> + Send + 'static,
    stop: CancellationToken,
) -> ServerResult
where
    IO: Connected + AsyncRead + AsyncWrite + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
{
    router.serve_with_incoming_shutdown(incoming, stop.cancelled_owned()).await
}

/// Plain TCP connections from `listener`.
fn plain(listener: TcpListener) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|c| c.map(no_delay))
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::storage(e)
}

/// Disable Nagle's algorithm on an accepted connection: small gRPC responses must not wait
/// for the peer's delayed ACK (a 40 ms stall per request otherwise). tonic sets this only for
/// listeners it binds itself.
fn no_delay(stream: tokio::net::TcpStream) -> tokio::net::TcpStream {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    stream
}

/// How long stopping servers may wait for open calls to finish.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn report(r: Result<ServerResult, tokio::task::JoinError>) {
    match r {
        Ok(Err(e)) => tracing::warn!(error = %e, "server ended with an error"),
        Err(e) if !e.is_cancelled() => tracing::warn!(error = %e, "server task failed"),
        _ => {}
    }
}
