//! The server half of the replica-to-replica transport: the `flotilla.peer.Peer` gRPC service.
//!
//! Data flow: a `Blob` arrives, its sender is checked against [`LinkControl`], its bincode
//! payload is decoded and handed to the local [`Raft`] (append-entries, vote, snapshot chunk)
//! or to the [`ForwardHandler`] (requests a follower forwards to us as leader). The handler's
//! whole `Result` is bincode-encoded into the reply, so the caller can rebuild a remote error.
//!
//! Invariants:
//! - Bytes from the network never panic the server: undecodable payloads answer
//!   `INVALID_ARGUMENT`.
//! - A request from a blocked peer answers `UNAVAILABLE` before touching Raft, so partitions
//!   cut with [`LinkControl`] are symmetric in in-process tests.
//! - Both ends use the same codec (`encode`/`decode`) and message bound
//!   ([`MAX_MESSAGE_BYTES`]).

use std::future::Future;
use std::sync::Arc;

use bincode::Options;
use openraft::RPCTypes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::forward::{ForwardRequest, ForwardResponse};
use super::network::{LinkControl, Rpc};
use crate::error::StoreError;
use crate::types::Raft;

/// Code generated from `proto/peer.proto`.
pub mod proto {
    tonic::include_proto!("flotilla.peer");
}

use proto::peer_server::{Peer, PeerServer};
use proto::Blob;

/// The largest gRPC message either end sends or accepts. Snapshot chunks are up to 3 MiB and an
/// append-entries batch holds up to `max_payload_entries` entries of up to
/// [`crate::config::MAX_REQUEST_BYTES`] each; 64 MiB covers a snapshot chunk with room to spare
/// and most batches, while bounding the memory one peer message can pin. Batches that do not
/// fit are split by openraft (the client answers `PayloadTooLarge`).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The largest bincode payload inside a [`Blob`]: the message bound less room for the protobuf
/// envelope (two tags, a length and a node ID: under 32 bytes).
pub(crate) const MAX_PAYLOAD_BYTES: usize = MAX_MESSAGE_BYTES - 1024;

/// The one codec of the peer protocol. The size limit makes decoding of hostile length
/// prefixes fail fast instead of allocating.
fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_PAYLOAD_BYTES as u64)
}

/// Encode a payload; fails with `SizeLimit` past [`MAX_PAYLOAD_BYTES`] (public for tests that
/// speak to the peer port).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> bincode::Result<Vec<u8>> {
    codec().serialize(value)
}

/// Decode a payload; any malformed input is an error, never a panic (public for the fuzz
/// targets, `fuzz/`).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> bincode::Result<T> {
    codec().deserialize(bytes)
}

/// The encoded size of a payload, whatever its size.
pub(crate) fn encoded_len<T: Serialize + ?Sized>(value: &T) -> bincode::Result<u64> {
    codec().with_no_limit().serialized_size(value)
}

/// What the leader does with a request a follower forwarded to it.
pub trait ForwardHandler: Send + Sync + 'static {
    fn forward(&self, req: ForwardRequest) -> impl Future<Output = Result<ForwardResponse, StoreError>> + Send;
}

/// The `Peer` gRPC service of one replica.
pub struct PeerService<H> {
    raft: Raft,
    handler: Arc<H>,
    links: LinkControl,
}

impl<H: ForwardHandler> PeerService<H> {
    /// `links` should be the same [`LinkControl`] as this replica's `PeerNetwork`.
    pub fn new(raft: Raft, handler: Arc<H>, links: LinkControl) -> Self {
        Self { raft, handler, links }
    }

