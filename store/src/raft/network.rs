//! The client half of the replica-to-replica transport: openraft's RPCs and leader forwarding,
//! over tonic gRPC (`proto/peer.proto`, served by [`super::service`]).
//!
//! Data flow: openraft asks [`PeerNetwork`] for a [`PeerConnection`] per target; each RPC is
//! bincode-encoded into a `Blob` stamped with our node ID, sent through the [`Transport`]
//! (gRPC, or the simulation's network) under the caller's deadline, and the reply's
//! `Result<Resp, Err>` is decoded back. Followers use [`PeerNetwork::forward`]
//! to hand a request to the leader.
//!
//! Invariants:
//! - Nothing connects eagerly: one lazily connected [`Channel`] per peer URL, shared by every
//!   connection to that URL and reconnected by tonic after failures.
//! - A target blocked in [`LinkControl`] gets nothing sent; the call fails as unreachable.
//! - No call outlives its deadline; transport failures become `RPCError::Unreachable` (peer
//!   down: openraft backs off), `Timeout` or `Network`; an error the remote Raft returned
//!   becomes `RPCError::RemoteError`.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{AnyError, RPCTypes};
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::forward::{ForwardRequest, ForwardResponse};
use super::service::proto::peer_client::PeerClient;
use super::service::proto::Blob;
use super::service::{decode, encode, encoded_len, MAX_MESSAGE_BYTES, MAX_PAYLOAD_BYTES};
use crate::error::StoreError;
use crate::types::{Node, NodeId, TypeConfig};

/// How long one TCP connect to a peer may take. Calls carry their own (often shorter)
/// deadline; this bounds a connect to a black-holed address that keeps running in the
/// background after the call that started it has given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// HTTP/2 PING period on peer connections, so a peer that vanished without closing its socket
/// (power loss, partition) is noticed in seconds and the channel reconnects, instead of
/// waiting for TCP retransmission timeouts (minutes).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// How long a PING may go unanswered before the connection is declared dead.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The set of peers this replica must not talk to, shared between the client ([`PeerNetwork`])
/// and the server ([`super::service::PeerService`]) so tests can cut links in both directions.
#[derive(Clone, Debug, Default)]
pub struct LinkControl {
    blocked: Arc<Mutex<HashSet<NodeId>>>,
}

impl LinkControl {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cut the link to and from `id`.
    pub fn block(&self, id: NodeId) {
        self.set().insert(id);
    }

    /// Restore the link to and from `id`.
    pub fn unblock(&self, id: NodeId) {
        self.set().remove(&id);
    }

    /// Restore every link.
    pub fn unblock_all(&self) {
        self.set().clear();
    }

    pub fn is_blocked(&self, id: NodeId) -> bool {
        self.set().contains(&id)
    }

    fn set(&self) -> MutexGuard<'_, HashSet<NodeId>> {
        // A set of IDs cannot be left half-updated by a panicking holder.
        self.blocked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How peer messages travel: [`GrpcTransport`] between processes, or an in-process network
/// (the deterministic simulation's) that serves calls with [`super::service::PeerService::handle`].
pub trait Transport: Send + Sync + Debug + 'static {
    /// Deliver `blob` as `rpc` to the replica at `peer_url`; give up after `ttl`.
    fn call(
        &self,
        peer_url: &str,
        rpc: Rpc,
        blob: Blob,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, CallError>>;
}

/// The production transport: tonic gRPC, one lazily connected [`Channel`] per peer URL;
/// over mutual TLS ([`crate::tls`]) when built with a client configuration, and then only
/// to `https://` peer URLs.
#[derive(Default)]
pub struct GrpcTransport {
    channels: Mutex<HashMap<String, Channel>>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTransport").field("tls", &self.tls.is_some()).finish_non_exhaustive()
    }
}

