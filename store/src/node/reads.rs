//! Read-index coalescing: concurrent linearizable reads share one read-index round.
//!
//! Each round asks the leader for a read index (a heartbeat round to a quorum). Reads that
//! arrive while a round is running wait for the *next* round, and all of them share it, so
//! the number of rounds tracks the leader's round-trip time, not the read rate.
//!
//! Invariant (linearizability): every read is answered with the index of a round that
//! started after the read arrived, so the index covers every write acknowledged before it.

use std::sync::Mutex;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::StoreNode;
use crate::error::StoreError;
use crate::raft::forward::{ForwardRequest, ForwardResponse};

#[derive(Default)]
pub(super) struct ReadCoalescer {
    state: Mutex<ReadState>,
}

#[derive(Default)]
struct ReadState {
    /// A task is running rounds.
    running: bool,
    /// Reads waiting for the next round.
    waiting: Vec<oneshot::Sender<Result<u64, StoreError>>>,
}

impl StoreNode {
    /// A read index obtained by a round that started after this call.
    pub(super) async fn read_index(&self) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut s = self.reads.state.lock().expect("read coalescer lock poisoned");
            s.waiting.push(tx);
            !std::mem::replace(&mut s.running, true)
        };
        if start {
            let weak = self.weak.clone();
            tokio::spawn(async move {
                if let Some(node) = weak.upgrade() {
                    node.read_rounds().await;
                }
            });
        }
        rx.await.map_err(|_| StoreError::Stopped)?
    }

    /// Run rounds until nobody waits.
    async fn read_rounds(&self) {
        loop {
            let batch = {
                let mut s = self.reads.state.lock().expect("read coalescer lock poisoned");
                if s.waiting.is_empty() {
                    s.running = false;
                    return;
                }
                std::mem::take(&mut s.waiting)
            };
            let deadline = Instant::now() + self.cfg.request_timeout;
            let index = self
                .on_leader(deadline, ForwardRequest::ReadIndex, |resp| match resp {
                    ForwardResponse::ReadIndex(i) => Some(i),
                    _ => None,
                })
                .await;
            for tx in batch {
                let _ = tx.send(index.clone());
            }
        }
    }
}
