//! Group commit on the leader: concurrent client writes share one Raft log entry.
//!
//! openraft 0.9 appends (and fsyncs) each proposed entry separately, in its core loop, so
//! proposing every write on its own caps throughput at one write per fsync. The batcher
//! takes writes from a bounded queue, proposes whatever has accumulated as one
//! [`Command::Batch`] (a lone write is proposed as itself), and hands each caller its own
//! result. At most [`MAX_INFLIGHT`] proposals are outstanding; while they are, new writes
//! queue up and form the next batch, so batches grow with load and cost nothing when idle.
//!
//! Invariants:
//! - Every submitted write gets exactly one answer: its result, or the proposal's error.
//! - A batch is applied as consecutive commands in submission order; each keeps its own
//!   revision, so a batch is indistinguishable from separate entries to readers and watchers.
//! - Only the leader's node proposes through its batcher, and never forwards: a deposed
//!   leader's batch fails with `NoLeader` and callers re-resolve the leader.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use super::from_write_error;
use crate::error::StoreError;
use crate::types::{Command, CommandResult, Raft};

/// Writes waiting for a proposal; bounds the memory queued writes pin (each is at most
/// `MAX_REQUEST_BYTES`, but most are small). Submitters wait when it is full.
pub const QUEUE_DEPTH: usize = 4096;
/// Most writes in one entry.
pub const MAX_BATCH_WRITES: usize = 512;
/// Most payload bytes in one entry, so a batch stays far below the peer message limit.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Proposals outstanding at once: enough to keep Raft's pipeline busy while the next batch
/// accumulates.
pub const MAX_INFLIGHT: usize = 4;

/// A write's result and the log index of the entry that carried it.
type Answer = Result<(CommandResult, u64), StoreError>;

struct Pending {
    cmd: Command,
    bytes: usize,
    answer: oneshot::Sender<Answer>,
}

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Start the batching loop for `raft`; it ends when `cancel` fires.
    pub fn start(raft: Raft, cancel: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(raft, rx, cancel));
        Self { tx }
    }

    /// Propose `cmd` (of `bytes` serialized bytes) and wait for its result.
    pub async fn submit(&self, cmd: Command, bytes: usize) -> Answer {
        let (answer, rx) = oneshot::channel();
        self.tx.send(Pending { cmd, bytes, answer }).await.map_err(|_| StoreError::Stopped)?;
        rx.await.map_err(|_| StoreError::Stopped)?
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>, cancel: CancellationToken) {
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
        let mut batch = vec![first];
        let mut bytes = batch[0].bytes;
        while batch.len() < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.bytes;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(permit);
        });
    }
}

/// Propose one entry for `batch` and answer every submitter.
async fn propose(raft: &Raft, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        let p = batch.pop().expect("one element");
        let answer = raft.client_write(p.cmd).await.map(|r| (r.data, r.log_id.index)).map_err(from_write_error);
        let _ = p.answer.send(answer);
        return;
    }
    let (cmds, answers): (Vec<Command>, Vec<oneshot::Sender<Answer>>) = batch.into_iter().map(|p| (p.cmd, p.answer)).unzip();
    match raft.client_write(Command::Batch(cmds)).await {
        Ok(resp) => {
            let index = resp.log_id.index;
            let CommandResult::Batch(results) = resp.data else {
                let e = StoreError::storage("a batch entry did not yield batch results");
                answers.into_iter().for_each(|a| drop(a.send(Err(e.clone()))));
                return;
            };
            assert_eq!(results.len(), answers.len(), "one result per batched write");
            for (a, r) in answers.into_iter().zip(results) {
                let _ = a.send(Ok((r, index)));
            }
        }
        Err(e) => {
            let e = from_write_error(e);
            answers.into_iter().for_each(|a| drop(a.send(Err(e.clone()))));
        }
    }
}
