//! [`StoreNode`]: one replica of the store, and the handle everything above it uses.
//!
//! Writes go through Raft: on the leader directly, on a follower forwarded to the leader over
//! the peer service. Linearizable reads first obtain a read index from the leader (which
//! confirms its leadership with a quorum), wait until the local state machine has applied it,
//! then read locally; serializable reads skip that. Every call is bounded by
//! `Config::request_timeout`: a replica cut off in a minority answers `NoLeader` or `Timeout`,
//! never a stale linearizable read and never a hang.
//!
//! Operations: a leadership transfer pauses the leader's proposals ([`transfer`]); writes that
//! add data stop at the size quota ([`quota`]).

mod batcher;
mod forwarding;
mod leases;
mod membership;
mod quota;
mod reads;
mod transfer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::ServerState;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, MAX_REQUEST_BYTES};
use crate::error::StoreError;
use crate::ids;
use crate::lease::Lessor;
use crate::mvcc::key_range::KeyRange;
use crate::mvcc::txn::check_txn_request;
use crate::pb::{
    PbDeleteRequest, PbDeleteResponse, PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse, PbResponseHeader,
    PbTxnRequest, PbTxnResponse,
};
use crate::raft::forward::{ForwardRequest, ForwardResponse};
use crate::raft::log_store::LogStore;
use crate::raft::network::{GrpcTransport, LinkControl, PeerNetwork, Transport};
use crate::raft::service::{proto::peer_server::PeerServer, PeerService};
use crate::raft::state_machine::{SmShared, StateMachine};
use crate::types::{Command, CommandResult, Node, NodeId, Raft};
use crate::watch::Watcher;

pub use membership::{Member, Status};

/// How a replica joins: founding member of a new cluster, or a member added to a running one.
#[derive(Clone, Debug)]
pub enum Bootstrap {
    /// Form a new cluster of these members (every founding member is given the same map).
    New(BTreeMap<NodeId, Node>),
    /// Join an existing cluster that already lists this member.
    Existing,
}

/// Pause between attempts while waiting for a leader to be elected or discovered.
const LEADER_POLL: Duration = Duration::from_millis(50);

pub struct StoreNode {
    id: NodeId,
    cluster_id: u64,
    me: Node,
    cfg: Config,
    raft: Raft,
    sm: Arc<SmShared>,
    network: PeerNetwork,
    lessor: Lessor,
    batcher: batcher::Batcher,
    forwarder: batcher::Batcher,
    reads: reads::ReadCoalescer,
    /// Admits proposals; a leadership transfer closes it ([`transfer`]).
    gate: Arc<transfer::ProposalGate>,
    /// One leadership transfer at a time.
    transfer_lock: tokio::sync::Mutex<()>,
    leader_since: Arc<transfer::LeaderSince>,
    size: quota::SizeSampler,
    /// This node, for tasks it spawns (they must not keep it alive).
    weak: std::sync::Weak<StoreNode>,
    cancel: CancellationToken,
}

impl StoreNode {
    /// Open the stores under `cfg.data_dir`, start Raft, and (for a pristine founding member)
    /// initialize the cluster. Background tasks stop when `shutdown` is called.
    pub async fn open(
        cfg: Config,
        me: Node,
        bootstrap: Bootstrap,
        links: LinkControl,
    ) -> Result<Arc<Self>, StoreError> {
        Self::open_with_transport(cfg, me, bootstrap, links, Arc::new(GrpcTransport::default())).await
    }