    /// The tonic service, ready for `tonic::transport::Server::add_service`.
    pub fn into_server(self) -> PeerServer<Self> {
        PeerServer::new(self).max_decoding_message_size(MAX_MESSAGE_BYTES).max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Serve one call in-process exactly as the gRPC service does (for in-process transports
    /// such as the deterministic simulation's): the reply's payload, or the call's status.
    pub async fn handle(&self, rpc: Rpc, blob: Blob) -> Result<Vec<u8>, Status> {
        let request = Request::new(blob);
        let reply = match rpc {
            Rpc::Raft(RPCTypes::AppendEntries) => Peer::append_entries(self, request).await,
            Rpc::Raft(RPCTypes::Vote) => Peer::vote(self, request).await,
            Rpc::Raft(RPCTypes::InstallSnapshot) => Peer::install_snapshot(self, request).await,
            Rpc::Forward => Peer::forward(self, request).await,
        };
        reply.map(|r| r.into_inner().data)
    }

    /// Refuse blocked senders, then decode the payload.
    fn admit<T: DeserializeOwned>(&self, request: Request<Blob>) -> Result<T, Status> {
        let blob = request.into_inner();
        if blob.from != 0 && self.links.is_blocked(blob.from) {
            return Err(Status::unavailable("link blocked"));
        }
        decode(&blob.data).map_err(|e| Status::invalid_argument(format!("undecodable payload: {e}")))
    }
}

/// Encode a handler's whole result as the reply.
fn reply<T: Serialize>(result: &T) -> Result<Response<Blob>, Status> {
    match encode(result) {
        Ok(data) => Ok(Response::new(Blob { data, from: 0 })),
        Err(e) => Err(Status::internal(format!("cannot encode reply: {e}"))),
    }
}

#[tonic::async_trait]
impl<H: ForwardHandler> Peer for PeerService<H> {
    async fn append_entries(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let req = self.admit(request)?;
        reply(&self.raft.append_entries(req).await)
    }

    async fn vote(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let req = self.admit(request)?;
        reply(&self.raft.vote(req).await)
    }

    async fn install_snapshot(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let req = self.admit(request)?;
        reply(&self.raft.install_snapshot(req).await)
    }

    async fn forward(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let req = self.admit(request)?;
        reply(&self.handler.forward(req).await)
    }
}

#[cfg(test)]
mod tests {
    use std::future::pending;
    use std::io::Cursor;
    use std::ops::RangeBounds;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError};
    use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
    use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
    use openraft::raft::{InstallSnapshotRequest, VoteRequest};
    use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
    use openraft::{CommittedLeaderId, LogState, RaftLogReader, RaftSnapshotBuilder, Snapshot, Vote};
    use tokio::net::TcpListener;
    use tokio_stream::wrappers::TcpListenerStream;

    use super::*;
    use futures::future::BoxFuture;

    use crate::raft::network::{CallError, GrpcTransport, PeerNetwork, Transport};
    use crate::types::{CommandResult, Entry, LogId, Node, NodeId, Rejection, SnapshotMeta};
    use crate::types::{StorageError, StoredMembership, TypeConfig};

    /// The caller's and the server's node IDs.
    const CLIENT: NodeId = 1;
    const SERVER: NodeId = 2;
    /// Generous: these tests prove outcomes, not latency.
    const PATIENCE: Duration = Duration::from_secs(5);

    /// Answers `ReadIndex` with 42, refuses keep-alives, and never answers TTL queries.
    #[derive(Default)]
    struct Handler {
        calls: AtomicUsize,
    }

    impl ForwardHandler for Handler {
        async fn forward(&self, req: ForwardRequest) -> Result<ForwardResponse, StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match req {
                ForwardRequest::ReadIndex => Ok(ForwardResponse::ReadIndex(42)),
                ForwardRequest::LeaseTimeToLive { .. } => pending().await,
                _ => Err(Rejection::LeaseNotFound.into()),
            }
        }
    }

    /// Just enough storage for an idle, uninitialised Raft node: a vote and an empty log.
    #[derive(Clone, Default)]
    struct Stub(Arc<Mutex<Option<Vote<NodeId>>>>);