impl GrpcTransport {
    /// Plain HTTP/2 without `tls`, mutual TLS with it.
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self { channels: Mutex::default(), tls }
    }

    /// A new lazily connected channel to `peer_url`, over TLS exactly when this transport has it.
    fn channel(&self, peer_url: &str) -> Result<Channel, tonic::Status> {
        let bad = |why: String| tonic::Status::invalid_argument(format!("peer URL {peer_url:?}: {why}"));
        let https = peer_url.strip_prefix("https://");
        match (&self.tls, https) {
            (Some(tls), Some(rest)) => {
                let endpoint = endpoint(&format!("http://{rest}")).map_err(|e| bad(e.to_string()))?;
                Ok(endpoint.connect_with_connector_lazy(crate::tls::connector(tls.clone(), CONNECT_TIMEOUT)))
            }
            (Some(_), None) => Err(bad("this replica speaks to its peers over TLS only; use https://".into())),
            (None, Some(_)) => Err(bad("https:// needs peer TLS (--peer-cert-file)".into())),
            (None, None) => Ok(endpoint(peer_url).map_err(|e| bad(e.to_string()))?.connect_lazy()),
        }
    }

    /// A client for `peer_url`, on the channel cached for it (created lazily, unconnected).
    fn client(&self, peer_url: &str) -> Result<PeerClient<Channel>, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let channel = match channels.get(peer_url) {
            Some(channel) => channel.clone(),
            None => {
                let channel = self.channel(peer_url)?;
                channels.insert(peer_url.to_string(), channel.clone());
                channel
            }
        };
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

impl Transport for GrpcTransport {
    fn call(
        &self,
        peer_url: &str,
        rpc: Rpc,
        blob: Blob,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, CallError>> {
        let client = self.client(peer_url);
        Box::pin(async move { call(&mut client.map_err(CallError::Status)?, rpc, blob, ttl).await })
    }
}

/// The transport factory handed to openraft; also the client for forwarding to the leader.
/// Cheap to clone: clones share the transport and link controls.
#[derive(Clone, Debug)]
pub struct PeerNetwork {
    my_id: NodeId,
    links: LinkControl,
    transport: Arc<dyn Transport>,
}

impl PeerNetwork {
    /// A network for the replica `my_id`, which stamps its ID on every request it sends.
    pub fn new(my_id: NodeId, links: LinkControl, transport: Arc<dyn Transport>) -> Self {
        Self { my_id, links, transport }
    }

    pub fn links(&self) -> &LinkControl {
        &self.links
    }