    /// [`StoreNode::open`] with peer messages carried by `transport` instead of gRPC (the
    /// deterministic simulation's network serves them with [`StoreNode::peer_service`]).
    pub async fn open_with_transport(
        cfg: Config,
        me: Node,
        bootstrap: Bootstrap,
        links: LinkControl,
        transport: Arc<dyn Transport>,
    ) -> Result<Arc<Self>, StoreError> {
        cfg.validate()?;
        let id = ids::member_id(&me.peer_url, &cfg.cluster_token);
        let mut log = LogStore::open(&cfg.data_dir.join("raft"))?;
        let pristine = log.read_vote().await.map_err(StoreError::storage)?.is_none()
            && log.get_log_state().await.map_err(StoreError::storage)?.last_log_id.is_none();
        let sm = StateMachine::open(&cfg.data_dir)?;
        let shared = sm.shared().clone();
        let network = PeerNetwork::new(id, links, transport);
        let raft_config = Arc::new(cfg.raft_config().validate().map_err(StoreError::storage)?);
        let raft = Raft::new(id, raft_config, network.clone(), log, sm).await.map_err(StoreError::storage)?;
        if let (true, Bootstrap::New(members)) = (pristine, &bootstrap) {
            if !members.contains_key(&id) {
                return Err(StoreError::InvalidArgument(format!(
                    "--initial-cluster does not list this member ({})",
                    me.peer_url
                )));
            }
            match raft.initialize(members.clone()).await {
                Ok(()) | Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(StoreError::storage(e)),
            }
        }
        let cancel = CancellationToken::new();
        let gate = Arc::new(transfer::ProposalGate::default());
        let proposer = Arc::new(batcher::Proposer {
            id,
            raft: raft.clone(),
            network: network.clone(),
            timeout: cfg.request_timeout,
            gate: gate.clone(),
        });
        let node = Arc::new_cyclic(|weak| Self {
            batcher: batcher::Batcher::start(proposer.clone(), batcher::Route::Local, cancel.clone()),
            forwarder: batcher::Batcher::start(proposer, batcher::Route::ToLeader, cancel.clone()),
            reads: reads::ReadCoalescer::default(),
            gate,
            transfer_lock: tokio::sync::Mutex::new(()),
            leader_since: Arc::default(),
            size: quota::SizeSampler::default(),
            weak: weak.clone(),
            id,
            cluster_id: ids::cluster_id(&cfg.cluster_token),
            me,
            cfg,
            raft,
            sm: shared,
            network,
            lessor: Lessor::default(),
            cancel,
        });
        tokio::spawn(leases::run_lessor(Arc::downgrade(&node), node.cancel.clone()));
        tokio::spawn(membership::publish_self(Arc::downgrade(&node), node.cancel.clone()));
        tokio::spawn(transfer::track_leadership(node.raft.clone(), node.leader_since.clone()));
        tracing::info!(member_id = format_args!("{id:x}"), name = %node.me.name, pristine, "store node started");
        Ok(node)
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The gRPC service other replicas call (Raft RPCs and forwarded requests).
    pub fn peer_server(self: &Arc<Self>) -> PeerServer<PeerService<StoreNode>> {
        self.peer_service().into_server()
    }

    /// The peer service itself, for in-process transports.
    pub fn peer_service(self: &Arc<Self>) -> PeerService<StoreNode> {
        PeerService::new(self.raft.clone(), self.clone(), self.network.links().clone())
    }

    /// Stop Raft and background tasks.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    /// A response header for this replica at the current revision.
    pub fn header(&self) -> PbResponseHeader {
        let revision = self.sm.mvcc.read().expect("lock poisoned").current_revision();
        self.header_at(revision)
    }

    fn header_at(&self, revision: i64) -> PbResponseHeader {
        PbResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.id,
            revision,
            raft_term: self.raft.metrics().borrow().current_term,
        }
    }

