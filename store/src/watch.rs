//! The watch hub: fans applied events out to watchers without ever blocking apply.
//!
//! Data flow: after each apply batch is durable in RocksDB, the state machine publishes one
//! [`Notice`] per revision on a bounded broadcast channel. Each [`Watcher`] subscribes to it
//! *before* it first reads history, so every revision is either in its history read or in
//! its channel (or both: duplicates below `next_rev` are skipped).
//!
//! Invariants:
//! - A watcher yields revisions in strictly increasing order, each revision whole, with no
//!   gaps: when it lags (the broadcast dropped notices) or the state was replaced by a
//!   snapshot, it goes back to reading history from its `next_rev`.
//! - Apply never waits for a watcher: the broadcast send never blocks.
//! - A watcher whose `next_rev` has been compacted away ends with `Compacted`.

use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use crate::mvcc::key_range::KeyRange;
use crate::mvcc::Mvcc;
use crate::pb::PbEvent;

/// Notices the broadcast channel holds for slow receivers before they lag. A lagging
/// watcher loses nothing (it re-reads history), so this only trades memory for disk reads.
pub const HUB_CAPACITY: usize = 4096;

/// Revisions read from history per catch-up step; bounds the memory one watcher pins.
pub const CATCH_UP_REVISIONS: usize = 256;

#[derive(Debug)]
pub enum Notice {
    /// All events of one revision, in order.
    Events { revision: i64, events: Vec<PbEvent> },
    /// The state machine was replaced by a snapshot: re-read history.
    Reset,
}

/// What a watcher yields.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    /// Events of one revision that match the watcher's range (never empty).
    Events { revision: i64, events: Vec<PbEvent> },
    /// The watcher's next revision was compacted; it is finished.
    Compacted { compact_revision: i64 },
}

#[derive(Clone)]
pub struct WatchHub {
    tx: broadcast::Sender<Arc<Notice>>,
    mvcc: Arc<RwLock<Mvcc>>,
}

impl WatchHub {
    pub fn new(mvcc: Arc<RwLock<Mvcc>>) -> Self {
        let (tx, _) = broadcast::channel(HUB_CAPACITY);
        Self { tx, mvcc }
    }

    /// Publish; called by the state machine after the batch is durable.
    pub fn publish(&self, notice: Notice) {
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(Arc::new(notice));
    }

    /// Start watching `range` from `start_revision` (0 = only future changes).
    /// Watchers open on this hub.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn watch(&self, range: KeyRange, start_revision: i64) -> Watcher {
        let rx = self.tx.subscribe();
        let next_rev = if start_revision > 0 {
            start_revision
        } else {
            self.mvcc.read().expect("mvcc lock poisoned").current_revision() + 1
        };
        Watcher { range, next_rev, rx, mvcc: self.mvcc.clone(), catching_up: true, ready: Vec::new(), finished: false }
    }
}

pub struct Watcher {
    range: KeyRange,
    next_rev: i64,
    rx: broadcast::Receiver<Arc<Notice>>,
    mvcc: Arc<RwLock<Mvcc>>,
    catching_up: bool,
    /// History already read but not yet yielded, in reverse order (pop from the end).
    ready: Vec<WatchItem>,
    /// Set once `Compacted` was yielded: the watcher yields nothing more.
    finished: bool,
}

impl Watcher {
    /// The next revision this watcher will yield from.
    pub fn next_revision(&self) -> i64 {
        self.next_rev
    }

    /// The next matching revision, waiting for one if needed; `None` once finished (after
    /// `Compacted`, or when the store shuts down). Cancel-safe.
    pub async fn next(&mut self) -> Option<WatchItem> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(item) = self.ready.pop() {
                self.finished = matches!(item, WatchItem::Compacted { .. });
                return Some(item);
            }
            if self.catching_up {
                self.catch_up();
                continue;
            }
            match self.rx.recv().await {
                Ok(notice) => match &*notice {
                    Notice::Events { revision, events } => {
                        if *revision < self.next_rev {
                            continue;
                        }
                        self.next_rev = revision + 1;
                        if let Some(item) = self.matching(*revision, events) {
                            return Some(item);
                        }
                    }
                    Notice::Reset => self.catching_up = true,
                },
                Err(broadcast::error::RecvError::Lagged(_)) => self.catching_up = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Read one step of history into `ready`; leave catch-up mode when history is exhausted.
    fn catch_up(&mut self) {
        let batch = self.mvcc.read().expect("mvcc lock poisoned").events_since(self.next_rev, CATCH_UP_REVISIONS);
        match batch {
            Err(crate::error::StoreError::Rejected(crate::types::Rejection::Compacted { compact_revision })) => {
                self.ready.push(WatchItem::Compacted { compact_revision });
            }
            Err(e) => {
                // Ending the watch is the only answer that loses nothing: the client re-watches.
                tracing::error!(error = %e, next = self.next_rev, "watch history unreadable; ending the watch");
                self.finished = true;
            }
            Ok(revs) if revs.is_empty() => self.catching_up = false,
            Ok(revs) => {
                let mut items = Vec::new();
                for (revision, events) in revs {
                    self.next_rev = revision + 1;
                    items.extend(self.matching(revision, &events));
                }
                items.reverse();
                self.ready = items;
            }
        }
    }

    fn matching(&self, revision: i64, events: &[PbEvent]) -> Option<WatchItem> {
        let events: Vec<PbEvent> =
            events.iter().filter(|e| e.kv.as_ref().is_some_and(|kv| self.range.contains(&kv.key))).cloned().collect();
        (!events.is_empty()).then_some(WatchItem::Events { revision, events })
    }
}