    /// Send `req` to the leader `target` at `peer_url` and wait at most `timeout` for its answer.
    pub async fn forward(
        &self,
        target: NodeId,
        peer_url: &str,
        req: ForwardRequest,
        timeout: Duration,
    ) -> Result<ForwardResponse, StoreError> {
        let unreachable = |reason: String| StoreError::LeaderUnreachable { leader: target, reason };
        if self.links.is_blocked(target) {
            return Err(unreachable("link blocked".into()));
        }
        let data = encode(&req).map_err(|e| match *e {
            bincode::ErrorKind::SizeLimit => StoreError::TooLarge,
            _ => StoreError::InvalidArgument(format!("cannot encode forwarded request: {e}")),
        })?;
        let blob = Blob { data, from: self.my_id };
        match self.transport.call(peer_url, Rpc::Forward, blob, timeout).await {
            Ok(data) => decode::<Result<ForwardResponse, StoreError>>(&data)
                .map_err(|e| unreachable(format!("undecodable reply: {e}")))?,
            Err(CallError::Timeout) => Err(StoreError::Timeout),
            Err(CallError::Status(s)) if is_deadline(s.code()) => Err(StoreError::Timeout),
            Err(CallError::Status(s)) if never_delivered(&s) => Err(unreachable(s.message().to_string())),
            // The request may have reached the leader and been applied: the outcome is
            // unknown, so the caller must not retry it (etcd answers "request timed out").
            Err(CallError::Status(s)) => {
                tracing::debug!(status = %s, "forwarded request failed after it may have been delivered");
                Err(StoreError::Timeout)
            }
        }
    }
}

/// Whether a failed forward certainly never reached the leader's handler: the connection
/// could not be made, the leader refused the link, or it does not serve the call.
fn never_delivered(s: &tonic::Status) -> bool {
    use std::error::Error as _;
    let mut text = s.message().to_ascii_lowercase();
    let mut source = s.source();
    while let Some(e) = source {
        text.push_str(&e.to_string().to_ascii_lowercase());
        source = e.source();
    }
    match s.code() {
        tonic::Code::Unavailable => text.contains("link blocked") || text.contains("connect"),
        tonic::Code::Unimplemented | tonic::Code::InvalidArgument => true,
        _ => false,
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerConnection {
        PeerConnection {
            my_id: self.my_id,
            target,
            node: node.clone(),
            links: self.links.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// openraft's client for one target replica.
pub struct PeerConnection {
    my_id: NodeId,
    target: NodeId,
    node: Node,
    links: LinkControl,
    transport: Arc<dyn Transport>,
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

impl PeerConnection {
    /// Send already-encoded `data` as `action` and decode the remote `Result<Resp, RaftError<E>>`.
    async fn send<Resp, E>(&mut self, action: RPCTypes, data: Vec<u8>, ttl: Duration) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        if self.links.is_blocked(self.target) {
            return Err(unreachable("link blocked"));
        }
        let blob = Blob { data, from: self.my_id };
        let timeout = RPCError::Timeout(Timeout { action, id: self.my_id, target: self.target, timeout: ttl });
        let data = match self.transport.call(&self.node.peer_url, Rpc::Raft(action), blob, ttl).await {
            Ok(data) => data,
            Err(CallError::Timeout) => return Err(timeout),
            Err(CallError::Status(s)) if is_deadline(s.code()) => return Err(timeout),
            Err(CallError::Status(s)) => return Err(status_error(&s)),
        };
        let reply: Result<Resp, RaftError<NodeId, E>> = decode(&data)
            .map_err(|e| RPCError::Network(NetworkError::from(AnyError::error(format!("undecodable reply: {e}")))))?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let data = match encode(&rpc) {
            Ok(data) => data,
            Err(e) if matches!(*e, bincode::ErrorKind::SizeLimit) => {
                return Err(too_large(&rpc));
            }
            Err(e) => return Err(encode_error(&e)),
        };
        self.send(RPCTypes::AppendEntries, data, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let data = encode(&rpc).map_err(|e| encode_error(&e))?;
        self.send(RPCTypes::InstallSnapshot, data, option.hard_ttl()).await
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        let data = encode(&rpc).map_err(|e| encode_error(&e))?;
        self.send(RPCTypes::Vote, data, option.hard_ttl()).await
    }
}

/// The endpoint for a peer URL; a bare `host:port` is taken as plain HTTP/2.
fn endpoint(peer_url: &str) -> Result<Endpoint, tonic::transport::Error> {
    let uri = if peer_url.contains("://") { peer_url.to_string() } else { format!("http://{peer_url}") };
    Ok(Endpoint::from_shared(uri)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// The service's methods: openraft's three RPCs and leader forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    Raft(RPCTypes),
    Forward,
}

/// Why a call brought no reply.
#[derive(Debug)]
pub enum CallError {
    /// Our deadline passed first.
    Timeout,
    /// The transport or the remote service failed the call (a connection refused or a peer
    /// refusing the link is `UNAVAILABLE`, as from tonic).
    Status(tonic::Status),
}

/// One unary call that gives up after `ttl`; dropping the call resets its HTTP/2 stream.
async fn call(client: &mut PeerClient<Channel>, rpc: Rpc, blob: Blob, ttl: Duration) -> Result<Vec<u8>, CallError> {
    let mut request = tonic::Request::new(blob);
    // Tell the server too, so it stops working on a request we no longer wait for.
    request.set_timeout(ttl);
    let reply = async {
        match rpc {
            Rpc::Raft(RPCTypes::AppendEntries) => client.append_entries(request).await,
            Rpc::Raft(RPCTypes::Vote) => client.vote(request).await,
            Rpc::Raft(RPCTypes::InstallSnapshot) => client.install_snapshot(request).await,
            Rpc::Forward => client.forward(request).await,
        }
    };
    match tokio::time::timeout(ttl, reply).await {
        Err(_elapsed) => Err(CallError::Timeout),
        Ok(Err(status)) => Err(CallError::Status(status)),
        Ok(Ok(reply)) => Ok(reply.into_inner().data),
    }
}

fn is_deadline(code: Code) -> bool {
    matches!(code, Code::DeadlineExceeded | Code::Cancelled)
}

fn unreachable<E: Error>(reason: impl ToString) -> RPCError<NodeId, Node, E> {
    RPCError::Unreachable(Unreachable::from(AnyError::error(reason)))
}

/// Peer down, refusing us, or speaking another protocol: back off (`Unreachable`). Anything
/// else (a reset stream, an overloaded peer) may clear at once: `Network`.
fn status_error<E: Error>(status: &tonic::Status) -> RPCError<NodeId, Node, E> {
    let error = AnyError::new(status);
    match status.code() {
        Code::Unavailable | Code::Unimplemented | Code::InvalidArgument | Code::Internal => {
            RPCError::Unreachable(Unreachable::from(error))
        }
        _ => RPCError::Network(NetworkError::from(error)),
    }
}

fn encode_error<E: Error>(e: &bincode::Error) -> RPCError<NodeId, Node, E> {
    RPCError::Network(NetworkError::from(AnyError::error(format!("cannot encode request: {e}"))))
}

/// Ask openraft to resend `rpc`'s entries in batches that fit [`MAX_PAYLOAD_BYTES`]. A lone
/// entry cannot be split (and openraft would resend it at once, forever): report the peer
/// unreachable so replication backs off instead.
fn too_large<E: Error>(rpc: &AppendEntriesRequest<TypeConfig>) -> RPCError<NodeId, Node, E> {
    let n = rpc.entries.len() as u64;
    if n <= 1 {
        return unreachable("a single log entry exceeds the peer message bound");
    }
    let size = encoded_len(rpc).unwrap_or(u64::MAX).max(1);
    let hint = (u128::from(n) * MAX_PAYLOAD_BYTES as u128 / u128::from(size)) as u64;
    RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint.clamp(1, n - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_control_is_shared_between_clones() {
        let links = LinkControl::new();
        let other = links.clone();
        links.block(7);
        links.block(8);
        assert!(other.is_blocked(7) && other.is_blocked(8));
        other.unblock(7);
        assert!(!links.is_blocked(7) && links.is_blocked(8));
        links.unblock_all();
        assert!(!other.is_blocked(8));
    }

    #[test]
    fn bare_host_port_is_plain_http() {
        assert_eq!(endpoint("127.0.0.1:2380").unwrap().uri().scheme_str(), Some("http"));
        assert_eq!(endpoint("http://10.0.0.1:2380").unwrap().uri().port_u16(), Some(2380));
        assert!(endpoint("http://bad host:1").is_err());
    }

    #[test]
    fn oversized_batches_are_split_but_a_lone_entry_backs_off() {
        let blank = |index| openraft::Entry::<TypeConfig> {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Blank,
        };
        let batch = |n| AppendEntriesRequest::<TypeConfig> {
            vote: openraft::Vote::new_committed(1, 1),
            prev_log_id: None,
            entries: (1..=n).map(blank).collect(),
            leader_commit: None,
        };
        let split: RPCError<NodeId, Node> = too_large(&batch(3));
        assert!(matches!(split, RPCError::PayloadTooLarge(p) if p.entries_hint() == 2));
        let lone: RPCError<NodeId, Node> = too_large(&batch(1));
        assert!(matches!(lone, RPCError::Unreachable(_)));
    }
}
