//! Backoff for replacing failed daemon pods, per (DaemonSet, node).
//!
//! Why: a kubelet that rejects a pod (a port taken, a missing device) fails every new pod
//! at once; deleting and recreating in a tight loop would fight it forever. As upstream,
//! the first failed pod on a node is replaced at once, and each further one within the
//! current delay waits for it; the delay doubles per failure up to [`FAILED_POD_BACKOFF`]'s
//! max.
//!
//! Invariant: at most [`MAX_TRACKED`] (DaemonSet, node) pairs are remembered; when full the
//! table is cleared (the next failure is then replaced at once, which is harmless).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use std::time::Instant;

use crate::runtime::{Backoff, Key};

/// Upstream's failed-pod backoff: 1 s doubling up to 15 min.
pub const FAILED_POD_BACKOFF: Backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(15 * 60) };
/// Most (DaemonSet, node) pairs remembered; each entry is a few dozen bytes.
pub const MAX_TRACKED: usize = 4096;

#[derive(Default)]
pub struct FailedPods {
    /// (DaemonSet, node) → (failures so far, when the last one was acted on).
    entries: Mutex<HashMap<(Key, String), (u32, Instant)>>,
}

impl FailedPods {
    /// How long a failed pod on `node` must still wait at `now` before it is replaced
    /// (None: it may be replaced now).
    pub fn wait(&self, ds: &Key, node: &str, now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().expect("backoff lock poisoned");
        let (failures, last) = entries.get(&(ds.clone(), node.to_string()))?;
        let until = *last + FAILED_POD_BACKOFF.delay(*failures);
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// A failed pod on `node` is being replaced at `now`.
    pub fn record(&self, ds: &Key, node: &str, now: Instant) {
        let mut entries = self.entries.lock().expect("backoff lock poisoned");
        let key = (ds.clone(), node.to_string());
        if entries.len() >= MAX_TRACKED && !entries.contains_key(&key) {
            entries.clear();
        }
        let entry = entries.entry(key).or_insert((0, now));
        *entry = (entry.0.saturating_add(1), now);
    }

    /// Forget a DaemonSet (it is gone).
    pub fn forget(&self, ds: &Key) {
        self.entries.lock().expect("backoff lock poisoned").retain(|(k, _), _| k != ds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_doubles_the_wait_before_the_next_replacement() {
        let f = FailedPods::default();
        let ds = Key::namespaced("ns", "agent");
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        assert_eq!(f.wait(&ds, "n1", at(0)), None, "the first failed pod is replaced at once");
        f.record(&ds, "n1", at(0));
        assert_eq!(f.wait(&ds, "n1", at(0)), Some(Duration::from_secs(1)));
        assert_eq!(f.wait(&ds, "n2", at(0)), None, "per node");
        assert_eq!(f.wait(&ds, "n1", at(1)), None);
        f.record(&ds, "n1", at(1));
        assert_eq!(f.wait(&ds, "n1", at(2)), Some(Duration::from_secs(1)), "2 s after the second");
        assert_eq!(f.wait(&ds, "n1", at(3)), None);
        f.forget(&ds);
        assert_eq!(f.wait(&ds, "n1", at(1)), None);
    }
}
