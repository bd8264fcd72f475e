//! [`WorkQueue`]: the keys a controller has to reconcile, client-go's work queue semantics.
//!
//! Invariants:
//! - **Deduplicated while waiting**: a key is in the ready queue at most once; adding a key
//!   that already waits is a no-op (its reconcile will read the newest state anyway).
//! - **Never handed out twice at once**: between [`WorkQueue::get`] returning a key and
//!   [`WorkQueue::done`] for it, the key is *processing* and `get` will not return it. Adding
//!   it meanwhile marks it dirty; `done` then puts it back, so the change is not lost.
//! - **Delays keep the earliest time**: [`WorkQueue::add_after`] for a key already delayed
//!   keeps whichever time is sooner.
//! - **Per-key backoff**: [`WorkQueue::add_rate_limited`] counts the key's consecutive
//!   failures and delays it by [`Backoff::delay`]; [`WorkQueue::forget`] resets the count
//!   (call it when a reconcile succeeds).
//!
//! Bound: the queue holds each key at most once in each of its sets (ready, delayed,
//! failures), so its size is bounded by the number of distinct objects the controller sees
//! (its informers' caches), not by the rate of changes. That is why it needs no capacity.
//!
//! Data flow: event handlers `add`; workers loop `get` → reconcile → `forget`/`add_after`/
//! `add_rate_limited` → `done`. There is no timer task: a waiting `get` sleeps until the
//! earliest delayed key is due, so delays work under `tokio::time::pause()`.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::key::Key;

/// A shared handle to one controller's work queue (clones share the queue).
#[derive(Clone)]
pub struct WorkQueue {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Wakes `get` callers: one per added key, all of them on shutdown.
    notify: Notify,
    backoff: Backoff,
}

#[derive(Default)]
struct State {
    /// Keys ready to be handed out, oldest first.
    ready: VecDeque<Key>,
    /// Keys that need a reconcile: those in `ready` plus processing keys re-added meanwhile.
    dirty: HashSet<Key>,
    /// Keys handed out by `get` and not yet `done`.
    processing: HashSet<Key>,
    /// Delayed keys by due time; `due` holds the same entries by key.
    delayed: BTreeSet<(Instant, Key)>,
    due: HashMap<Key, Instant>,
    /// Consecutive failures per key (absent: none).
    failures: HashMap<Key, u32>,
    shutdown: bool,
}

impl State {
    /// Mark `key` as needing a reconcile; true when it became ready (so a worker should wake).
    fn add(&mut self, key: Key) -> bool {
        if self.shutdown || self.dirty.contains(&key) {
            return false;
        }
        self.dirty.insert(key.clone());
        if self.processing.contains(&key) {
            // `done` re-queues it: never hand out a key that is being processed.
            return false;
        }
        self.ready.push_back(key);
        true
    }

    /// Move every delayed key due at `now` to the ready queue.
    fn promote(&mut self, now: Instant) {
        while let Some((at, _)) = self.delayed.first() {
            if *at > now {
                break;
            }
            let (_, key) = self.delayed.pop_first().expect("first() was Some");
            self.due.remove(&key);
            self.add(key);
        }
    }
}

impl WorkQueue {
    /// An empty queue whose failing keys are retried after `backoff` delays.
    pub fn new(backoff: Backoff) -> Self {
        Self { inner: Arc::new(Inner { state: Mutex::new(State::default()), notify: Notify::new(), backoff }) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few collection operations that cannot panic halfway
        // through an invariant; a poisoned lock can only come from an allocation failure.
        self.inner.state.lock().expect("work queue lock poisoned")
    }

    /// Queue `key` for a reconcile (no-op if it already waits, or after shutdown).
    pub fn add(&self, key: Key) {
        if self.state().add(key) {
            self.inner.notify.notify_one();
        }
    }

    /// Queue `key` once `delay` has passed (at once for a zero delay).
    pub fn add_after(&self, key: Key, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        {
            let mut s = self.state();
            if s.shutdown {
                return;
            }
            match s.due.get(&key) {
                Some(existing) if *existing <= at => return,
                Some(existing) => {
                    let existing = *existing;
                    s.delayed.remove(&(existing, key.clone()));
                }
                None => {}
            }
            s.due.insert(key.clone(), at);
            s.delayed.insert((at, key));
        }
        // A waiting `get` may be sleeping until a later due time: let one recompute.
        self.inner.notify.notify_one();
    }

    /// Count one more failure of `key` and queue it after its backoff delay, which is
    /// returned (for logs).
    pub fn add_rate_limited(&self, key: Key) -> Duration {
        let failures = {
            let mut s = self.state();
            let f = s.failures.entry(key.clone()).or_insert(0);
            *f = f.saturating_add(1);
            *f
        };
        let delay = self.inner.backoff.delay(failures);
        self.add_after(key, delay);
        delay
    }

    /// Reset `key`'s failure count (its reconcile succeeded).
    pub fn forget(&self, key: &Key) {
        self.state().failures.remove(key);
    }

    /// `key`'s consecutive failures so far.
    pub fn failures(&self, key: &Key) -> u32 {
        self.state().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to reconcile, waiting for one; `None` once the queue is shut down.
    /// The caller must call [`WorkQueue::done`] with it when finished. Cancel-safe: a
    /// cancelled `get` has taken nothing.
    pub async fn get(&self) -> Option<Key> {
        loop {
            // Register for wake-ups before looking, so an add between the look and the wait
            // is not missed.
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut s = self.state();
                if s.shutdown {
                    return None;
                }
                s.promote(Instant::now());
                if let Some(key) = s.ready.pop_front() {
                    let was_dirty = s.dirty.remove(&key);
                    assert!(was_dirty, "ready key {key} was not dirty");
                    let fresh = s.processing.insert(key.clone());
                    assert!(fresh, "key {key} handed out while processing");
                    if !s.ready.is_empty() {
                        // Keys may have become ready together (delays falling due): pass on.
                        self.inner.notify.notify_one();
                    }
                    return Some(key);
                }
                s.delayed.first().map(|(at, _)| *at)
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Finish processing `key`; if it was added meanwhile it becomes ready again.
    pub fn done(&self, key: &Key) {
        let requeued = {
            let mut s = self.state();
            s.processing.remove(key);
            if s.dirty.contains(key) && !s.shutdown {
                s.ready.push_back(key.clone());
                true
            } else {
                false
            }
        };
        if requeued {
            self.inner.notify.notify_one();
        }
    }

    /// Stop: every pending and future `get` returns `None`, adds are ignored.
    pub fn shutdown(&self) {
        self.state().shutdown = true;
        self.inner.notify.notify_waiters();
    }

    pub fn is_shutdown(&self) -> bool {
        self.state().shutdown
    }

    /// Keys ready to be handed out now (not counting delayed or processing ones).
    pub fn len(&self) -> usize {
        self.state().ready.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys waiting for a delay to pass.
    pub fn delayed_len(&self) -> usize {
        self.state().delayed.len()
    }

    /// Keys handed out and not yet done.
    pub fn processing_len(&self) -> usize {
        self.state().processing.len()
    }
}

impl Default for WorkQueue {
    fn default() -> Self {
        Self::new(Backoff::default())
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
