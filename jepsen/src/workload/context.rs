//! What every client of a run shares: one monotonic clock, the op counters the progress line
//! prints, and the cancellation signal.
//!
//! Invariants: every time in a history is [`Clock::ns`] of the one clock the runner created,
//! so ops of different workloads (and the nemesis timeline) are comparable; a [`Cancel`]
//! once cancelled stays cancelled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::history::Outcome;

/// Monotonic nanoseconds since the run started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Self { start: Instant::now() }
    }

    /// The instant the run started (a nemesis measuring its own offsets starts from it).
    pub fn origin(&self) -> Instant {
        self.start
    }

    /// Nanoseconds since [`Clock::start`].
    pub fn ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Counts of finished ops by outcome, for the progress line.
#[derive(Debug, Default)]
pub struct Stats {
    ok: AtomicU64,
    fail: AtomicU64,
    info: AtomicU64,
}

impl Stats {
    pub fn count(&self, outcome: &Outcome) {
        let counter = match outcome {
            Outcome::Ok(_) => &self.ok,
            Outcome::Fail => &self.fail,
            Outcome::Info => &self.info,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(ok, fail, info)` so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (self.ok.load(Ordering::Relaxed), self.fail.load(Ordering::Relaxed), self.info.load(Ordering::Relaxed))
    }
}

/// The sending side of a cancellation.
#[derive(Debug)]
pub struct CancelHandle(watch::Sender<bool>);

/// A cancellation signal clients poll between ops or await.
#[derive(Debug, Clone)]
pub struct Cancel(watch::Receiver<bool>);

/// A new, not yet cancelled, signal.
pub fn cancel_pair() -> (CancelHandle, Cancel) {
    let (tx, rx) = watch::channel(false);
    (CancelHandle(tx), Cancel(rx))
}

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }
}

impl Cancel {
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once cancelled (at once if already; also if the handle was dropped).
    pub async fn cancelled(&mut self) {
        let _ = self.0.wait_for(|c| *c).await;
    }
}

/// What a workload gets from the runner besides endpoints and options.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub clock: Clock,
    pub stats: Arc<Stats>,
    pub cancel: Cancel,
}
