//! The progress line: every few seconds, elapsed time, ops by outcome and the current fault.
//!
//! Invariant: printing never blocks a client; it only reads atomic counters and a string
//! behind a mutex held for a copy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::workload::{Cancel, Clock, Stats};

/// The fault active right now, shared by the nemesis schedule and the progress line.
#[derive(Debug, Clone, Default)]
pub struct CurrentFault(Arc<Mutex<Option<String>>>);

impl CurrentFault {
    pub fn set(&self, fault: Option<String>) {
        *self.0.lock().expect("progress mutex is never poisoned: no code panics holding it") = fault;
    }

    pub fn get(&self) -> Option<String> {
        self.0.lock().expect("progress mutex is never poisoned: no code panics holding it").clone()
    }
}

/// One progress line.
pub fn line(clock: &Clock, stats: &Stats, fault: Option<&str>) -> String {
    let (ok, fail, info) = stats.snapshot();
    let secs = clock.ns() / 1_000_000_000;
    format!("[{secs:>5}s] ops ok={ok} fail={fail} info={info} fault={}", fault.unwrap_or("none"))
}

/// Prints [`line`] to stderr every `every` until cancelled.
pub async fn report_every(every: Duration, clock: Clock, stats: Arc<Stats>, current: CurrentFault, mut cancel: Cancel) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => eprintln!("{}", line(&clock, &stats, current.get().as_deref())),
        }
    }
}
