//! [`Replica`]: a [`StoreNode`] together with its two gRPC servers — the peer service
//! (Raft and forwarding) and the etcd v3 client API — on listeners the caller bound.
//!
//! The binary runs one replica per process; the in-process cluster tests run three in one.
//! Client connections go through [`AuthorityFix`] (etcdctl 3.4 sends URLs as `:authority`);
//! the peer port, spoken only by Flotilla itself, does not.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::StoreError;
use crate::etcd::authority::AuthorityFix;
use crate::node::{Bootstrap, StoreNode};
use crate::raft::network::LinkControl;
use crate::types::Node;

pub struct Replica {
    pub node: Arc<StoreNode>,
    pub peer_addr: SocketAddr,
    pub client_addrs: Vec<SocketAddr>,
    cancel: CancellationToken,
    servers: JoinSet<Result<(), tonic::transport::Error>>,
}

impl Replica {
    /// Open the node and start serving. `me.peer_url` must reach `peer`.
    pub async fn start(
        cfg: Config,
        me: Node,
        bootstrap: Bootstrap,
        peer: TcpListener,
        clients: Vec<TcpListener>,
        links: LinkControl,
    ) -> Result<Self, StoreError> {
        let peer_addr = peer.local_addr().map_err(StoreError::storage)?;
        let client_addrs =
            clients.iter().map(|l| l.local_addr()).collect::<Result<Vec<_>, _>>().map_err(StoreError::storage)?;
        let node = StoreNode::open(cfg, me, bootstrap, links).await?;
        let cancel = CancellationToken::new();
        let mut servers = JoinSet::new();
        let peer_service = node.peer_server();
        let c = cancel.clone();
        servers.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(peer_service)
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(peer).map(|c| c.map(no_delay)),
                    c.cancelled_owned(),
                )
                .await
        });
        for listener in clients {
            let routes = crate::etcd::routes(node.clone());
            let c = cancel.clone();
            let incoming = TcpListenerStream::new(listener).map(|conn| conn.map(no_delay).map(AuthorityFix::new));
            servers.spawn(async move {
                tonic::transport::Server::builder()
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, c.cancelled_owned())
                    .await
            });
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

fn report(r: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>) {
    match r {
        Ok(Err(e)) => tracing::warn!(error = %e, "server ended with an error"),
        Err(e) if !e.is_cancelled() => tracing::warn!(error = %e, "server task failed"),
        _ => {}
    }
}