    fn fill(&self, header: &mut Option<PbResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header_at(revision));
    }

    // ---- KV ----

    pub async fn range(&self, req: PbRangeRequest) -> Result<PbRangeResponse, StoreError> {
        if !req.serializable {
            self.read_barrier().await?;
        }
        let mut resp = self.sm.mvcc.read().expect("lock poisoned").range(&req)?;
        self.fill(&mut resp.header);
        Ok(resp)
    }

    pub async fn put(&self, req: PbPutRequest) -> Result<PbPutResponse, StoreError> {
        if req.key.is_empty() {
            return Err(StoreError::InvalidArgument("key is not provided".into()));
        }
        if req.ignore_value && !req.value.is_empty() {
            return Err(StoreError::InvalidArgument("value is provided".into()));
        }
        if req.ignore_lease && req.lease != 0 {
            return Err(StoreError::InvalidArgument("lease is provided".into()));
        }
        match self.write(Command::Put(req)).await? {
            CommandResult::Put(mut r) => {
                self.fill(&mut r.header);
                Ok(r)
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_range(&self, req: PbDeleteRequest) -> Result<PbDeleteResponse, StoreError> {
        if req.key.is_empty() {
            return Err(StoreError::InvalidArgument("key is not provided".into()));
        }
        match self.write(Command::DeleteRange(req)).await? {
            CommandResult::DeleteRange(mut r) => {
                self.fill(&mut r.header);
                Ok(r)
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn txn(&self, req: PbTxnRequest) -> Result<PbTxnResponse, StoreError> {
        check_txn_request(&req)?;
        let read_only = req.success.iter().chain(&req.failure).all(is_read_op);
        if read_only && req.compare.is_empty() {
            // A pure read needs no log entry; serve it like a linearizable range, from one
            // view of the state so every range sees the same revision.
            self.read_barrier().await?;
            let mvcc = self.sm.mvcc.read().expect("lock poisoned");
            let mut responses = Vec::new();
            for op in &req.success {
                if let Some(crate::pb::PbTxnOpRequest::RequestRange(r)) = &op.request {
                    let mut resp = mvcc.range(r)?;
                    self.fill(&mut resp.header);
                    responses.push(crate::pb::PbResponseOp {
                        response: Some(crate::pb::PbTxnOpResponse::ResponseRange(resp)),
                    });
                }
            }
            let header = Some(self.header_at(mvcc.current_revision()));
            return Ok(PbTxnResponse { header, succeeded: true, responses });
        }
        match self.write(Command::Txn(req)).await? {
            CommandResult::Txn(mut r) => {
                self.fill(&mut r.header);
                Ok(r)
            }
            other => Err(unexpected(other)),
        }
    }

    /// A Txn proposed on this replica only, and only while it leads: never forwarded, never
    /// retried elsewhere. Leader-only components (scheduler, controllers) write this way, so
    /// a decision made by a deposed leader cannot reach the log through the new leader; it
    /// fails with `NotLeader` (or, if leadership is lost mid-flight, `Timeout`/`NoLeader`
    /// without being committed in a later term by anyone else).
    pub async fn txn_local(&self, req: PbTxnRequest) -> Result<PbTxnResponse, StoreError> {
        check_txn_request(&req)?;
        let cmd = Command::Txn(req);
        let size = bincode::serialized_size(&cmd).map_err(StoreError::storage)? as usize;
        if size > MAX_REQUEST_BYTES {
            return Err(StoreError::TooLarge);
        }
        if self.raft.metrics().borrow().current_leader != Some(self.id) {
            return Err(StoreError::NotLeader);
        }
        let deadline = Instant::now() + self.cfg.request_timeout;
        let submitted = tokio::time::timeout_at(deadline, self.batcher.submit(cmd, size)).await;
        let (result, index) = submitted.unwrap_or(Err(StoreError::Timeout))?;
        self.wait_applied(index, deadline).await?;
        match result {
            CommandResult::Txn(mut r) => {
                self.fill(&mut r.header);
                Ok(r)
            }
            CommandResult::Rejected(r) => Err(r.into()),
            other => Err(unexpected(other)),
        }
    }

    /// Compact history; returns the header at the time of compaction.
    pub async fn compact(&self, revision: i64) -> Result<PbResponseHeader, StoreError> {
        match self.write(Command::Compact { revision }).await? {
            CommandResult::Compact { revision } => Ok(self.header_at(revision)),
            other => Err(unexpected(other)),
        }
    }

    /// Watch `range` from `start_revision` (0: from now). Fails if that revision is compacted
    /// only when the watcher first reads (it yields `WatchItem::Compacted`).
    pub fn watch(&self, range: KeyRange, start_revision: i64) -> Watcher {
        self.sm.hub.watch(range, start_revision)
    }

    /// A consistent copy of the whole state (a packed checkpoint), for `etcdctl snapshot save`.
    pub async fn snapshot_archive(&self) -> Result<Vec<u8>, StoreError> {
        let sm = self.sm.clone();
        let packed = crate::determinism::offload(move || sm.checkpoint()).await?;
        packed.map(|(_, archive)| archive)
    }

    /// Watchers open on this replica's store.
    pub fn watcher_count(&self) -> usize {
        self.sm.hub.watchers()
    }

    pub fn current_revision(&self) -> i64 {
        self.sm.mvcc.read().expect("lock poisoned").current_revision()
    }

    /// The revision history is compacted up to on this replica (0: never compacted).
    pub fn compact_revision(&self) -> i64 {
        self.sm.mvcc.read().expect("lock poisoned").compact_revision()
    }

    // ---- Raft plumbing ----

    /// Propose `cmd` and wait for its result, forwarding to the leader when needed.
    /// A deterministic refusal comes back as `Err(StoreError::Rejected)`.
    pub async fn write(&self, cmd: Command) -> Result<CommandResult, StoreError> {
        let size = bincode::serialized_size(&cmd).map_err(StoreError::storage)? as usize;
        if size > MAX_REQUEST_BYTES {
            return Err(StoreError::TooLarge);
        }
        self.check_quota(&cmd, size).await?;
        let deadline = Instant::now() + self.cfg.request_timeout;
        // The leader groups its writes into log entries; a follower groups them into
        // forwarded batches. Either way each write gets its own answer.
        let applied = self.retry_until(deadline, |leader, left| {
            let cmd = cmd.clone();
            async move {
                let queue = match leader {
                    Some(l) if l == self.id => &self.batcher,
                    Some(_) => &self.forwarder,
                    None => return Err(StoreError::NoLeader),
                };
                tokio::time::timeout(left, queue.submit(cmd, size)).await.unwrap_or(Err(StoreError::Timeout))
            }
        });
        let started = std::time::Instant::now();
        let (result, index) = applied.await.inspect_err(|_| {
            flotilla_metrics::store().raft_proposal_failures.inc();
        })?;
        flotilla_metrics::store().raft_proposal_seconds.observe(started.elapsed().as_secs_f64());
        // As in etcd, a write answered by a follower is visible on that follower when the
        // answer arrives: clients of one replica read their own writes.
        self.wait_applied(index, deadline).await?;
        match result {
            CommandResult::Rejected(r) => Err(r.into()),
            r => Ok(r),
        }
    }

    /// Wait until this replica may serve a linearizable read.
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        if self.cfg.unsafe_local_reads {
            return Ok(());
        }
        let deadline = Instant::now() + self.cfg.request_timeout;
        let index = match tokio::time::timeout_at(deadline, self.read_index()).await {
            Ok(index) => index?,
            Err(_) => return Err(self.no_leader_or_timeout()),
        };
        self.wait_applied(index, deadline).await
    }

    /// Wait until the local state machine has applied `index`.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), StoreError> {
        if self.raft.metrics().borrow().last_applied.is_some_and(|l| l.index >= index) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(left))
            .applied_index_at_least(Some(index), "applied index")
            .await
            .map(|_| ())
            .map_err(|_| StoreError::Timeout)
    }

    /// Run `req` on the leader: here if this replica leads, else over the peer service.
    async fn on_leader<T>(
        &self,
        deadline: Instant,
        req: ForwardRequest,
        pick: impl Fn(ForwardResponse) -> Option<T>,
    ) -> Result<T, StoreError> {
        let resp = self
            .retry_until(deadline, |leader, left| {
                let req = req.clone();
                async move {
                    match leader {
                        Some(l) if l == self.id => tokio::time::timeout(left, self.handle_forward(req))
                            .await
                            .unwrap_or(Err(StoreError::Timeout)),
                        Some(l) => match peer_url(&self.raft, l) {
                            Some(url) => self.network.forward(l, &url, req, left).await,
                            None => Err(StoreError::NoLeader),
                        },
                        None => Err(StoreError::NoLeader),
                    }
                }
            })
            .await?;
        pick(resp).ok_or_else(|| StoreError::storage("mismatched forward response"))
    }

    /// Call `attempt` with the leader this replica knows (if any) and the time left, until it
    /// succeeds, fails for a reason other than "no leader / leader unreachable", or
    /// `deadline` passes. Retrying is safe because those two errors mean the request was not
    /// executed: the peer transport reports a failure after possible delivery as `Timeout`.
    async fn retry_until<T, F, Fut>(&self, deadline: Instant, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut(Option<NodeId>, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.no_leader_or_timeout());
            }
            let leader = self.raft.metrics().borrow().current_leader;
            match attempt(leader, left).await {
                Err(StoreError::NoLeader) => tokio::time::sleep(LEADER_POLL.min(left)).await,
                Err(e @ StoreError::LeaderUnreachable { .. }) => {
                    tracing::debug!(error = %e, "leader unreachable; retrying");
                    tokio::time::sleep(LEADER_POLL.min(left)).await;
                }
                other => return other,
            }
        }
    }

    /// What a minority replica answers when its deadline passes.
    fn no_leader_or_timeout(&self) -> StoreError {
        match self.raft.metrics().borrow().current_leader {
            None => StoreError::NoLeader,
            Some(_) => StoreError::Timeout,
        }
    }

    /// Leader, and heard from a quorum within the last election timeout (so no other leader
    /// can have been elected meanwhile).
    fn leads_with_quorum(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        let window = self.cfg.election_timeout.as_millis() as u64;
        m.state == ServerState::Leader && m.millis_since_quorum_ack.is_some_and(|ms| ms < window)
    }
}

/// The peer URL of member `id` in the membership `raft` knows.
fn peer_url(raft: &Raft, id: NodeId) -> Option<String> {
    let m = raft.metrics().borrow().membership_config.clone();
    m.membership().get_node(&id).map(|n| n.peer_url.clone())
}

fn is_read_op(op: &crate::pb::PbTxnRequestOp) -> bool {
    matches!(op.request, Some(crate::pb::PbTxnOpRequest::RequestRange(_)))
}

fn unexpected(r: CommandResult) -> StoreError {
    StoreError::storage(format!("unexpected apply result {r:?}"))
}

/// Map openraft's "not the leader" answers to `NoLeader` (the caller re-resolves the leader).
fn from_write_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> StoreError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => StoreError::NoLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => StoreError::Membership(e.to_string()),
        RaftError::Fatal(_) => StoreError::Stopped,
    }
}

fn from_read_error(e: RaftError<NodeId, CheckIsLeaderError<NodeId, Node>>) -> StoreError {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)) => StoreError::NoLeader,
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)) => StoreError::NoLeader,
        RaftError::Fatal(_) => StoreError::Stopped,
    }
}
