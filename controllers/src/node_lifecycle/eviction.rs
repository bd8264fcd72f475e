//! Taint-based eviction decisions (upstream's `tainteviction` controller), pure and
//! tick-driven: which pods on NoExecute-tainted nodes go, and when.
//!
//! - [`tolerance`]: a pod that does not tolerate every NoExecute taint of its node goes at
//!   once; one that does stays for the smallest `tolerationSeconds` among the tolerations
//!   used, or for ever when none of them sets it. Whether a toleration tolerates a taint is
//!   the scheduler's rule (`flotilla_apiserver::selector::toleration::tolerates`).
//! - [`EvictionClock`]: per pod, when its eviction clock started: the first time the
//!   controller saw the pod on a node with NoExecute taints — or the taint's `timeAdded`,
//!   whichever is later. The clock keeps running while the node keeps some NoExecute taint
//!   (not-ready and unreachable swap in one write), and stops, cancelling the eviction,
//!   once it has none. A new controller (new leader) starts every clock afresh: an
//!   eviction is delayed by a failover, never brought forward.
//! - [`TokenBucket`]: the bound on evictions per second.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use flotilla_apiserver::selector::toleration::tolerates;
use k8s_openapi::api::core::v1::{Taint, Toleration};
use tokio::time::Instant;

use crate::runtime::Key;

/// How long a pod may stay on a node with given NoExecute taints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    /// Some taint is not tolerated: evict at once.
    None,
    /// Every taint is tolerated, for this long at most.
    For(Duration),
    /// Every taint is tolerated without a time limit.
    Forever,
}

/// How long `tolerations` let a pod stay on a node with the NoExecute taints `taints`.
/// For each taint the first toleration that matches it is the one used (as upstream).
pub fn tolerance(tolerations: &[Toleration], taints: &[&Taint]) -> Tolerance {
    let mut shortest: Option<Duration> = None;
    for taint in taints {
        let Some(used) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Tolerance::None;
        };
        if let Some(seconds) = used.toleration_seconds {
            let d = Duration::from_secs(seconds.max(0).unsigned_abs());
            shortest = Some(shortest.map_or(d, |s| s.min(d)));
        }
    }
    shortest.map_or(Tolerance::Forever, Tolerance::For)
}

/// When a pod's eviction is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    At(Instant),
    Never,
}

/// One pod's clock.
#[derive(Debug, Clone)]
struct Clock {
    key: Key,
    since: Instant,
    /// Whether a time-limited eviction was scheduled (its end is worth a cancel event).
    scheduled: bool,
    /// Whether the pod has been deleted by this controller already.
    evicted: bool,
}

/// Per pod (by uid): when its eviction clock started. Owned by the controller's loop.
#[derive(Debug, Default)]
pub struct EvictionClock {
    clocks: HashMap<String, Clock>,
}

impl EvictionClock {
    /// The pod `uid` (named `key`) is on a node with NoExecute taints that it tolerates as
    /// `tolerance`; `added_ahead` is how far the newest of those taints' `timeAdded` lies
    /// ahead of the controller's wall clock (zero unless clocks are skewed). Starts its
    /// clock if it has none; returns when its eviction is due.
    pub fn due(&mut self, uid: &str, key: &Key, tolerance: Tolerance, added_ahead: Duration, now: Instant) -> Due {
        let clock = self.clocks.entry(uid.to_string()).or_insert_with(|| Clock {
            key: key.clone(),
            since: now + added_ahead,
            scheduled: false,
            evicted: false,
        });
        clock.scheduled = matches!(tolerance, Tolerance::For(_));
        match tolerance {
            Tolerance::None => Due::At(now),
            Tolerance::For(d) => Due::At(clock.since + d),
            Tolerance::Forever => Due::Never,
        }
    }

    /// Whether this controller has already deleted the pod `uid`.
    pub fn evicted(&self, uid: &str) -> bool {
        self.clocks.get(uid).is_some_and(|c| c.evicted)
    }

    /// Record that the pod `uid` was deleted (so it is not deleted, or reported, twice).
    pub fn mark_evicted(&mut self, uid: &str) {
        if let Some(c) = self.clocks.get_mut(uid) {
            c.evicted = true;
        }
    }

    /// Stop the clocks of the pods not in `on_tainted_nodes` (their node lost its NoExecute
    /// taints, or they are gone). Returns the pods whose scheduled eviction that cancels.
    pub fn stop_except(&mut self, on_tainted_nodes: &HashSet<String>) -> Vec<Key> {
        let mut cancelled = Vec::new();
        self.clocks.retain(|uid, c| {
            let keep = on_tainted_nodes.contains(uid);
            if !keep && c.scheduled && !c.evicted {
                cancelled.push(c.key.clone());
            }
            keep
        });
        cancelled
    }

    /// Stop every clock (evictions are suspended); returns how many ran.
    pub fn reset(&mut self) -> usize {
        let n = self.clocks.len();
        self.clocks.clear();
        n
    }
}

/// A token bucket: at most `per_second` takes per second on average, bursts up to its
/// capacity of one second's worth (at least one).
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: f64, now: Instant) -> Self {
        let capacity = per_second.max(1.0);
        Self { per_second, capacity, tokens: capacity, refilled: now }
    }

    /// Take one token if there is one at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.refilled = self.refilled.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[path = "eviction_tests.rs"]
mod tests;
