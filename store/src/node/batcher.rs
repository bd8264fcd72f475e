//! Group commit: concurrent client writes share one Raft log entry, and a follower forwards
//! them to the leader in one call.
//!
//! openraft 0.9 appends (and fsyncs) each proposed entry separately, in its core loop, so
//! proposing every write on its own caps throughput at one write per fsync; forwarding every
//! write on its own costs a gRPC call each. A [`Batcher`] takes writes from a bounded queue
//! and sends whatever has accumulated as one unit along its [`Route`]: proposed here as one
//! [`Command::Batch`] entry (a lone write as itself), or forwarded to the leader as one
//! `WriteBatch`, which the leader proposes as one entry. At most [`MAX_INFLIGHT`] units are
//! outstanding; while they are, new writes queue up and form the next one, so batches grow
//! with load and cost nothing when idle.
//!
//! Invariants:
//! - Every submitted write gets exactly one answer: its result, or its unit's error.
//! - A batch is applied as consecutive commands in submission order; each keeps its own
//!   revision, so a batch is indistinguishable from separate entries to readers and watchers.
//! - A forwarded batch is proposed by the receiving leader, never forwarded again: a replica
//!   that is no longer leader answers `NoLeader`, and callers re-resolve the leader.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use super::from_write_error;
use super::transfer::ProposalGate;
use crate::error::StoreError;
use crate::raft::forward::{ForwardRequest, ForwardResponse};
use crate::raft::network::PeerNetwork;
use crate::types::{Command, CommandResult, NodeId, Raft};

/// Writes waiting in one queue; bounds the memory queued writes pin (each is at most
/// `MAX_REQUEST_BYTES`, but most are small). Submitters wait when it is full.
pub const QUEUE_DEPTH: usize = 4096;
/// Most writes in one unit.
pub const MAX_BATCH_WRITES: usize = 512;
/// Most payload bytes in one unit, so it stays far below the peer message limit.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Units outstanding at once: enough to keep Raft's pipeline busy while the next one
/// accumulates.
pub const MAX_INFLIGHT: usize = 4;

/// A write's result and the log index of the entry that carried it.
type Answer = Result<(CommandResult, u64), StoreError>;

/// Where a batcher sends its units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Propose here (this replica leads).
    Local,
    /// Forward to the leader this replica knows.
    ToLeader,
}

/// What a batcher needs to send a unit either way.
pub struct Proposer {
    pub id: NodeId,
    pub raft: Raft,
    pub network: PeerNetwork,
    pub timeout: Duration,
    pub gate: Arc<ProposalGate>,
}

struct Pending {
    cmd: Command,
    bytes: usize,
    answer: oneshot::Sender<Answer>,
}

pub struct Batcher {
    tx: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Start a batching loop; it ends when `cancel` fires.
    pub fn start(proposer: Arc<Proposer>, route: Route, cancel: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(proposer, route, rx, cancel));
        Self { tx }
    }

    /// Send `cmd` (of `bytes` serialized bytes) and wait for its result.
    pub async fn submit(&self, cmd: Command, bytes: usize) -> Answer {
        let (answer, rx) = oneshot::channel();
        self.tx.send(Pending { cmd, bytes, answer }).await.map_err(|_| StoreError::Stopped)?;
        rx.await.map_err(|_| StoreError::Stopped)?
    }
}

async fn run(proposer: Arc<Proposer>, route: Route, mut rx: mpsc::Receiver<Pending>, cancel: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_INFLIGHT));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            p = rx.recv() => match p { Some(p) => p, None => return },
        };
        let mut unit = vec![first];
        let mut bytes = unit[0].bytes;
        while unit.len() < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.bytes;
                    unit.push(p);
                }
                Err(_) => break,
            }
        }
        let proposer = proposer.clone();
        tokio::spawn(async move {
            let (cmds, answers): (Vec<Command>, Vec<oneshot::Sender<Answer>>) =
                unit.into_iter().map(|p| (p.cmd, p.answer)).unzip();
            let outcome = match route {
                Route::Local => propose_here(&proposer.raft, &proposer.gate, cmds).await,
                Route::ToLeader => forward(&proposer, cmds).await,
            };
            match outcome {
                Ok((results, _)) if results.len() != answers.len() => {
                    // Applied, but the answer is unusable: the outcome is unknown to callers.
                    tracing::error!(got = results.len(), want = answers.len(), "batch answer has the wrong length");
                    answers.into_iter().for_each(|a| drop(a.send(Err(StoreError::Timeout))));
                }
                Ok((results, index)) => {
                    for (a, r) in answers.into_iter().zip(results) {
                        let _ = a.send(Ok((r, index)));
                    }
                }
                Err(e) => answers.into_iter().for_each(|a| drop(a.send(Err(e.clone())))),
            }
            drop(permit);
        });
    }
}

/// Propose `cmds` as one entry on this replica; one result per command. Refused with
/// `NoLeader`, unproposed, while a leadership transfer holds `gate`.
pub async fn propose_here(
    raft: &Raft,
    gate: &ProposalGate,
    mut cmds: Vec<Command>,
) -> Result<(Vec<CommandResult>, u64), StoreError> {
    let _admitted = gate.enter()?;
    let lone = cmds.len() == 1;
    let cmd = if lone { cmds.pop().expect("one command") } else { Command::Batch(cmds) };
    let resp = raft.client_write(cmd).await.map_err(from_write_error)?;
    let index = resp.log_id.index;
    match resp.data {
        CommandResult::Batch(results) if !lone => Ok((results, index)),
        result if lone => Ok((vec![result], index)),
        other => Err(StoreError::storage(format!("a batch entry yielded {other:?}"))),
    }
}

/// Forward `cmds` to the leader this replica knows.
async fn forward(p: &Proposer, cmds: Vec<Command>) -> Result<(Vec<CommandResult>, u64), StoreError> {
    let leader = p.raft.metrics().borrow().current_leader;
    let Some(leader) = leader.filter(|l| *l != p.id) else { return Err(StoreError::NoLeader) };
    let url = super::peer_url(&p.raft, leader).ok_or(StoreError::NoLeader)?;
    match p.network.forward(leader, &url, ForwardRequest::WriteBatch(cmds), p.timeout).await? {
        ForwardResponse::Applied { results, index } => Ok((results, index)),
        other => Err(StoreError::storage(format!("mismatched forward response {other:?}"))),
    }
}