    impl RaftLogReader<TypeConfig> for Stub {
        async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
            &mut self,
            _range: RB,
        ) -> Result<Vec<Entry>, StorageError> {
            Ok(vec![])
        }
    }

    impl RaftLogStorage<TypeConfig> for Stub {
        type LogReader = Self;
        async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
            Ok(LogState { last_purged_log_id: None, last_log_id: None })
        }
        async fn get_log_reader(&mut self) -> Self {
            self.clone()
        }
        async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
            *self.0.lock().unwrap() = Some(*vote);
            Ok(())
        }
        async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
            Ok(*self.0.lock().unwrap())
        }
        async fn append<I>(&mut self, _: I, done: LogFlushed<TypeConfig>) -> Result<(), StorageError>
        where
            I: IntoIterator<Item = Entry> + Send,
        {
            done.log_io_completed(Ok(()));
            Ok(())
        }
        async fn truncate(&mut self, _: LogId) -> Result<(), StorageError> {
            Ok(())
        }
        async fn purge(&mut self, _: LogId) -> Result<(), StorageError> {
            Ok(())
        }
    }

    impl RaftSnapshotBuilder<TypeConfig> for Stub {
        async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
            unimplemented!("an idle node never builds a snapshot")
        }
    }

    impl RaftStateMachine<TypeConfig> for Stub {
        type SnapshotBuilder = Self;
        async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
            Ok((None, StoredMembership::default()))
        }
        async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
        where
            I: IntoIterator<Item = Entry> + Send,
        {
            Ok(entries.into_iter().map(|_| CommandResult::None).collect())
        }
        async fn get_snapshot_builder(&mut self) -> Self {
            self.clone()
        }
        async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
            Ok(Box::default())
        }
        async fn install_snapshot(&mut self, _: &SnapshotMeta, _: Box<Cursor<Vec<u8>>>) -> Result<(), StorageError> {
            Ok(())
        }
        async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
            Ok(None)
        }
    }

    struct Server {
        url: String,
        raft: Raft,
        handler: Arc<Handler>,
        links: LinkControl,
    }

    /// Serve `PeerService` for node `SERVER` on a loopback port.
    async fn serve() -> Server {
        serve_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    async fn serve_on(listener: TcpListener) -> Server {
        let links = LinkControl::new();
        let config = Arc::new(openraft::Config::default().validate().unwrap());
        let network = PeerNetwork::new(SERVER, links.clone(), grpc());
        let raft = Raft::new(SERVER, config, network, Stub::default(), Stub::default()).await.unwrap();
        let handler = Arc::new(Handler::default());
        let service = PeerService::new(raft.clone(), handler.clone(), links.clone());
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service.into_server())
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Server { url, raft, handler, links }
    }

    fn grpc() -> Arc<dyn Transport> {
        Arc::new(GrpcTransport::default())
    }

    /// Delivers every call straight to one in-process service, as the simulation's network does.
    struct InProcess(Arc<PeerService<Handler>>);

    impl std::fmt::Debug for InProcess {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("InProcess")
        }
    }

    impl Transport for InProcess {
        fn call(
            &self,
            _url: &str,
            rpc: Rpc,
            blob: Blob,
            _ttl: Duration,
        ) -> BoxFuture<'static, Result<Vec<u8>, CallError>> {
            let service = self.0.clone();
            Box::pin(async move { service.handle(rpc, blob).await.map_err(CallError::Status) })
        }
    }

    #[tokio::test]
    async fn in_process_transport_serves_forwards_and_raft_calls_like_grpc() {
        let links = LinkControl::new();
        let config = Arc::new(openraft::Config::default().validate().unwrap());
        let raft = Raft::new(
            SERVER,
            config,
            PeerNetwork::new(SERVER, links.clone(), grpc()),
            Stub::default(),
            Stub::default(),
        )
        .await
        .unwrap();
        let handler = Arc::new(Handler::default());
        let service = Arc::new(PeerService::new(raft.clone(), handler.clone(), links.clone()));
        let net = PeerNetwork::new(CLIENT, LinkControl::new(), Arc::new(InProcess(service)));
        let answer = net.forward(SERVER, "sim://server", ForwardRequest::ReadIndex, PATIENCE).await;
        assert!(matches!(answer, Ok(ForwardResponse::ReadIndex(42))), "{answer:?}");
        let node = Node { name: "server".into(), peer_url: "sim://server".into(), client_urls: vec![] };
        let mut conn = net.clone().new_client(SERVER, &node).await;
        let vote = conn.vote(VoteRequest::new(Vote::new(1, CLIENT), None), RPCOption::new(PATIENCE)).await;
        assert!(vote.is_ok(), "{vote:?}");
        links.block(CLIENT);
        let refused = net.forward(SERVER, "sim://server", ForwardRequest::ReadIndex, PATIENCE).await;
        assert!(matches!(refused, Err(StoreError::LeaderUnreachable { leader: SERVER, .. })), "{refused:?}");
        assert_eq!(handler.calls.load(Ordering::SeqCst), 1);
        raft.shutdown().await.unwrap();
    }

    async fn forward(url: &str, req: ForwardRequest, net: &PeerNetwork) -> Result<ForwardResponse, StoreError> {
        net.forward(SERVER, url, req, PATIENCE).await
    }

    #[tokio::test]
    async fn forward_round_trips_answers_and_remote_errors() {
        let server = serve().await;
        let net = PeerNetwork::new(CLIENT, LinkControl::new(), grpc());
        let answer = forward(&server.url, ForwardRequest::ReadIndex, &net).await;
        assert!(matches!(answer, Ok(ForwardResponse::ReadIndex(42))), "{answer:?}");
        let refused = forward(&server.url, ForwardRequest::LeaseKeepAlive { id: 9 }, &net).await;
        assert_eq!(refused.unwrap_err(), StoreError::Rejected(Rejection::LeaseNotFound));
    }

    #[tokio::test]
    async fn blocked_links_fail_forward_without_reaching_the_handler() {
        let server = serve().await;
        let net = PeerNetwork::new(CLIENT, LinkControl::new(), grpc());
        net.links().block(SERVER);
        let outbound = forward(&server.url, ForwardRequest::ReadIndex, &net).await;
        assert!(matches!(outbound, Err(StoreError::LeaderUnreachable { leader: SERVER, .. })));
        net.links().unblock(SERVER);
        server.links.block(CLIENT);
        let inbound = forward(&server.url, ForwardRequest::ReadIndex, &net).await;
        assert!(matches!(inbound, Err(StoreError::LeaderUnreachable { leader: SERVER, .. })));
        assert_eq!(server.handler.calls.load(Ordering::SeqCst), 0);
        server.links.unblock_all();
        assert!(forward(&server.url, ForwardRequest::ReadIndex, &net).await.is_ok());
    }

    #[tokio::test]
    async fn a_silent_leader_is_a_timeout() {
        let server = serve().await;
        let net = PeerNetwork::new(CLIENT, LinkControl::new(), grpc());
        let req = ForwardRequest::LeaseTimeToLive { id: 1 };
        let silent = net.forward(SERVER, &server.url, req, Duration::from_millis(200)).await;
        assert_eq!(silent.unwrap_err(), StoreError::Timeout);
    }

    #[tokio::test]
    async fn a_dead_peer_is_unreachable_until_it_comes_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let node = Node { peer_url: format!("http://{addr}"), ..Node::default() };
        let mut net = PeerNetwork::new(CLIENT, LinkControl::new(), grpc());
        let mut conn = net.new_client(SERVER, &node).await;
        let vote = VoteRequest::new(Vote::new(5, CLIENT), None);
        let opt = RPCOption::new(PATIENCE);

        let refused = conn.vote(vote.clone(), opt.clone()).await;
        assert!(matches!(refused, Err(RPCError::Unreachable(_))), "{refused:?}");
        let dead = forward(&node.peer_url, ForwardRequest::ReadIndex, &net).await;
        assert!(matches!(dead, Err(StoreError::LeaderUnreachable { leader: SERVER, .. })), "{dead:?}");

        // The same (cached, lazily reconnecting) channels reach the peer once it listens.
        let _server = serve_on(TcpListener::bind(addr).await.unwrap()).await;
        conn.vote(vote, opt).await.unwrap();
        forward(&node.peer_url, ForwardRequest::ReadIndex, &net).await.unwrap();
    }

    fn chunk(snapshot_id: &str, offset: u64) -> InstallSnapshotRequest<TypeConfig> {
        let last = LogId::new(CommittedLeaderId::new(6, CLIENT), 10);
        InstallSnapshotRequest {
            vote: Vote::new_committed(6, CLIENT),
            meta: SnapshotMeta {
                last_log_id: Some(last),
                last_membership: StoredMembership::default(),
                snapshot_id: snapshot_id.into(),
            },
            offset,
            data: vec![7; 16],
            done: false,
        }
    }

    #[tokio::test]
    async fn raft_rpcs_reach_the_remote_raft_and_bring_back_its_errors() {
        let server = serve().await;
        let node = Node { peer_url: server.url.clone(), ..Node::default() };
        let mut conn = PeerNetwork::new(CLIENT, LinkControl::new(), grpc()).new_client(SERVER, &node).await;
        let opt = RPCOption::new(PATIENCE);
        let vote = VoteRequest::new(Vote::new(5, CLIENT), None);
        let resp = conn.vote(vote.clone(), opt.clone()).await.unwrap();
        assert!(resp.vote >= vote.vote, "{resp:?}");
        let append = AppendEntriesRequest {
            vote: Vote::new_committed(6, CLIENT),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        };
        let resp = conn.append_entries(append, opt.clone()).await.unwrap();
        assert!(matches!(resp, AppendEntriesResponse::Success), "{resp:?}");
        let resp = conn.install_snapshot(chunk("s1", 0), opt.clone()).await.unwrap();
        assert_eq!(resp.vote, Vote::new_committed(6, CLIENT));
        // A chunk in the middle of a snapshot the receiver never began: its API error comes back.
        let mismatch = conn.install_snapshot(chunk("s2", 16), opt).await;
        assert!(
            matches!(
                mismatch,
                Err(RPCError::RemoteError(RemoteError {
                    target: SERVER,
                    source: RaftError::APIError(InstallSnapshotError::SnapshotMismatch(_)),
                    ..
                }))
            ),
            "{mismatch:?}"
        );
    }

    #[tokio::test]
    async fn raft_rpc_failures_become_the_matching_rpc_errors() {
        let server = serve().await;
        let node = Node { peer_url: server.url.clone(), ..Node::default() };
        let mut net = PeerNetwork::new(CLIENT, LinkControl::new(), grpc());
        let mut conn = net.new_client(SERVER, &node).await;
        let opt = RPCOption::new(PATIENCE);
        let vote = VoteRequest::new(Vote::new(5, CLIENT), None);

        net.links().block(SERVER);
        let outbound = conn.vote(vote.clone(), opt.clone()).await;
        assert!(matches!(outbound, Err(RPCError::Unreachable(_))), "{outbound:?}");
        net.links().unblock(SERVER);
        server.links.block(CLIENT);
        let blocked = conn.vote(vote.clone(), opt.clone()).await;
        assert!(matches!(blocked, Err(RPCError::Unreachable(_))), "{blocked:?}");
        server.links.unblock(CLIENT);

        server.raft.shutdown().await.unwrap();
        let stopped = conn.vote(vote, opt).await;
        let fatal = matches!(&stopped, Err(RPCError::RemoteError(e))
            if e.target == SERVER && matches!(e.source, RaftError::Fatal(_)));
        assert!(fatal, "{stopped:?}");
    }

    #[tokio::test]
    async fn garbage_payloads_are_invalid_arguments() {
        let server = serve().await;
        let mut client = proto::peer_client::PeerClient::connect(server.url.clone()).await.unwrap();
        for data in [vec![], vec![0xff; 64]] {
            let vote = client.vote(Blob { data: data.clone(), from: CLIENT }).await.unwrap_err();
            assert_eq!(vote.code(), tonic::Code::InvalidArgument);
            let fwd = client.forward(Blob { data, from: CLIENT }).await.unwrap_err();
            assert_eq!(fwd.code(), tonic::Code::InvalidArgument);
        }
        assert_eq!(server.handler.calls.load(Ordering::SeqCst), 0);
    }
}
